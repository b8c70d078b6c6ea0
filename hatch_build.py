"""Build hook: compile corral's promise hot paths (``_promise_speedups.c``) into the wheel.

The compiled module is optional: when no C compiler is at hand, or the interpreter is not
CPython, or ``CORRAL_PURE_PYTHON`` is set (to anything but ``0``), the wheel is built
without it and corral runs its pure-Python promise. An editable install puts the module
beside its source in ``src/corral/_core``, where the editable package is imported from.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "corral._core._promise_speedups"
SOURCE = Path("src/corral/_core/_promise_speedups.c")


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the promise speedups for wheels and editable installs."""

    PLUGIN_NAME = "corral-speedups"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or not _wanted():
            return
        root = Path(self.root)
        self._work = Path(tempfile.mkdtemp(prefix="corral-build-"))
        try:
            built = _compile(root, self._work)
        except Exception as exc:  # no compiler, no headers: build the pure-Python wheel
            print(f"corral: building without the compiled promise ({exc})", file=sys.stderr)
            return
        target = f"corral/_core/{built.name}"
        if version == "editable":
            shutil.copy2(built, root / "src" / target)
        else:
            build_data["force_include"][str(built)] = target
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the compiler's work directory once the wheel holds what it built."""
        work: Path | None = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _wanted() -> bool:
    if os.environ.get("CORRAL_PURE_PYTHON", "") not in ("", "0"):
        return False
    if platform.python_implementation() != "CPython":
        return False
    return not sysconfig.get_config_var("Py_GIL_DISABLED")


def _compile(root: Path, work: Path) -> Path:
    """Compile the extension in ``work`` with setuptools' compiler; return the module file."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    source = root / SOURCE
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    extension = Extension(
        MODULE,
        [str(source)],
        define_macros=[("CORRAL_SOURCE_SHA256", f'"{digest}"')],
        extra_compile_args=[] if os.name == "nt" else ["-O2", "-std=c11"],
    )
    distribution = Distribution({"name": "corral-speedups", "ext_modules": [extension]})
    command = build_ext(distribution)
    command.build_lib = str(work / "lib")
    command.build_temp = str(work / "temp")
    command.ensure_finalized()
    command.run()
    return Path(command.get_ext_fullpath(MODULE))
