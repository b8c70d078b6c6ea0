"""The ``corral`` command itself: version, help, and both ways of starting it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

import corral
from corral.cli import _app, app

runner = CliRunner()


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"corral {corral.__version__}\n"


def test_no_arguments_shows_help_listing_the_commands() -> None:
    result = runner.invoke(app, [], env={"COLUMNS": "120"})
    assert "Usage:" in result.output
    assert "demo" in result.output
    assert "bench" in result.output
    assert "--version" in result.output


def test_command_help_explains_the_options() -> None:
    result = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for option in ("--smoke", "--repeat", "--json", "--markdown"):
        assert option in result.output
    demo_help = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "120"})
    assert demo_help.exit_code == 0
    assert "--list" in demo_help.output


def test_python_dash_m_corral_runs_the_same_app() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "corral", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"corral {corral.__version__}\n"


def test_importing_corral_cli_does_not_run_the_demo_sections() -> None:
    code = "import sys, corral.cli; print('corral.cli._demo_sections' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "False"


def test_piped_output_is_wide_unless_columns_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert _app._console().width == 120
    monkeypatch.setenv("COLUMNS", "90")
    assert _app._console().width == 90
