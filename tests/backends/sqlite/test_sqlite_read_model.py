"""The SQLite read model: the read-model contract, its file, its errors."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import corral
from corral.backends.sqlite import SqliteReadModel, SqliteTransaction
from corral.errors import ArgumentTypeError, BackendUnavailable, InvalidArgumentError, UsageError
from corral.eventsourcing import NewEvent, Projection, Projector, ReadModel, RecordedEvent
from corral.testing.contracts.readmodel import ReadModelContract
from corral.testing.contracts.readmodel_processes import ReadModelProcessContract


class TestSqliteReadModel(ReadModelContract):
    async def make_read_model(self) -> ReadModel[Any]:
        return await SqliteReadModel.open(self.tmp_path / "views.db")

    async def create_table(self, tx: SqliteTransaction) -> None:
        await tx.execute("CREATE TABLE IF NOT EXISTS t (key TEXT PRIMARY KEY, value INTEGER)")

    async def drop_rows(self, tx: SqliteTransaction) -> None:
        await tx.execute("DELETE FROM t")

    async def insert(self, tx: SqliteTransaction, key: str, value: int) -> None:
        await tx.execute("INSERT INTO t VALUES (?, ?)", (key, value))

    async def rows(self, read_model: ReadModel[Any]) -> dict[str, int]:
        assert isinstance(read_model, SqliteReadModel)
        exists = await read_model.fetchone("SELECT 1 FROM sqlite_master WHERE name = 't'")
        if exists is None:
            return {}
        return dict(await read_model.fetchall("SELECT key, value FROM t"))


class _Count(Projection[SqliteTransaction]):
    name = "count"
    categories = ("item",)

    async def setup(self, tx: SqliteTransaction) -> None:
        await tx.execute("CREATE TABLE IF NOT EXISTS counts (stream TEXT PRIMARY KEY, n INTEGER)")

    async def apply(self, event: RecordedEvent, tx: SqliteTransaction) -> None:
        await tx.execute(
            "INSERT INTO counts VALUES (:s, 1) ON CONFLICT DO UPDATE SET n = n + 1",
            {"s": event.stream},
        )


async def test_on_the_event_store_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/app.db"
    async with corral.connect(url) as store, corral.connect_read_model(url) as read_model:
        assert isinstance(read_model, SqliteReadModel)
        for stream in ("item-1", "item-2", "item-1", "other-1"):
            await store.append(stream, [NewEvent("Added", b"{}")])
        projector = Projector(store, _Count(), read_model)
        assert await projector.catch_up() == 3
        # The store keeps appending while the read model shares its file.
        await store.append("item-2", [NewEvent("Added", b"{}")])
        assert await projector.catch_up() == 1
        assert await read_model.fetchall("SELECT * FROM counts ORDER BY stream") == [
            ("item-1", 2),
            ("item-2", 2),
        ]
    connection = sqlite3.connect(tmp_path / "app.db")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("SELECT * FROM corral_checkpoints").fetchall() == [("count", 5)]
    finally:
        connection.close()


async def test_a_failing_statement_is_backend_unavailable(tmp_path: Path) -> None:
    async with await SqliteReadModel.open(tmp_path / "v.db") as read_model:
        with pytest.raises(BackendUnavailable, match="no such table") as caught:
            async with read_model.transaction() as tx:
                await tx.execute("INSERT INTO missing VALUES (1)")
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert read_model.statistics().rollbacks == 1
        async with read_model.transaction() as tx:
            await tx.executemany("CREATE TABLE IF NOT EXISTS t (x)", [()])
            await tx.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            assert await tx.fetchall("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
            assert await tx.fetchone("SELECT x FROM t WHERE x > 5") is None
        assert "ended" in repr(tx)
        with pytest.raises(UsageError, match="has ended"):
            await tx.execute("SELECT 1")


async def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ArgumentTypeError, match="path must be a str or path"):
        await SqliteReadModel.open(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="MemoryReadModel"):
        await SqliteReadModel.open(":memory:")
    with pytest.raises(BackendUnavailable):
        await SqliteReadModel.open(tmp_path / "missing" / "v.db")
    async with await SqliteReadModel.open(tmp_path / "v.db") as read_model:
        async with read_model.transaction() as tx:
            with pytest.raises(ArgumentTypeError, match="sql must be a str"):
                await tx.execute(b"SELECT 1")  # type: ignore[arg-type]
            with pytest.raises(ArgumentTypeError, match="parameters must be a sequence"):
                await tx.execute("SELECT ?", "a")
            with pytest.raises(ArgumentTypeError, match="parameters must be a sequence"):
                await tx.executemany("SELECT ?", [7])  # type: ignore[list-item]
        with pytest.raises(ArgumentTypeError, match="parameters must be a sequence"):
            await read_model.fetchall("SELECT ?", 5)  # type: ignore[arg-type]
        assert read_model.path == str(tmp_path / "v.db")
    with pytest.raises(InvalidArgumentError, match="sqlite:///PATH"):
        corral.connect_read_model("sqlite://x.db")


class TestSqliteReadModelProcesses(ReadModelProcessContract):
    READ_MODEL = """
    from corral.backends.sqlite import SqliteReadModel

    async def open_read_model(locator):
        return await SqliteReadModel.open(locator)

    async def create(tx):
        await tx.execute("CREATE TABLE IF NOT EXISTS logged (position INTEGER NOT NULL)")

    async def record(tx, position):
        await tx.execute("INSERT INTO logged VALUES (?)", (position,))

    async def recorded(read_model):
        return [row[0] for row in await read_model.fetchall("SELECT position FROM logged")]
    """

    @pytest.fixture(params=["same file", "own file"])
    def locator(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        # The children's event store is tmp_path / "events.db".
        return str(tmp_path / ("events.db" if request.param == "same file" else "views.db"))


async def test_a_transaction_cancelled_while_it_begins_leaves_the_connection_usable(
    tmp_path: Path,
) -> None:
    async with await SqliteReadModel.open(tmp_path / "v.db") as read_model:

        async def begin_and_write() -> None:
            async with read_model.transaction() as tx:
                await tx.execute("CREATE TABLE never (x)")

        for _ in range(3):
            task = asyncio.ensure_future(begin_and_write())
            await asyncio.sleep(0)  # the task now waits for BEGIN in the thread
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        async with read_model.transaction() as tx:
            await tx.execute("CREATE TABLE t (x)")
        names = await read_model.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert ("t",) in names
        assert ("never",) not in names
        assert read_model.statistics().active == 0
