"""What only the SQLite engine does: its file, group commit, cancellation, bad files."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import corral
from corral.backends.sqlite import SqliteEventStore, _connection
from corral.backends.sqlite._connection import SCHEMA_VERSION, prepare_wal, wal_working_size
from corral.errors import ArgumentTypeError, BackendUnavailable, SerializationError
from corral.eventsourcing import NO_STREAM, NewEvent


def event(data: bytes = b"{}") -> NewEvent:
    return NewEvent("Happened", data)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    store = await SqliteEventStore.open(tmp_path / "events.db")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def blocker(store: SqliteEventStore, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection holding the database's write lock until the test commits it."""
    blocker = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield blocker
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()


async def until_taken(store: SqliteEventStore) -> None:
    """Let new tasks queue their appends, then wait until the writer took them all."""
    await asyncio.sleep(0)
    while store.statistics().pending_appends:
        await asyncio.sleep(0.001)


async def test_events_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with corral.connect(f"sqlite:///{path}") as store:
        appended = await store.append("s", [event(b"1"), event(b"2")], expected_version=NO_STREAM)
        await store.set_stream_metadata("s", {"owner": "me"})
    async with corral.connect(f"sqlite:///{path}") as store:
        events = await store.read_stream("s").collect()
        assert [e.data for e in events] == [b"1", b"2"]
        assert tuple(e.position for e in events) == appended.positions
        assert (await store.get_stream_metadata("s")).custom == {"owner": "me"}
        next_result = await store.append("s", [event()], expected_version=2)
        assert next_result.positions[0] > appended.positions[-1]


async def test_the_file_is_wal_with_full_sync_and_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    await (await SqliteEventStore.open(path)).close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_an_open_store_has_its_log_written_out_to_its_working_size(
    store: SqliteEventStore, tmp_path: Path
) -> None:
    wal = tmp_path / "events.db-wal"
    with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as connection:
        working_size = wal_working_size(connection)
    assert working_size > 4_000_000  # 1,000 pages of 4 KiB and their frame headers
    assert wal.stat().st_size >= working_size
    appended = await store.append("s", [event(b"1")], expected_version=NO_STREAM)
    assert wal.stat().st_size >= working_size  # commits wrote into it, not past it
    assert [e.data for e in await store.read_stream("s").collect()] == [b"1"]
    assert appended.positions[0] >= 1


async def test_writing_out_the_log_keeps_what_it_holds(
    store: SqliteEventStore, tmp_path: Path
) -> None:
    await store.append("s", [event(b"%d" % i) for i in range(50)], expected_version=NO_STREAM)
    wal = tmp_path / "events.db-wal"
    with contextlib.closing(
        sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    ) as connection:
        before = wal.read_bytes()
        connection.execute("PRAGMA wal_autocheckpoint=4000")  # a larger working size
        prepare_wal(connection)
        after = wal.read_bytes()
        assert len(after) >= wal_working_size(connection) > len(before)
        assert after[: len(before)] == before  # only past the end of the log
        assert not connection.in_transaction
    events = await store.read_stream("s").collect()
    assert [e.data for e in events] == [b"%d" % i for i in range(50)]


def test_a_log_that_cannot_be_written_out_is_left_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: str, target: int) -> None:
        raise PermissionError(f"{path} is read-only")

    with contextlib.closing(
        sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    ) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t(x)")
        monkeypatch.setattr(_connection, "_extend_with_zeros", refuse)
        prepare_wal(connection)  # no error
        assert not connection.in_transaction
        connection.execute("INSERT INTO t VALUES (1)")
        assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]


async def test_concurrent_appends_share_one_commit(
    store: SqliteEventStore, blocker: sqlite3.Connection
) -> None:
    first = asyncio.create_task(store.append("first", [event()]))
    await until_taken(store)  # the writer waits for the lock with the first append
    rest = [asyncio.create_task(store.append(f"s{i % 5}", [event()])) for i in range(40)]
    await asyncio.sleep(0)
    assert store.statistics().pending_appends == 40
    assert "40 pending" in repr(store)
    blocker.execute("COMMIT")
    await asyncio.gather(first, *rest)
    statistics = store.statistics()
    assert (statistics.appends, statistics.transactions) == (41, 2)
    assert statistics.pending_appends == 0


async def test_a_conflict_in_a_group_fails_alone(
    store: SqliteEventStore, blocker: sqlite3.Connection
) -> None:
    first = asyncio.create_task(store.append("s", [event()]))
    await until_taken(store)
    winner = asyncio.create_task(store.append("s", [event()], expected_version=1))
    loser = asyncio.create_task(store.append("s", [event()], expected_version=1))
    other = asyncio.create_task(store.append("t", [event()], expected_version=NO_STREAM))
    await asyncio.sleep(0)
    blocker.execute("COMMIT")
    outcomes = await asyncio.gather(first, winner, loser, other, return_exceptions=True)
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "AppendResult",
        "AppendResult",
        "ConcurrencyError",
        "AppendResult",
    ]
    assert [e.version for e in await store.read_stream("s").collect()] == [1, 2]
    everything = await store.read_all().collect()
    assert [e.position for e in everything] == [1, 2, 3]  # no hole where the loser was
    assert store.statistics().transactions == 2


async def test_a_cancelled_queued_append_is_withdrawn(
    store: SqliteEventStore, blocker: sqlite3.Connection
) -> None:
    first = asyncio.create_task(store.append("s", [event(b"first")]))
    await until_taken(store)
    queued = asyncio.create_task(store.append("s", [event(b"queued")]))
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert store.statistics().pending_appends == 0
    blocker.execute("COMMIT")
    await first
    assert [e.data for e in await store.read_stream("s").collect()] == [b"first"]


async def test_a_cancelled_append_already_taken_settles_before_cancelling(
    store: SqliteEventStore, blocker: sqlite3.Connection
) -> None:
    taken = asyncio.create_task(store.append("s", [event(b"taken")]))
    await until_taken(store)
    taken.cancel()
    asyncio.get_running_loop().call_later(0.05, blocker.execute, "COMMIT")
    with pytest.raises(asyncio.CancelledError):
        await taken
    # When the CancelledError arrived, the append had been committed as a whole.
    assert [e.data for e in await store.read_stream("s").collect()] == [b"taken"]
    assert store.statistics().appends == 1


async def test_close_finishes_queued_appends(tmp_path: Path) -> None:
    store = await SqliteEventStore.open(tmp_path / "events.db")
    appends = [asyncio.create_task(store.append("s", [event()])) for _ in range(10)]
    await asyncio.sleep(0)
    await store.close()
    results = await asyncio.gather(*appends)
    assert sorted(result.version for result in results) == list(range(1, 11))


async def test_a_malformed_row_names_its_stream_and_position(
    store: SqliteEventStore, tmp_path: Path
) -> None:
    await store.append("good", [event()])
    await store.append("bad", [event(), event()])
    with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as raw, raw:
        raw.execute("UPDATE events SET id = x'00' WHERE stream = 'bad' AND version = 2")
    with pytest.raises(SerializationError) as caught:
        await store.read_stream("bad").collect()
    assert (caught.value.stream, caught.value.position) == ("bad", 3)
    assert isinstance(caught.value.__cause__, ValueError)
    # The rest of the store stays readable.
    assert len(await store.read_stream("good").collect()) == 1
    assert len(await store.read_stream("bad", limit=1).collect()) == 1


async def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendUnavailable, match=r"garbage\.db") as caught:
        await SqliteEventStore.open(path)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


async def test_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable) as caught:
        await corral.connect(f"sqlite:///{tmp_path}/missing/events.db")
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BackendUnavailable, match=f"schema version {SCHEMA_VERSION + 1}"):
        await SqliteEventStore.open(path)


async def test_a_database_that_breaks_later_raises_backend_unavailable(
    store: SqliteEventStore, tmp_path: Path
) -> None:
    await store.append("s", [event()])
    with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as raw, raw:
        raw.execute("DROP TABLE streams")
    with pytest.raises(BackendUnavailable) as caught:
        await store.append("s", [event()])
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    with pytest.raises(BackendUnavailable):
        await store.get_stream_metadata("s")
    assert len(await store.read_all().collect()) == 1


async def test_open_refuses_a_path_of_the_wrong_type() -> None:
    with pytest.raises(ArgumentTypeError, match="path must be a str"):
        await SqliteEventStore.open(42)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="create must be a bool"):
        await SqliteEventStore.open("events.db", create=1)  # type: ignore[arg-type]


async def test_without_create_only_an_existing_store_opens(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(BackendUnavailable, match=r"missing\.db' does not exist"):
        await SqliteEventStore.open(missing, create=False)
    assert not missing.exists()
    with pytest.raises(BackendUnavailable, match="is not a file"):
        await SqliteEventStore.open(tmp_path, create=False)
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as raw, raw:
        raw.execute("CREATE TABLE things (x)")
    before = other.read_bytes()
    with pytest.raises(BackendUnavailable, match=r"other\.db.*not a corral event store"):
        await SqliteEventStore.open(other, create=False)
    assert other.read_bytes() == before
    async with await SqliteEventStore.open(tmp_path / "events.db") as created:
        await created.append("s", [event()])
    store = await SqliteEventStore.open(tmp_path / "events.db", create=False)
    async with store:
        assert store.path == str(tmp_path / "events.db")
        assert len(await store.read_stream("s").collect()) == 1


async def test_reads_do_not_wait_for_a_held_write_lock(
    store: SqliteEventStore, blocker: sqlite3.Connection
) -> None:
    blocker.execute("COMMIT")
    await store.append("s", [event()])
    blocker.execute("BEGIN IMMEDIATE")
    assert len(await store.read_stream("s").collect()) == 1
    assert (await store.get_stream_metadata("s")).version == 1


def test_an_event_id_is_stored_as_its_sixteen_bytes(tmp_path: Path) -> None:
    async def main() -> uuid.UUID:
        async with corral.connect(f"sqlite:///{tmp_path}/events.db") as store:
            new = event()
            await store.append("s", [new])
            return new.id

    event_id = asyncio.run(main())
    with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as raw, raw:
        assert raw.execute("SELECT id FROM events").fetchone()[0] == event_id.bytes


async def test_a_store_dropped_unclosed_warns_and_stops_its_writer(tmp_path: Path) -> None:
    store = await SqliteEventStore.open(tmp_path / "events.db")
    await store.append("s", [event()])
    (writer,) = [t for t in threading.enumerate() if str(tmp_path) in t.name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del store
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == [
        f"SqliteEventStore {str(tmp_path / 'events.db')!r} was not closed"
    ]
    writer.join(timeout=10)
    assert not writer.is_alive()


@pytest.mark.corral_loops("virtual")
async def test_waiting_for_the_database_holds_the_virtual_clock(tmp_path: Path) -> None:
    # On the virtual clock, a deadline fires at once when every task waits and nothing
    # holds the clock: the store's waits for its threads must hold it.
    async with corral.connect(f"sqlite:///{tmp_path}/events.db") as store:
        with corral.fail_after(5):
            for version in range(10):
                await store.append("s", [event()], expected_version=version)
            assert len(await store.read_stream("s").collect()) == 10


async def test_events_read_back_are_whole_and_untracked_by_the_collector(
    store: SqliteEventStore,
) -> None:
    appended = [event() for _ in range(3)]
    await store.append("s", appended)
    read = await store.read_all().collect()
    assert [(e.id, e.type, e.data, e.metadata, e.content_type) for e in read] == [
        (e.id, e.type, e.data, e.metadata, e.content_type) for e in appended
    ]
    assert all(isinstance(e.id, uuid.UUID) for e in read)
    assert not any(gc.is_tracked(e) for e in read)  # no cycles possible: never collected
