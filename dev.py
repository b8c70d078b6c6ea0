#!/usr/bin/env python3
"""Developer entry point for corral: one command per everyday task.

Needs nothing but Python 3.11 or newer. Every command first makes sure the project's
virtual environment exists and has corral installed (editable, with every extra), then
runs a tool inside it:

    python3 dev.py demo          show what corral can do
    python3 dev.py test [ARGS]   run the test suite with branch coverage
    python3 dev.py lint          ruff check, ruff format --check, mypy
    python3 dev.py bench [ARGS]  run the benchmarks (see `corral bench --help`)
    python3 dev.py docs          build the documentation site strictly
    python3 dev.py setup         only create or update the environment

The environment lives in `.venv` next to this file, or wherever the CORRAL_VENV
environment variable points (a path relative to the repository, or absolute); CI uses
that to run these very commands in a clean environment. The install step is repeated
only when what it builds from changed since the last install (pyproject.toml, the build
hook, or the C source of the compiled promise, which an editable install compiles): the
environment keeps their hash in a stamp file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MIN_PYTHON = (3, 11)
EXTRAS = "all,dev"
STAMP_NAME = ".corral-install-stamp"
PYTEST_NO_TESTS_COLLECTED = 5

COMMANDS = {
    "demo": "show each capability of corral with real output (`corral demo`)",
    "test": "run the test suite under coverage; extra arguments go to pytest",
    "lint": "run ruff check, ruff format --check and mypy --strict",
    "bench": "run the benchmarks; extra arguments go to `corral bench`",
    "docs": "build the documentation site with `mkdocs build --strict`",
    "setup": "create or update the virtual environment, then stop",
}


def venv_dir() -> Path:
    """The environment to use: $CORRAL_VENV (relative to the repository) or .venv."""
    configured = os.environ.get("CORRAL_VENV", "").strip()
    path = Path(configured) if configured else Path(".venv")
    return path if path.is_absolute() else ROOT / path


def venv_python(env: Path) -> Path:
    """The interpreter inside the environment ``env``."""
    if os.name == "nt":
        return env / "Scripts" / "python.exe"
    return env / "bin" / "python"


#: What an install builds from: a change to any of them means installing again.
INSTALL_INPUTS = ("pyproject.toml", "hatch_build.py", "src/corral/_core/_promise_speedups.c")


def pyproject_hash() -> str:
    """The stamp value: what the environment was installed from, and for which extras."""
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        digest.update((ROOT / name).read_bytes())
    digest.update(EXTRAS.encode())
    return digest.hexdigest()


def run(command: Sequence[str | os.PathLike[str]]) -> int:
    """Run ``command`` in the repository and return its exit code."""
    print("+", " ".join(str(part) for part in command), flush=True)
    return subprocess.call([str(part) for part in command], cwd=ROOT)


def ensure_environment() -> Path:
    """Create or reuse the environment; (re)install corral when what it builds from changed.

    Returns the environment's Python interpreter.
    """
    env = venv_dir()
    python = venv_python(env)
    if not python.exists():
        print(f"creating virtual environment {env} with Python {sys.version.split()[0]}")
        venv.EnvBuilder(with_pip=True, clear=env.exists()).create(env)
    stamp = env / STAMP_NAME
    wanted = pyproject_hash()
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print(f"installing corral[{EXTRAS}] into {env} (its build inputs changed since then)")
    code = run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    if code == 0:
        code = run([python, "-m", "pip", "install", "--quiet", "-e", f".[{EXTRAS}]"])
    if code != 0:
        sys.exit(f"dev.py: installing into {env} failed (exit {code})")
    stamp.write_text(wanted + "\n")
    return python


def cmd_test(python: Path, args: Sequence[str]) -> int:
    """Run pytest under coverage (branch), then report; a partial run has no threshold.

    Coverage starts before pytest does, so modules that pytest plugins import early
    (corral's own plugin imports corral) are measured from their first line.
    """
    code = run([python, "-m", "coverage", "run", "--branch", "-m", "pytest", *args])
    if code == PYTEST_NO_TESTS_COLLECTED:
        print("dev.py: pytest collected no tests; that is a failure, not a pass", file=sys.stderr)
    if code != 0:
        return code
    report: list[str | Path] = [python, "-m", "coverage", "report"]
    if args:
        # A subset of the suite cannot meet the whole-project coverage threshold.
        report.append("--fail-under=0")
    return run(report)


def cmd_lint(python: Path) -> int:
    """Run every linter even when an earlier one fails; fail if any failed."""
    linters: list[tuple[str, list[str | Path]]] = [
        ("ruff check", [python, "-m", "ruff", "check", "."]),
        ("ruff format", [python, "-m", "ruff", "format", "--check", "."]),
        ("mypy", [python, "-m", "mypy"]),
    ]
    failed = [name for name, command in linters if run(command) != 0]
    if failed:
        print(f"dev.py: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``dev.py COMMAND [ARGS...]``; everything after COMMAND is passed through."""
    commands = "\n".join(f"  {name:<7} {text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="dev.py",
        usage="python3 dev.py COMMAND [ARGS...]",
        description=f"Work on corral with nothing but Python 3.11+.\n\ncommands:\n{commands}",
        epilog=(
            "The environment is .venv, or the path in $CORRAL_VENV. It is created on first\n"
            "use, and corral is reinstalled (editable, extras all,dev) whenever pyproject.toml\n"
            "changes. Examples:\n"
            "  python3 dev.py test -x tests/cli     a subset (coverage threshold not enforced)\n"
            "  python3 dev.py test --help           pytest's own options\n"
            "  python3 dev.py bench --smoke         every benchmark once, tiny sizes"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="see above")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the tool")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one dev.py command and return its exit code."""
    if sys.version_info < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        sys.exit(f"dev.py needs Python {wanted} or newer, this is {sys.version.split()[0]}")
    options = parse(sys.argv[1:] if argv is None else argv)
    args: list[str] = options.args
    if options.command in {"lint", "docs", "setup", "demo"} and args:
        sys.exit(f"dev.py {options.command} takes no arguments, got {' '.join(args)}")
    python = ensure_environment()
    if options.command == "setup":
        return 0
    if options.command == "test":
        return cmd_test(python, args)
    if options.command == "lint":
        return cmd_lint(python)
    if options.command == "docs":
        return run([python, "-m", "mkdocs", "build", "--strict"])
    corral_command = "demo" if options.command == "demo" else "bench"
    return run([python, "-m", "corral", corral_command, *args])


if __name__ == "__main__":
    sys.exit(main())
