"""``corral bench``: the command around the harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from corral.cli import app
from corral.cli._bench import find_checkout

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_smoke_run_prints_a_table_per_workload_with_ratios() -> None:
    result = runner.invoke(app, ["bench", "--smoke", "timeout", "all"], env=WIDE)
    assert result.exit_code == 0, result.output
    output = result.output
    assert "smoke run: tiny sizes, floors not judged; best of 1" in output
    assert "Enter and exit a timeout block that does not expire (n=100 blocks)" in output
    assert "asyncio.timeout" in output
    assert "asyncio.gather" in output
    assert "baseline" in output
    assert "floor corral.all <= 1.1x asyncio.gather" in output
    assert "FAILS" not in output
    assert output.count("not judged (smoke run)") == 3
    assert output.index("timeout block") < output.index("Await many coroutines")


def test_json_report_is_written(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    result = runner.invoke(app, ["bench", "--smoke", "--json", str(target), "all"], env=WIDE)
    assert result.exit_code == 0, result.output
    data = json.loads(target.read_text())
    assert data["smoke"] is True
    assert [workload["name"] for workload in data["workloads"]] == ["all"]
    cases = data["workloads"][0]["cases"]
    assert {case["name"] for case in cases} == {"corral.all", "asyncio.gather"}
    assert all(case["best_seconds"] > 0 for case in cases)


def test_markdown_prints_the_docs_table() -> None:
    result = runner.invoke(app, ["bench", "--smoke", "--markdown", "--repeat", "2", "all"])
    assert result.exit_code == 0, result.output
    assert "best of 2 (smoke sizes, not meaningful)." in result.output
    assert "| workload | case | best | vs baseline |" in result.output
    assert "| all (n=100) | asyncio.gather |" in result.output
    assert "| corral.all <= 1.1x asyncio.gather |" in result.output


def test_unknown_workload_is_a_usage_error() -> None:
    result = runner.invoke(app, ["bench", "--smoke", "nope"], env=WIDE)
    assert result.exit_code == 2
    assert "unknown workload(s) nope" in result.output


def test_repeat_must_be_positive() -> None:
    result = runner.invoke(app, ["bench", "--repeat", "0"], env=WIDE)
    assert result.exit_code == 2
    assert "--repeat" in result.output


def test_outside_a_checkout_the_error_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(typer.BadParameter, match="no benchmarks/ directory found"):
        find_checkout([tmp_path])


def test_the_checkout_is_found_from_the_installed_package() -> None:
    root = find_checkout()
    assert (root / "benchmarks" / "_harness.py").is_file()
