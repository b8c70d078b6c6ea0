"""``corral events rebuild`` and ``stats --read-model``, on real SQLite files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import textwrap
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import corral
from corral.cli import app
from corral.eventsourcing import NewEvent

runner = CliRunner()
WIDE = {"COLUMNS": "200"}

PROJECTION = """
import json

from corral.backends.sqlite import SqliteTransaction
from corral.eventsourcing import Projection, RecordedEvent


class OrderTotals(Projection[SqliteTransaction]):
    name = "order-totals"
    categories = ("order",)

    async def setup(self, tx: SqliteTransaction) -> None:
        await tx.execute("CREATE TABLE IF NOT EXISTS totals (stream TEXT PRIMARY KEY, total INT)")

    async def reset(self, tx: SqliteTransaction) -> None:
        await tx.execute("DROP TABLE IF EXISTS totals")

    async def apply(self, event: RecordedEvent, tx: SqliteTransaction) -> None:
        if event.type == "Broken":
            raise ValueError("cannot total a broken order")
        await tx.execute(
            "INSERT INTO totals VALUES (?, ?) ON CONFLICT (stream) "
            "DO UPDATE SET total = total + excluded.total",
            (event.stream, json.loads(event.data)["total"]),
        )


totals = OrderTotals()


def make_totals() -> OrderTotals:
    return OrderTotals()


not_a_projection = 42


def makes_a_string() -> str:
    return "totals"
"""


def events(*args: str) -> Result:
    return runner.invoke(app, ["events", *args], env=WIDE)


def append(url: str, appends: list[tuple[str, list[NewEvent]]]) -> None:
    async def main() -> None:
        async with corral.connect(url) as store:
            for stream, new in appends:
                await store.append(stream, new)

    asyncio.run(main())


def placed(total: int) -> NewEvent:
    return NewEvent("Placed", json.dumps({"total": total}).encode())


@pytest.fixture
def views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of projections in the current directory; its (fresh) name."""
    name = f"views_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PROJECTION), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.fixture
def shop(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    append(
        url,
        [
            ("order-1", [placed(30), placed(5)]),
            ("invoice-1", [NewEvent("Issued", b"{}")]),
            ("order-2", [placed(12)]),
        ],
    )
    return url


def totals(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return dict(connection.execute("SELECT stream, total FROM totals").fetchall())


def rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def test_rebuild_applies_every_event_of_the_projection_once(
    shop: str, views: str, tmp_path: Path
) -> None:
    read_model = f"sqlite:///{tmp_path / 'views.db'}"
    result = events("rebuild", shop, "--projection", f"{views}:totals", "--read-model", read_model)
    assert result.exit_code == 0, result.output
    assert totals(tmp_path / "views.db") == {"order-1": 35, "order-2": 12}
    assert result.stdout.startswith(f"rebuilt 'order-totals' in {read_model}: 3 events applied in ")
    assert result.stdout.rstrip().endswith("checkpoint at position 4")
    assert "rebuilding order-totals" in result.stderr
    assert "3/3" in result.stderr
    # Again, after more events: the state is rebuilt from nothing, not added to.
    append(shop, [("order-2", [placed(1)])])
    again = events(
        "rebuild", shop, "--projection", f"{views}:make_totals", "--read-model", read_model
    )
    assert again.exit_code == 0, again.output
    assert "4 events applied" in again.stdout
    assert totals(tmp_path / "views.db") == {"order-1": 35, "order-2": 13}


def test_the_projection_may_be_a_class(shop: str, views: str, tmp_path: Path) -> None:
    read_model = f"sqlite:///{tmp_path / 'views.db'}"
    result = events(
        "rebuild", shop, "--projection", f"{views}:OrderTotals", "--read-model", read_model
    )
    assert result.exit_code == 0, result.output
    assert totals(tmp_path / "views.db") == {"order-1": 35, "order-2": 12}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{views}", "--projection must be module:attribute"),
        ("{views}:", "--projection must be module:attribute"),
        ("no_such_module_here:x", "cannot import 'no_such_module_here'"),
        ("{views}:missing", "has no attribute 'missing'"),
        ("{views}:not_a_projection", "is a int, not a Projection"),
        ("{views}:makes_a_string", "made a str, not a Projection"),
    ],
)
def test_a_bad_projection_is_a_usage_error(
    shop: str, views: str, tmp_path: Path, spec: str, message: str
) -> None:
    read_model = f"sqlite:///{tmp_path / 'views.db'}"
    spec = spec.format(views=views)
    result = events("rebuild", shop, "--projection", spec, "--read-model", read_model)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "views.db").exists()


def test_a_failing_projection_is_one_line_naming_the_event_and_the_cause(
    shop: str, views: str, tmp_path: Path
) -> None:
    append(shop, [("order-3", [NewEvent("Broken", b"{}")])])
    read_model = f"sqlite:///{tmp_path / 'views.db'}"
    result = events("rebuild", shop, "--projection", f"{views}:totals", "--read-model", read_model)
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "projection 'order-totals'" in line
    assert "(ValueError: cannot total a broken order)" in line
    assert "Traceback" not in result.output


def test_rebuild_needs_an_existing_store(views: str, tmp_path: Path) -> None:
    result = events(
        "rebuild",
        f"sqlite:///{tmp_path / 'none.db'}",
        "--projection",
        f"{views}:totals",
        "--read-model",
        f"sqlite:///{tmp_path / 'views.db'}",
    )
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_stats_shows_how_far_each_projection_is_behind(
    shop: str, views: str, tmp_path: Path
) -> None:
    read_model = f"sqlite:///{tmp_path / 'views.db'}"
    assert (
        events(
            "rebuild", shop, "--projection", f"{views}:totals", "--read-model", read_model
        ).exit_code
        == 0
    )
    append(shop, [("order-1", [placed(1)]), ("user-1", [NewEvent("Joined", b"{}")])])
    result = events(
        "stats",
        shop,
        "--read-model",
        read_model,
        "--projection",
        "order-totals",
        "--projection",
        "never-run",
    )
    assert result.exit_code == 0, result.output
    assert "projections (head position 6)" in result.output
    table = {row[0]: row[1:] for row in rows(result.output) if len(row) == 3}
    assert table["order-totals"] == ["4", "2"]
    assert table["never-run"] == ["0", "6"]


def test_stats_read_model_options_go_together_and_the_file_must_exist(
    shop: str, tmp_path: Path
) -> None:
    alone = events("stats", shop, "--projection", "order-totals")
    assert alone.exit_code == 2
    assert alone.stderr == "error: give --read-model and --projection together\n"
    missing = tmp_path / "views.db"
    result = events(
        "stats", shop, "--read-model", f"sqlite:///{missing}", "--projection", "order-totals"
    )
    assert result.exit_code == 1
    assert result.stderr == f"error: SQLite read model {str(missing)!r} does not exist\n"
    assert not missing.exists()
