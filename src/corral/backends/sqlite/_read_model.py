"""SqliteReadModel: a read model in a SQLite file, on its own connection and thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

from ...errors import ArgumentTypeError, InvalidArgumentError, UsageError
from ...eventsourcing._read_model import ReadModel, settle
from ._connection import BUSY_TIMEOUT, map_exceptions, prepare_wal

__all__ = ("CHECKPOINT_TABLE", "SqliteReadModel", "SqliteTransaction")

R = TypeVar("R")

#: The table holding the projections' checkpoints (``name``, ``position``).
CHECKPOINT_TABLE: Final = "corral_checkpoints"

_CREATE: Final = (
    f"CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} "
    "(name TEXT PRIMARY KEY NOT NULL, position INTEGER NOT NULL) WITHOUT ROWID"
)
_LOAD: Final = f"SELECT position FROM {CHECKPOINT_TABLE} WHERE name = ?"
_STORE: Final = (
    f"INSERT INTO {CHECKPOINT_TABLE} (name, position) VALUES (:name, :position) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position "
    "WHERE :expected IS NULL OR position = :expected"
)

Parameters = Sequence[Any] | dict[str, Any]


def _sql_arg(sql: object) -> str:
    if not isinstance(sql, str):
        raise ArgumentTypeError(f"sql must be a str, not {type(sql).__name__} ({sql!r})")
    return sql


def _parameters_arg(parameters: object) -> Parameters:
    if isinstance(parameters, (str, bytes)) or not isinstance(parameters, Sequence | dict):
        raise ArgumentTypeError(
            "parameters must be a sequence (for ? placeholders) or a dict (for :name), "
            f"not {type(parameters).__name__} ({parameters!r})"
        )
    return parameters


def _open(path: str) -> sqlite3.Connection:
    """Open the connection: WAL, ``synchronous=FULL``, the checkpoint table in place."""
    with map_exceptions(path):
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            _check_wal(mode)
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(_CREATE)
            prepare_wal(connection)
        except BaseException:
            connection.close()
            raise
    return connection


def _check_wal(mode: str) -> None:
    if mode != "wal":
        raise sqlite3.OperationalError(f"cannot use WAL (journal mode {mode!r})")


class SqliteTransaction:
    """What a :class:`SqliteReadModel` transaction gives a projection: SQL, awaited.

    Each call runs one statement on the read model's connection, in its thread, inside
    the transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``). Parameters are a sequence for
    ``?`` placeholders or a dict for ``:name`` ones.

    Errors: a failing statement raises :class:`~corral.errors.BackendUnavailable`
    (the ``sqlite3`` error is its ``__cause__``); the transaction then rolls back when
    the exception leaves its block.

    Cancellation: a cancelled call may still run its statement; the transaction is
    rolled back when the cancellation leaves the block, so it takes no effect.

    Thread-safety: use it from the task that runs the transaction, inside its block.
    """

    __slots__ = ("_done", "_model", "_statements")

    def __init__(self, model: SqliteReadModel) -> None:
        self._model = model
        self._done = False
        self._statements = 0

    def __repr__(self) -> str:
        state = "ended" if self._done else "open"
        return f"<SqliteTransaction {state}, {self._statements} statements>"

    async def _run(self, work: Callable[[sqlite3.Connection], R]) -> R:
        if self._done:
            raise UsageError("this SqliteTransaction has ended; use it inside its block only")
        self._statements += 1
        return await self._model._call(work)

    async def execute(self, sql: str, parameters: Parameters = ()) -> None:
        """Run one statement (``INSERT``, ``UPDATE``, ``CREATE TABLE`` ...).

        Raises:
            ArgumentTypeError: ``sql`` is not a ``str`` or ``parameters`` are neither a
                sequence nor a dict.
            BackendUnavailable: SQLite refused the statement.
            UsageError: the transaction has ended.
        """
        sql, parameters = _sql_arg(sql), _parameters_arg(parameters)
        await self._run(lambda c: c.execute(sql, parameters).close())

    async def executemany(self, sql: str, parameters: Iterable[Parameters]) -> None:
        """Run one statement once per item of ``parameters``.

        Raises:
            As :meth:`execute`.
        """
        sql = _sql_arg(sql)
        rows = [_parameters_arg(row) for row in parameters]
        await self._run(lambda c: c.executemany(sql, rows).close())

    async def fetchall(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        """Run a query and return every row, as tuples.

        Raises:
            As :meth:`execute`.
        """
        sql, parameters = _sql_arg(sql), _parameters_arg(parameters)
        rows: list[tuple[Any, ...]] = await self._run(
            lambda c: c.execute(sql, parameters).fetchall()
        )
        return rows

    async def fetchone(self, sql: str, parameters: Parameters = ()) -> tuple[Any, ...] | None:
        """Run a query and return its first row, as a tuple, or ``None`` if it has none.

        Raises:
            As :meth:`execute`.
        """
        sql, parameters = _sql_arg(sql), _parameters_arg(parameters)
        row: tuple[Any, ...] | None = await self._run(
            lambda c: c.execute(sql, parameters).fetchone()
        )
        return row


class SqliteReadModel(ReadModel[SqliteTransaction]):
    """A read model in a SQLite file (``sqlite:///views.db``).

    Open it with ``await SqliteReadModel.open(path)`` or
    ``await corral.connect_read_model("sqlite:///views.db")``. The file may be the
    event store's own or another one. The read model has its own connection, used by
    one thread of its own, so no SQLite call runs on the event loop. The file is in WAL
    mode with ``synchronous=FULL``: a committed batch is on disk. Projections create
    their tables in :meth:`~corral.eventsourcing.Projection.setup`; the checkpoints
    live in the table ``corral_checkpoints``.

    Transactions begin with ``BEGIN IMMEDIATE`` (they take SQLite's write lock at
    once, waiting up to 30 seconds for another writer of the file) and run one at a
    time. On the event store's file, a batch holds the store's appends back while it
    runs: do not append to the store from ``apply`` (it would wait for the batch).

    Read the projection's tables with :meth:`fetchall` and :meth:`fetchone` (they wait
    for a transaction in progress) or with any other SQLite connection.

    Cancellation: a cancelled transaction is rolled back; a commit that has begun runs
    to its end first, so its outcome is known when ``CancelledError`` arrives.

    Thread-safety: use it from the tasks of one event loop.
    """

    engine = "sqlite"

    def __init__(self, path: str, connection: sqlite3.Connection) -> None:
        super().__init__()
        self._path = path
        self._connection = connection
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="corral-sqlite-read-model"
        )
        self._lock = asyncio.Lock()
        self._finalizer = weakref.finalize(self, _abandon, connection, self._executor, path)

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> SqliteReadModel:
        """Open (and create if needed) the read model in the SQLite file at ``path``.

        Raises:
            ArgumentTypeError: ``path`` is not a ``str`` or path-like.
            InvalidArgumentError: ``path`` is empty or ``":memory:"``.
            BackendUnavailable: the file cannot be opened or used in WAL mode.
        """
        if not isinstance(path, str | os.PathLike):
            raise ArgumentTypeError(
                f"path must be a str or path, not {type(path).__name__} ({path!r})"
            )
        name = os.fspath(path)
        if not isinstance(name, str):
            raise ArgumentTypeError(f"path must name a file as a str, got {path!r}")
        if name in ("", ":memory:"):
            raise InvalidArgumentError(
                f"path must name a file, got {name!r}; use MemoryReadModel for a read "
                "model in memory"
            )
        loop = asyncio.get_running_loop()
        connection = await loop.run_in_executor(None, _open, name)
        return cls(name, connection)

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    def _describe(self) -> str:
        return repr(self._path)

    async def _call(self, work: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``work`` on the connection, in the read model's thread."""
        connection, path = self._connection, self._path

        def run() -> R:
            with map_exceptions(path):
                return work(connection)

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[SqliteTransaction]:
        async with self._lock:
            try:
                # Cancelled meanwhile, the BEGIN still runs in the thread: wait for it
                # and undo it, or the connection would stay inside a transaction.
                await settle(self._call(lambda c: c.execute("BEGIN IMMEDIATE").close()))
            except BaseException:
                await settle(self._call(_rollback))
                raise
            tx = SqliteTransaction(self)
            try:
                yield tx
            except BaseException:
                tx._done = True
                await settle(self._call(_rollback))
                raise
            tx._done = True
            try:
                await settle(self._call(lambda c: c.execute("COMMIT").close()))
            except BaseException:
                await settle(self._call(_rollback))
                raise

    async def _load_checkpoint(self, tx: SqliteTransaction, name: str) -> int:
        row = await tx.fetchone(_LOAD, (name,))
        return 0 if row is None else int(row[0])

    async def _store_checkpoint(
        self, tx: SqliteTransaction, name: str, position: int, expected: int | None
    ) -> bool:
        # No row counts as 0: the insert of a new checkpoint passes any expectation.
        def store(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                _STORE, {"name": name, "position": position, "expected": expected}
            )
            stored = cursor.rowcount == 1
            cursor.close()
            return stored

        return await tx._run(store)

    async def _run_read(self, work: Callable[[sqlite3.Connection], R]) -> R:
        self._check_open()
        async with self._lock:
            return await self._call(work)

    async def fetchall(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        """Run a query on the committed state and return every row, as tuples.

        Raises:
            ArgumentTypeError: a bad ``sql`` or ``parameters``.
            BackendUnavailable: SQLite refused the query.
            ClosedResourceError: the read model is closed.
        """
        sql, parameters = _sql_arg(sql), _parameters_arg(parameters)
        rows: list[tuple[Any, ...]] = await self._run_read(
            lambda c: c.execute(sql, parameters).fetchall()
        )
        return rows

    async def fetchone(self, sql: str, parameters: Parameters = ()) -> tuple[Any, ...] | None:
        """Run a query on the committed state and return its first row, or ``None``.

        Raises:
            As :meth:`fetchall`.
        """
        sql, parameters = _sql_arg(sql), _parameters_arg(parameters)
        row: tuple[Any, ...] | None = await self._run_read(
            lambda c: c.execute(sql, parameters).fetchone()
        )
        return row

    async def _close(self) -> None:
        self._finalizer.detach()
        async with self._lock:
            loop = asyncio.get_running_loop()
            await settle(loop.run_in_executor(self._executor, self._connection.close))
            self._executor.shutdown(wait=False)


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK").close()


def _abandon(
    connection: sqlite3.Connection, executor: concurrent.futures.ThreadPoolExecutor, path: str
) -> None:
    warnings.warn(f"SqliteReadModel {path!r} was not closed", ResourceWarning, stacklevel=1)
    executor.submit(connection.close)
    executor.shutdown(wait=False)
