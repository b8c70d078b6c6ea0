"""``corral events``: streams, show, tail and stats on real SQLite files (and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from typer.testing import CliRunner, Result

import corral
from corral.backends.sqlite import SqliteEventStore
from corral.cli import _events_render, _events_run, app
from corral.eventsourcing import NewEvent

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
ISO_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

#: Longest a subprocess may take to show a line or to end (the machine may be loaded).
PATIENCE = 60.0


def events(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["events", *args], env={**WIDE, **(env or {})})


def append(url: str, appends: list[tuple[str, list[NewEvent]]], delete: str = "") -> None:
    """Append to the store at ``url`` (creating it), then soft-delete ``delete``."""

    async def main() -> None:
        async with corral.connect(url) as store:
            for stream, new in appends:
                await store.append(stream, new)
            if delete:
                await store.delete_stream(delete)

    asyncio.run(main())


def placed(total: int) -> NewEvent:
    return NewEvent("Placed", json.dumps({"total": total, "items": ["tea"]}).encode())


@pytest.fixture
def shop(tmp_path: Path) -> str:
    """A SQLite store with orders (order-2 deleted), a binary invoice and a text note."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    append(
        url,
        [
            ("order-1", [placed(30), NewEvent("Paid", b'{"amount": 30}', metadata=b'{"by": 1}')]),
            ("order-2", [placed(12)]),
            ("invoice-1", [NewEvent("Issued", bytes(range(40)), content_type="x/pdf")]),
            ("note-1", [NewEvent("Written", b"[bold]hi[/bold]", content_type="text/plain")]),
        ],
        delete="order-2",
    )
    return url


def rows(output: str) -> list[list[str]]:
    """The cells of each row of a rich table in ``output``."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


# -- streams -----------------------------------------------------------------------------


def test_streams_lists_each_stream_with_its_state(shop: str) -> None:
    result = events("streams", shop)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].strip() == "4 streams"
    table = rows(result.output)
    assert [row[:5] for row in table] == [
        ["invoice-1", "1", "1", "", "4"],
        ["note-1", "1", "1", "", "5"],
        ["order-1", "2", "2", "", "2"],
        ["order-2", "1", "0", "deleted", "3"],
    ]
    assert all(re.fullmatch(ISO_TIME, row[5]) for row in table)


def test_streams_with_a_prefix_and_a_limit(shop: str) -> None:
    result = events("streams", shop, "--prefix", "order-")
    assert [row[0] for row in rows(result.output)] == ["order-1", "order-2"]
    assert "2 streams named order-..." in result.output
    limited = events("streams", shop, "--limit", "1")
    assert [row[0] for row in rows(limited.output)] == ["invoice-1"]
    assert "first 1 stream" in limited.output
    none = events("streams", shop, "--prefix", "user-")
    assert none.exit_code == 0
    assert none.output == "no streams named user-...\n"
    assert events("streams", shop, "--limit", "0").exit_code == 2


# -- show --------------------------------------------------------------------------------


def test_show_prints_json_indented_text_as_text_and_binary_as_hex(shop: str) -> None:
    result = events("show", shop, "order-1")
    assert result.exit_code == 0, result.output
    assert "stream 'order-1': version 2, 2 events shown" in result.output
    table = rows(result.output)
    assert table[0][:3] == ["1", "1", "Placed"]
    assert re.fullmatch(ISO_TIME, table[0][3])
    data = [row[4] for row in table]
    assert data[:5] == ["{", '"total": 30,', '"items": [', '"tea"', "]"]
    note = rows(events("show", shop, "note-1").output)
    assert note[0][4] == "[bold]hi[/bold]"  # shown as it is, not as markup
    invoice = rows(events("show", shop, "invoice-1").output)
    assert invoice[0][4] == "40 bytes: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f ..."


def test_show_reads_backwards_from_a_version_with_a_limit(shop: str) -> None:
    url = shop
    append(url, [("order-1", [placed(n) for n in range(3)])])
    backwards = events("show", url, "order-1", "--backwards", "--from-version", "4", "--limit", "2")
    assert [row[0] for row in rows(backwards.output) if row[0]] == ["4", "3"]
    forwards = events("show", url, "order-1", "--from-version", "4")
    assert [row[0] for row in rows(forwards.output) if row[0]] == ["4", "5"]


def test_show_metadata_column(shop: str) -> None:
    result = events("show", shop, "order-1", "--metadata")
    paid = [row for row in rows(result.output) if row[0] == "2"]
    assert paid[0][-1] == '{"by": 1}'


def test_show_json_prints_one_object_per_line(shop: str) -> None:
    result = events("show", shop, "order-1", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["stream"], r["version"], r["position"], r["type"]) for r in lines] == [
        ("order-1", 1, 1, "Placed"),
        ("order-1", 2, 2, "Paid"),
    ]
    first, second = lines
    assert first["data"] == {"total": 30, "items": ["tea"]}
    assert first["metadata"] is None
    assert second["metadata"] == {"by": 1}
    assert re.fullmatch(ISO_TIME, first["recorded_at"])
    uuid.UUID(first["id"])
    (invoice,) = [
        json.loads(line) for line in events("show", shop, "invoice-1", "--json").stdout.splitlines()
    ]
    assert "data" not in invoice
    assert invoice["data_base64"] == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw=="


def test_show_a_deleted_stream_and_a_stream_without_events(shop: str) -> None:
    deleted = events("show", shop, "order-2")
    assert deleted.exit_code == 0
    assert deleted.output.strip() == "stream 'order-2': version 1, deleted, 0 events shown"
    missing = events("show", shop, "order-9")
    assert missing.exit_code == 1
    assert missing.stderr == f"error: stream 'order-9' has no events in {shop}\n"
    missing_json = events("show", shop, "order-9", "--json")
    assert (missing_json.exit_code, missing_json.stdout) == (1, "")


# -- stats -------------------------------------------------------------------------------


def test_stats_counts_events_and_streams_and_sizes_the_file(shop: str, tmp_path: Path) -> None:
    result = events("stats", shop)
    assert result.exit_code == 0, result.output
    figures = {row[0]: row[1] for row in rows(result.output)}
    assert figures["engine"] == "sqlite"
    assert figures["events"] == "5"
    assert figures["streams"] == "4 (1 deleted)"
    assert figures["head position"] == "5"
    assert re.fullmatch(ISO_TIME, figures["last recorded (UTC)"])
    assert figures["file"] == str(tmp_path / "shop.db")
    assert re.fullmatch(r"\d+\.\d KiB", figures["file size"])


def test_stats_of_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    append(url, [])
    figures = {row[0]: row[1] for row in rows(events("stats", url).output)}
    assert (figures["events"], figures["streams"], figures["head position"]) == ("0", "0", "0")
    assert figures["last recorded (UTC)"] == "-"


# -- bad input and unusable stores: one line, no traceback ---------------------------------


@pytest.mark.parametrize("command", [["streams"], ["show", "s"], ["stats"], ["tail"]])
def test_a_missing_file_is_an_error_naming_it_and_is_not_created(
    command: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "nothing.db"
    name, *rest = command
    result = events(name, f"sqlite:///{path}", *rest)
    assert result.exit_code == 1
    assert result.stderr == f"error: SQLite database {str(path)!r} does not exist\n"
    assert not path.exists()


def test_a_database_that_is_not_a_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("CREATE TABLE things (x)")
    before = path.read_bytes()
    result = events("streams", f"sqlite:///{path}")
    assert result.exit_code == 1
    assert "not a corral event store" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("memory://", [], "memory:// would open a new, empty store"),
        ("app.db", [], "url must look like scheme://..., got 'app.db'"),
        ("redis://localhost", [], "url scheme 'redis' is not supported"),
        ("sqlite://app.db", [], "a sqlite url is sqlite:///PATH"),
        ("sqlite:///app.db", ["--schema", "x"], "--schema applies to postgresql:// URLs only"),
    ],
)
def test_a_bad_url_is_a_usage_error(url: str, options: list[str], message: str) -> None:
    result = events("streams", url, *options)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.splitlines()) == 1


def test_a_dead_database_is_one_line_and_status_one() -> None:
    result = events("stats", "postgresql://127.0.0.1:1/test")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: PostgreSQL postgresql://127.0.0.1:1/test")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_tail_refuses_two_filters_or_two_starts(shop: str) -> None:
    both = events("tail", shop, "--stream", "a", "--category", "b")
    assert both.exit_code == 2
    assert "not both" in both.stderr
    starts = events("tail", shop, "--from-position", "3", "--from-end")
    assert starts.exit_code == 2
    assert starts.stderr == "error: give --from-position or --from-end, not both\n"


# -- tail --------------------------------------------------------------------------------


def test_tail_prints_stored_events_in_global_order_then_stops_at_count(shop: str) -> None:
    result = events("tail", shop, "--count", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(rf"{ISO_TIME}  1  order-1@1  Placed  {{\"total\": 30, .*}}", lines[0])
    assert lines[1].endswith('  2  order-1@2  Paid  {"amount": 30}')
    assert "  3  order-2@1  Placed  " in lines[2]
    assert result.stderr == f"following all of {shop} from position 1 (Ctrl-C to stop)\n"


def test_tail_filters_by_category_or_stream_from_a_position(shop: str) -> None:
    category = events("tail", shop, "--category", "order", "--from-position", "2", "--count", "2")
    assert [line.split("  ")[1:3] for line in category.stdout.splitlines()] == [
        ["2", "order-1@2"],
        ["3", "order-2@1"],
    ]
    stream = events("tail", shop, "--stream", "note-1", "--count", "1", "--json")
    assert json.loads(stream.stdout)["data_base64"] == "W2JvbGRdaGlbL2JvbGRd"


def test_tail_in_process_sees_an_append_made_while_it_follows(shop: str) -> None:
    """A background thread appends once the tail has caught up (it waits for events)."""
    started = threading.Event()
    original = SqliteEventStore._fetch_all
    empty_reads = 0

    async def fetch_all(self: SqliteEventStore, start: int, count: int) -> Any:
        nonlocal empty_reads
        page = await original(self, start, count)
        if not page:
            empty_reads += 1
            started.set()
        return page

    def later() -> None:
        assert started.wait(PATIENCE)
        append(shop, [("order-3", [placed(7)])])

    appender = threading.Thread(target=later)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SqliteEventStore, "_fetch_all", fetch_all)
        appender.start()
        result = events("tail", shop, "--from-end", "--count", "1", "--poll-interval", "0.01")
    appender.join()
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert "  6  order-3@1  Placed  " in line
    assert empty_reads >= 1
    assert "from position 6" in result.stderr


def _child(url: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "corral", "events", "tail", url, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _line(stream: IO[str] | None) -> str:
    """The next line of ``stream`` (a child's pipe), or fail after ``PATIENCE`` seconds."""
    assert stream is not None
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(PATIENCE)
    assert found, "no line from the child"
    return found[0]


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for child in started:
            if child.poll() is None:
                child.kill()
            child.wait()
            for pipe in (child.stdout, child.stderr):
                if pipe is not None:
                    pipe.close()


def test_tail_in_a_process_follows_appends_of_another_and_stops_at_count(
    shop: str, children: list[subprocess.Popen[str]]
) -> None:
    child = _child(shop, "--from-end", "--count", "2", "--poll-interval", "0.05")
    children.append(child)
    assert "from position 6" in _line(child.stderr)  # caught up: only new events follow
    append(shop, [("order-3", [placed(1), placed(2)])])
    assert child.wait(PATIENCE) == 0
    assert child.stdout is not None
    out = child.stdout.read().splitlines()
    assert [line.split("  ")[1:3] for line in out] == [["6", "order-3@1"], ["7", "order-3@2"]]


def test_ctrl_c_ends_tail_cleanly(shop: str, children: list[subprocess.Popen[str]]) -> None:
    child = _child(shop, "--stream", "order-1")
    children.append(child)
    assert "order-1@1" in _line(child.stdout)
    assert "order-1@2" in _line(child.stdout)
    child.send_signal(signal.SIGINT)
    assert child.wait(PATIENCE) == 0
    assert child.stderr is not None
    errors = child.stderr.read()
    assert "Traceback" not in errors
    assert errors.startswith("following stream 'order-1'")


# -- help --------------------------------------------------------------------------------


def test_help_names_every_command_and_option() -> None:
    result = runner.invoke(app, ["events", "--help"], env=WIDE)
    assert result.exit_code == 0
    for command in ("streams", "show", "tail", "stats"):
        assert command in result.output
    tail = runner.invoke(app, ["events", "tail", "--help"], env=WIDE)
    for option in ("--stream", "--category", "--from-position", "--from-end", "--count"):
        assert option in tail.output


def test_corral_help_does_not_import_the_store() -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom corral.cli import app\n"
        "CliRunner().invoke(app, ['events', '--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('corral.backends', "
        "'corral.eventsourcing', 'asyncpg', 'sqlite3'))))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"


# -- PostgreSQL ----------------------------------------------------------------------------

PG_URL = os.environ.get("CORRAL_POSTGRES_URL") or "postgresql://127.0.0.1:5432/test"


@pytest.mark.postgres
def test_streams_show_and_stats_on_postgresql() -> None:
    import asyncpg

    from corral.backends.postgres import PostgresEventStore

    schema = f"corral_test_{uuid.uuid4().hex[:16]}"

    async def fill() -> None:
        store = await PostgresEventStore.open(PG_URL, schema=schema)
        async with store:
            await store.append("order-1", [placed(30), placed(31)])
            await store.append("order-2", [placed(5)])

    async def drop() -> None:
        connection = await asyncpg.connect(PG_URL)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await connection.close()

    try:
        absent = events("streams", PG_URL, "--schema", schema)
        assert absent.exit_code == 1
        assert f"no corral event store in schema '{schema}'" in absent.stderr
        asyncio.run(fill())
        listed = rows(events("streams", PG_URL, "--schema", schema).output)
        assert [row[:4] for row in listed] == [["order-1", "2", "2", ""], ["order-2", "1", "1", ""]]
        shown = events("show", PG_URL, "order-1", "--schema", schema, "--json")
        assert [json.loads(line)["data"]["total"] for line in shown.stdout.splitlines()] == [30, 31]
        figures = {
            row[0]: row[1] for row in rows(events("stats", PG_URL, "--schema", schema).output)
        }
        assert (figures["engine"], figures["events"], figures["streams"]) == ("postgres", "3", "2")
        assert int(figures["head position"]) == int(listed[1][4])
        assert "file size" not in figures
        tailed = events("tail", PG_URL, "--schema", schema, "--count", "3", "--json")
        assert [json.loads(line)["stream"] for line in tailed.stdout.splitlines()] == [
            "order-1",
            "order-1",
            "order-2",
        ]
    finally:
        asyncio.run(drop())


# -- rendering ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type", "shown"),
    [
        (b'{"a": [1, 2]}', "application/json", '{"a": [1, 2]}'),
        (b'{"a": 1}', "application/vnd.shop+json; charset=utf-8", '{"a": 1}'),
        (b"{not json", "application/json", "not JSON, 9 bytes: 7b 6e 6f 74 20 6a 73 6f 6e"),
        (b"\xff\xfe", "application/json", "not JSON, 2 bytes: ff fe"),
        (b"caf\xc3\xa9 \xff", "text/plain", "café \ufffd"),
        (b"", "application/octet-stream", "0 bytes"),
    ],
)
def test_data_is_shown_by_content_type(data: bytes, content_type: str, shown: str) -> None:
    assert _events_render.show_data(data, content_type, pretty=False) == shown


def test_sizes_and_times_read_well() -> None:
    assert _events_run._bytes(1023) == "1023 bytes"
    assert _events_run._bytes(20480) == "20.0 KiB"
    assert _events_run._bytes(3 * 1024**3) == "3.0 GiB"
    assert _events_render.timestamp(0.0015) == "1970-01-01T00:00:00.001Z"
