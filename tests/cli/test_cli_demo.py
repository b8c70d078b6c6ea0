"""``corral demo`` and the registry its sections live in."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from rich.console import Console
from typer.testing import CliRunner

from corral.cli import _demo, app
from corral.errors import InvalidArgumentError, UsageError

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def shown_output(text: str) -> str:
    """What a single section's example printed: the text of its output panel."""
    return text.split("output ─", 1)[1]


SECTION_KEYS = [
    "promises",
    "combinators",
    "cancellation",
    "structured-concurrency",
    "virtual-time",
    "go-helpers",
    "channels",
    "threads",
    "simulation",
    "limits-and-retries",
    "mapping-and-pipelines",
    "resilience",
    "caching-and-pools",
    "adaptive-limits",
    "event-store",
    "projections",
]


@pytest.fixture
def scratch_registry() -> Iterator[dict[str, _demo.Section]]:
    """Register test sections without leaving them behind."""
    saved = dict(_demo.SECTIONS)
    yield _demo.SECTIONS
    _demo.SECTIONS.clear()
    _demo.SECTIONS.update(saved)


def test_every_section_is_registered_in_order() -> None:
    assert list(_demo.registered()) == SECTION_KEYS


def test_list_names_every_section() -> None:
    result = runner.invoke(app, ["demo", "--list"], env=WIDE)
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert listed == SECTION_KEYS


def test_full_demo_runs_every_section_cleanly() -> None:
    result = runner.invoke(app, ["demo"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert f"{len(SECTION_KEYS)} sections ran cleanly" in result.output
    assert "unavailable" not in result.output
    assert "Traceback" not in result.output


def test_promises_section_shows_chaining_and_filtered_catch() -> None:
    result = runner.invoke(app, ["demo", "promises"], env=WIDE)
    assert result.exit_code == 0, result.output
    output = shown_output(result.output)
    assert "awaited: 42" in output
    assert "caught: no 'user:7'" in output
    assert "try_: ValueError(" in output
    assert "<Promise fulfilled 21>" in output


def test_combinators_section_shows_each_combinator_result() -> None:
    result = runner.invoke(app, ["demo", "combinators"], env=WIDE)
    assert result.exit_code == 0, result.output
    output = shown_output(result.output)
    for line in (
        "all: ['a', 'b']",
        "all_keyed: {'x': 'a', 'y': 'b'}",
        "all_settled: [Fulfilled('a'), Rejected(ConnectionError('b is down'))]",
        "any: up",
        "race: fast",
        "limit=3: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81], at most 3 at once",
    ):
        assert line in output


def test_cancellation_section_shows_scopes_cutting_blocks_short() -> None:
    result = runner.invoke(app, ["demo", "cancellation"], env=WIDE)
    assert result.exit_code == 0, result.output
    output = shown_output(result.output)
    assert "move_on_after: cut short = True" in output
    assert "fail_after raised DeadlineExceeded (a TimeoutError)" in output
    assert "the nearest deadline wins: 0.05 s left" in output
    assert "shielded cleanup finished" in output
    assert "outer scope cancelled: True" in output


def test_structured_concurrency_section_shows_group_semantics() -> None:
    result = runner.invoke(app, ["demo", "structured-concurrency"], env=WIDE)
    assert result.exit_code == 0, result.output
    output = shown_output(result.output)
    assert output.index("fast done") < output.index("slow done")
    assert output.index("slow done") < output.index("all children done")
    assert "handle.result() = handle" in output
    assert "server ready on port 8080" in output
    assert "sibling cancelled; errors: (ValueError('broken worker'),)" in output
    assert "never finishes done" not in output


def test_virtual_time_section_reports_virtual_seconds() -> None:
    result = runner.invoke(app, ["demo", "virtual-time"], env=WIDE)
    assert result.exit_code == 0, result.output
    output = shown_output(result.output)
    assert "cut short after 30 s: True" in output
    assert "virtual time: 30.5 s" in output


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("mapping-and-pipelines", "map_all: 50 pages of 0.1 s, 10 at a time, in 0.5 s"),
        ("mapping-and-pipelines", "[[1, 4, 16, 25, 49], [64, 100, 121, 169, 196], [256, 289"),
        ("resilience", "breaker: open after 4 failures, 2 calls rejected"),
        ("resilience", "hedge: answer from attempt 2 after 0.15 s"),
        ("resilience", "policy(fallback, retry, timeout): cached answer"),
        ("caching-and-pools", "30 lookups of 3 users made 3 calls (27 shared one)"),
        ("caching-and-pools", "10 queries used 2 connections"),
        ("caching-and-pools", "12 loads ('user 0', ...) made 1 call: [[0, 1, 2, 3]]"),
        ("event-store", "expected version 1, actual version 2"),
        ("event-store", "is not duplicated: (1,)"),
        ("event-store", "v2 #2 Deposited {'amount': 50}"),
        ("projections", "again: 0 and 0"),
        ("projections", "revenue: [('mon', 2000), ('tue', 500)]"),
        ("projections", "read your writes: tuesday is now (1200,)"),
        ("projections", "4 invoices, one per order"),
        ("projections", "rebuilt from zero: 4 events"),
    ],
)
def test_later_sections_show_their_measured_effect(key: str, expected: str) -> None:
    result = runner.invoke(app, ["demo", key], env=WIDE)
    assert result.exit_code == 0, result.output
    assert expected in shown_output(result.output)


def test_adaptive_section_settles_below_where_it_started() -> None:
    result = runner.invoke(app, ["demo", "adaptive-limits"], env=WIDE)
    assert result.exit_code == 0, result.output
    settled = re.search(r"started at 50 and settled at (\d+)", shown_output(result.output))
    assert settled is not None
    assert 8 <= int(settled.group(1)) < 50


def test_demo_shows_the_example_code_it_runs() -> None:
    result = runner.invoke(app, ["demo", "virtual-time"], env=WIDE)
    code = result.output.split("output ─", 1)[0]
    assert "virtual = corral.testing.run(main)" in code
    assert "def virtual_time" not in code


def test_unknown_section_is_a_usage_error_naming_it() -> None:
    result = runner.invoke(app, ["demo", "nope"], env=WIDE)
    assert result.exit_code == 2
    assert "unknown section 'nope'" in result.output
    assert "promises" in result.output


def test_registering_a_key_twice_is_refused(
    scratch_registry: dict[str, _demo.Section],
) -> None:
    with pytest.raises(UsageError, match="'combinators' is already registered"):
        _demo.section("combinators", "again", "again")(lambda: None)


def test_missing_names_reports_what_this_build_lacks() -> None:
    assert _demo.missing_names(["TaskGroup", "testing.run"]) == []
    assert _demo.missing_names(["NoSuchThing", "testing.nope", "nomodule.x"]) == [
        "NoSuchThing",
        "testing.nope",
        "nomodule.x",
    ]


def example_with_docstring() -> None:
    """Not shown."""
    value = 1 + 1
    print(value)


def example_only_docstring() -> None:
    """Nothing else."""


def test_example_source_is_the_body_without_def_and_docstring() -> None:
    assert _demo.example_source(example_with_docstring) == "value = 1 + 1\nprint(value)"
    with pytest.raises(InvalidArgumentError, match="example_only_docstring"):
        _demo.example_source(example_only_docstring)


def failing_example() -> None:
    print("before the failure")
    raise RuntimeError("example broke")


def test_a_failing_section_is_reported_and_fails_the_demo() -> None:
    console = Console(record=True, width=120)
    entry = _demo.Section("broken", "Broken", "fails", (), failing_example)
    assert _demo.run_demo([entry], console) is False
    text = console.export_text()
    assert "before the failure" in text
    assert "RuntimeError: example broke" in text
    assert "1 of 1 sections did not run cleanly" in text


def test_a_section_needing_a_missing_name_is_reported_unavailable() -> None:
    console = Console(record=True, width=120)
    entry = _demo.Section("future", "Future", "later", ("NotYetThere",), failing_example)
    assert _demo.run_section(entry, console) is False
    text = console.export_text()
    assert "unavailable: this build has no corral.NotYetThere" in text
    assert "before the failure" not in text
