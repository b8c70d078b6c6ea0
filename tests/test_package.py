"""The package as users get it: light to import, exact public names, typed."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import sysconfig
import types
import zipfile
from pathlib import Path

import pytest

import corral
from corral._core import _promise

ROOT = Path(__file__).resolve().parents[1]

#: Optional dependencies that ``import corral`` must not pull in.
OPTIONAL = (
    "asyncpg",
    "redis",
    "nats",
    "typer",
    "rich",
    "starlette",
    "uvicorn",
    "msgspec",
    "prometheus_client",
)

#: How much longer ``import corral`` may take than ``import asyncio`` (seconds).
IMPORT_BUDGET = 0.030

PUBLIC_MODULES = ("corral", "corral.errors", "corral.eventsourcing", "corral.testing")


def python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter and return what it printed."""
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_import_corral_imports_no_optional_dependency() -> None:
    loaded = json.loads(python("import corral, sys, json; print(json.dumps(list(sys.modules)))"))
    pulled_in = sorted(name for name in loaded if name.split(".")[0] in OPTIONAL)
    assert pulled_in == []


def test_the_probe_would_notice_an_optional_dependency() -> None:
    loaded = json.loads(
        python("import corral.cli, sys, json; print(json.dumps(list(sys.modules)))")
    )
    assert {"typer", "rich"} <= {name.split(".")[0] for name in loaded}


def test_the_runtime_layer_loads_on_first_use() -> None:
    probe = (
        "import corral, sys; "
        "before = 'corral.channels._channel' in sys.modules; "
        "from corral import Channel; "
        "print(before, 'corral.channels._channel' in sys.modules, "
        "Channel is corral.Channel, 'Channel' in dir(corral))"
    )
    assert python(probe).split() == ["False", "True", "True", "True"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Chanel'"):
        corral.Chanel  # noqa: B018


def import_overhead_seconds(runs: int = 9) -> float:
    """Best of ``runs``: how long ``import corral`` takes once asyncio is imported.

    Measured inside fresh interpreters, so the difference is exactly what corral adds
    on top of ``import asyncio``. Bytecode caching is allowed (as in any installed
    package): the first run writes the caches, the others use them.
    """
    probe = (
        "import asyncio, time; start = time.perf_counter(); "
        "import corral; print(time.perf_counter() - start)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return min(float(python(probe, env)) for _ in range(runs))


def test_import_corral_stays_within_budget_over_asyncio() -> None:
    overhead = import_overhead_seconds()
    assert overhead <= IMPORT_BUDGET, (
        f"import corral took {overhead * 1000:.1f} ms on top of import asyncio, "
        f"over the {IMPORT_BUDGET * 1000:.0f} ms budget"
    )


def defined_public_names(module: types.ModuleType) -> set[str]:
    """Public attributes that are corral's own: not modules, not imported helpers."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        origin = getattr(value, "__module__", None)
        if isinstance(origin, str) and not origin.startswith("corral"):
            continue  # imported from elsewhere: typing helpers, __future__ features
        names.add(name)
    return names


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_a_tuple_of_unique_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert isinstance(module.__all__, tuple)
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_name_in_all_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_in_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    unlisted = defined_public_names(module) - set(module.__all__) - {"__version__"}
    assert unlisted == set()


def test_the_name_check_ignores_imports_but_sees_definitions() -> None:
    module = types.ModuleType("corral.fake")
    exec(
        "from typing import Any\nimport os\n"
        "class Thing: pass\n"
        "def helper(): pass\n"
        "LIMIT = 3\n_private = 1\n",
        module.__dict__,
    )
    assert defined_public_names(module) == {"Thing", "helper", "LIMIT"}


def test_the_wheel_ships_py_typed(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    (wheel,) = tmp_path.glob("corral-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "corral/py.typed" in names
    assert "corral/__init__.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)
    # The compiled promise for this interpreter only (where it builds here), not its source.
    compiled = {name for name in names if name.startswith("corral/_core/_promise_speedups.")}
    expected = {"corral/_core/_promise_speedups.pyi"}
    if _promise.ACCELERATED:
        expected.add(f"corral/_core/_promise_speedups{sysconfig.get_config_var('EXT_SUFFIX')}")
    assert compiled == expected
