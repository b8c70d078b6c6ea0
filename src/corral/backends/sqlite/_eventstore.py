"""SqliteEventStore: the event store in one SQLite file, with a group-committing writer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable
from itertools import starmap
from typing import Final, TypeVar

import msgspec

from ..._core._scope import wait_protected
from ...channels._threads import to_thread
from ...errors import (
    ArgumentTypeError,
    ConcurrencyError,
    InvalidArgumentError,
    SerializationError,
)
from ...eventsourcing._rules import StreamAppend, check_expected, match_retry
from ...eventsourcing._store import EventStore
from ...eventsourcing._tracking import Tracking
from ...eventsourcing._types import AppendResult, ExpectedVersion, RecordedEvent, StreamInfo
from ._connection import map_exceptions, open_reader, open_writer
from ._watcher import DEFAULT_WATCH_INTERVAL, Watcher
from ._writer import Job, Writer

__all__ = ("SqliteEventStore",)

T = TypeVar("T")

_COLUMNS: Final = "stream, version, position, id, type, data, metadata, content_type, recorded_at"
_INSERT: Final = (
    "INSERT INTO events (stream, version, id, type, content_type, data, metadata, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SET_VERSION: Final = (
    "INSERT INTO streams (stream, version) VALUES (?, ?) "
    "ON CONFLICT (stream) DO UPDATE SET version = excluded.version, deleted = 0"
)
# Named parameters: a parameter used twice is named once (numbered ones such as ``?1``
# with a sequence of values raise a DeprecationWarning on early Python 3.12 releases).
_VISIBLE_FROM: Final = "coalesce((SELECT truncate_before FROM streams WHERE stream = :stream), 0)"
_READ_FORWARD: Final = (
    f"SELECT {_COLUMNS} FROM events WHERE stream = :stream "
    f"AND version >= max(:start, {_VISIBLE_FROM}) ORDER BY version LIMIT :count"
)
_READ_BACKWARD: Final = (
    f"SELECT {_COLUMNS} FROM events WHERE stream = :stream "
    f"AND version <= :start AND version >= {_VISIBLE_FROM} ORDER BY version DESC LIMIT :count"
)
_READ_ALL: Final = f"SELECT {_COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?"
# A stream's last event is found through the (stream, version) index.
_LIST_STREAMS: Final = (
    "SELECT s.stream, s.version, s.deleted, s.truncate_before, e.position, e.recorded_at "
    "FROM streams AS s JOIN events AS e ON e.stream = s.stream AND e.version = s.version "
    "WHERE s.stream >= :prefix AND s.stream > :after "
    "AND substr(s.stream, 1, length(:prefix)) = :prefix AND s.version > 0 "
    "ORDER BY s.stream LIMIT :count"
)
_BY_ID: Final = f"SELECT {_COLUMNS} FROM events WHERE id = ?"
_LAST_VERSION: Final = 2**62

_Row = tuple[str, int, int, bytes, str, bytes, bytes, str, float]


# The rows with their ids as UUIDs: msgspec converts a whole page in one call, several
# times faster than ``uuid.UUID(bytes=...)`` per row (the main cost of reading).
_ROWS: Final = list[tuple[str, int, int, uuid.UUID, str, bytes, bytes, str, float]]


def _convert(rows: list[_Row]) -> list[RecordedEvent]:
    return [
        RecordedEvent(s, v, p, uuid.UUID(bytes=i), t, d, m, c, r)
        for s, v, p, i, t, d, m, c, r in rows
    ]


def _recorded(rows: list[_Row]) -> list[RecordedEvent]:
    """Rows as events; a malformed row raises ``SerializationError`` naming it.

    The columns are in :class:`RecordedEvent`'s field order.
    """
    try:
        return list(starmap(RecordedEvent, msgspec.convert(rows, _ROWS)))
    except (TypeError, ValueError):
        # Slowly, row by row, to name the first malformed row.
        for row in rows:
            try:
                _convert([row])
            except (TypeError, ValueError) as exc:
                raise SerializationError(row[0], row[2], f"malformed stored event: {exc}") from exc
        return _convert(rows)


class _Readers:
    """Reading connections, one per concurrent read, reused (thread-safe)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    def run(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = open_reader(self._path)
        try:
            with map_exceptions(self._path):
                return query(connection)
        finally:
            with self._lock:
                keep = not self._closed
                if keep:
                    self._idle.append(connection)
            if not keep:
                connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class SqliteEventStore(EventStore):
    """An event store in one SQLite file: the embedded default (``sqlite:///app.db``).

    Open it with ``await corral.connect("sqlite:///app.db")`` or
    ``await SqliteEventStore.open(path)``; the file and its schema are created if
    missing (the schema version is kept in ``PRAGMA user_version``).

    Durability: the file is in WAL mode with ``synchronous=FULL``, so every append is
    on disk (fsync at commit) before it is acknowledged. A process killed at any point
    loses no acknowledged append and leaves no partial one.

    Group commit: one writer thread owns the only writing connection. Appends queue up
    while it commits; it then takes all of them into ONE transaction, checks each one's
    expected version in order inside its own savepoint (a conflicting append fails
    alone), and commits once: many concurrent appends share a single fsync.

    Global order without skipped events: a position is the events table's
    ``INTEGER PRIMARY KEY``, which SQLite sets to ``max(position) + 1`` when the row is
    inserted, inside the writer's transaction, while that transaction holds SQLite's
    database write lock (``BEGIN IMMEDIATE``; writers in other processes wait for it).
    Transactions therefore commit in position order: none can commit a position lower
    than one already visible, so a reader that has read up to position ``p`` never
    misses an event committed later below ``p``. (A server database with concurrent
    writers draws sequence values before commit, so there it does not hold for free.)

    Readers use their own connections in worker threads; WAL lets them read while the
    writer writes, and no SQLite call ever runs on the event loop.

    Subscriptions across processes: appends through the store wake its subscriptions
    at once. While a subscription waits, a watcher thread also checks the file's
    ``PRAGMA data_version`` every ``watch_interval`` seconds (a few microseconds each,
    no disk access) and wakes the subscriptions when another process or store object
    has committed, so those events arrive within about ``watch_interval`` too. While
    nothing waits, the watcher sleeps.

    Cancellation: an append still queued when its caller is cancelled is withdrawn and
    never written. Once the writer has taken it, the caller waits (briefly, one
    commit) until it is settled and then raises ``CancelledError``; the append has then
    either committed entirely or failed entirely. Retrying with the same event ids is
    safe either way.

    Thread-safety: use a store from the tasks of one event loop.
    """

    engine = "sqlite"

    def __init__(
        self,
        path: str,
        writer_connection: sqlite3.Connection,
        *,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
    ) -> None:
        super().__init__()
        self._path = path
        self._writer = Writer(writer_connection, path, self._deliver)
        self._readers = _Readers(path)
        self._watcher = Watcher(path, _watch_interval_arg(watch_interval), self._signal.notify)
        # Dropped without close(): stop the threads and warn, as files do.
        self._finalizer = weakref.finalize(
            self, _abandon, self._writer, self._readers, self._watcher, path
        )

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        create: bool = True,
    ) -> SqliteEventStore:
        """Open (and create if needed) the event store in the SQLite file at ``path``.

        Args:
            path: the database file.
            watch_interval: seconds between two checks for commits by other processes
                while a subscription waits (10 ms by default): about the longest such
                a commit waits before a subscription reads it.
            create: create the file and its schema if missing. With ``False``, only an
                existing corral event store is opened (for tools that inspect one):
                a missing file, or a database without corral's schema, raises
                ``BackendUnavailable`` and the file is left untouched.

        Raises:
            ArgumentTypeError: ``path`` is not a ``str`` or path-like, ``watch_interval``
                is not a number, or ``create`` is not a ``bool``.
            InvalidArgumentError: ``watch_interval`` is not more than 0.
            BackendUnavailable: the file cannot be opened or is not a corral database.
        """
        if not isinstance(path, str | os.PathLike):
            raise ArgumentTypeError(
                f"path must be a str or path, not {type(path).__name__} ({path!r})"
            )
        if not isinstance(create, bool):
            raise ArgumentTypeError(
                f"create must be a bool, not {type(create).__name__} ({create!r})"
            )
        interval = _watch_interval_arg(watch_interval)
        name = os.fspath(path)
        connection = await to_thread(functools.partial(open_writer, name, create=create))
        return cls(name, connection, watch_interval=interval)

    def _watch(self) -> None:
        self._watcher.watch(asyncio.get_running_loop())

    def _unwatch(self) -> None:
        self._watcher.unwatch()

    @property
    def path(self) -> str:
        """The database file's path, as given to :meth:`open`."""
        return self._path

    def _describe(self) -> str:
        return repr(self._path)

    def _pending(self) -> int:
        return self._writer.queued

    # -- writing ---------------------------------------------------------------------

    async def _write(self, work: Callable[[sqlite3.Connection, float, bool], T]) -> T:
        loop = asyncio.get_running_loop()
        job = Job(work, loop, loop.create_future())
        self._writer.submit(job)
        hold_clock = getattr(loop, "hold_clock", None)  # corral's virtual-clock loop
        with hold_clock() if hold_clock is not None else contextlib.nullcontext():
            try:
                await job.future
            except asyncio.CancelledError:
                # The future is cancelled with the task, unless the outcome had already
                # arrived (then it is settled, and there is nothing to wait for).
                if job.future.cancelled() and not self._writer.withdraw(job):
                    job.settled = loop.create_future()
                    await wait_protected(job.settled)
                raise
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def _deliver(self, jobs: list[Job], committed: bool) -> None:
        """On the loop: count and hand over the outcomes of one batch."""
        counters = self._counters
        if committed:
            counters.transactions += 1
        for job in jobs:
            error = job.error
            if committed and error is None and isinstance(job.result, _AppendOutcome):
                for result, retried in job.result.parts:
                    counters.count_part(result, retried)
            elif isinstance(error, ConcurrencyError):
                counters.conflicts += 1
            if job.settled is not None:
                job.settled.set_result(None)
            if not job.future.done():
                job.future.set_result(None)

    async def _append(
        self, parts: list[StreamAppend], tracking: Tracking | None = None
    ) -> list[AppendResult]:
        if tracking is None:
            outcome = await self._write(
                lambda connection, now, recheck: _append(connection, now, parts, recheck)
            )
        else:
            outcome = await self._write(
                lambda connection, now, recheck: _append_tracked(
                    connection, now, parts, recheck, tracking
                )
            )
        return [result for result, _ in outcome.parts]

    async def _set_stream(
        self, stream: str, *, custom: bytes | None = None, truncate_before: int | None = None
    ) -> None:
        def work(connection: sqlite3.Connection, now: float, recheck: bool) -> None:
            connection.execute(
                "INSERT INTO streams (stream, version) VALUES (?, 0) ON CONFLICT DO NOTHING",
                (stream,),
            )
            if custom is not None:
                connection.execute(
                    "UPDATE streams SET metadata = ? WHERE stream = ?", (custom, stream)
                )
            if truncate_before is not None:
                connection.execute(
                    "UPDATE streams SET truncate_before = ? WHERE stream = ?",
                    (truncate_before, stream),
                )

        await self._write(work)

    async def _delete_stream(self, stream: str, expected: ExpectedVersion) -> None:
        def work(connection: sqlite3.Connection, now: float, recheck: bool) -> None:
            version, exists = _stream_version(connection, stream)
            check_expected(stream, expected, version, exists)
            if exists:
                connection.execute(
                    "UPDATE streams SET deleted = 1, truncate_before = ? WHERE stream = ?",
                    (version + 1, stream),
                )

        await self._write(work)

    # -- reading ---------------------------------------------------------------------

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        return await to_thread(self._readers.run, query)

    async def _fetch_stream(
        self, stream: str, start: int | None, backwards: bool, count: int
    ) -> list[RecordedEvent]:
        sql = _READ_BACKWARD if backwards else _READ_FORWARD
        arguments = {
            "stream": stream,
            "start": _LAST_VERSION if start is None else start,
            "count": count,
        }
        return await self._read(lambda c: _recorded(c.execute(sql, arguments).fetchall()))

    async def _fetch_all(self, start: int, count: int) -> list[RecordedEvent]:
        return await self._read(
            lambda c: _recorded(c.execute(_READ_ALL, (start, count)).fetchall())
        )

    async def _fetch_streams(self, prefix: str, after: str, count: int) -> list[StreamInfo]:
        def query(connection: sqlite3.Connection) -> list[StreamInfo]:
            rows = connection.execute(
                _LIST_STREAMS, {"prefix": prefix, "after": after, "count": count}
            ).fetchall()
            return [StreamInfo(n, v, bool(d), t, p, r) for n, v, d, t, p, r in rows]

        return await self._read(query)

    async def _head_position(self) -> int:
        def query(connection: sqlite3.Connection) -> int:
            # max() of the INTEGER PRIMARY KEY is one seek to the end of the table.
            position: int = connection.execute(
                "SELECT coalesce(max(position), 0) FROM events"
            ).fetchone()[0]
            return position

        return await self._read(query)

    async def _get_stream(self, stream: str) -> tuple[int, bool, int, bytes]:
        def query(connection: sqlite3.Connection) -> tuple[int, bool, int, bytes]:
            row = connection.execute(
                "SELECT version, deleted, truncate_before, metadata FROM streams WHERE stream = ?",
                (stream,),
            ).fetchone()
            if row is None:
                return 0, False, 0, b""
            return row[0], bool(row[1]), row[2], row[3]

        return await self._read(query)

    async def _close(self) -> None:
        self._finalizer.detach()
        self._writer.stop()
        self._watcher.stop()
        try:
            await to_thread(self._writer.join)
            await to_thread(self._watcher.join)
        finally:
            self._readers.close()


def _watch_interval_arg(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ArgumentTypeError(
            f"watch_interval must be a number of seconds, not {type(value).__name__} ({value!r})"
        )
    if not value > 0:
        raise InvalidArgumentError(f"watch_interval must be more than 0 seconds, got {value!r}")
    return float(value)


def _abandon(writer: Writer, readers: _Readers, watcher: Watcher, path: str) -> None:
    warnings.warn(f"SqliteEventStore {path!r} was not closed", ResourceWarning, stacklevel=1)
    writer.stop()
    watcher.stop()
    readers.close()


class _AppendOutcome:
    """What an append job did: per stream, the result and whether it was a retry."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[tuple[AppendResult, bool]]) -> None:
        self.parts = parts


def _stream_version(connection: sqlite3.Connection, stream: str) -> tuple[int, bool]:
    row = connection.execute(
        "SELECT version, deleted FROM streams WHERE stream = ?", (stream,)
    ).fetchone()
    if row is None:
        return 0, False
    return row[0], row[0] > 0 and not row[1]


def _stored(connection: sqlite3.Connection, part: StreamAppend) -> list[RecordedEvent | None]:
    found: list[RecordedEvent | None] = []
    for event in part.events:
        row = connection.execute(_BY_ID, (event.id.bytes,)).fetchone()
        found.append(None if row is None else _recorded([row])[0])
    return found


def _append_tracked(
    connection: sqlite3.Connection,
    now: float,
    parts: list[StreamAppend],
    recheck: bool,
    tracking: Tracking,
) -> _AppendOutcome:
    """Compare-and-set the checkpoint, then append ``parts``, in the job's savepoint.

    The writer thread holds SQLite's write lock for the whole batch, so nothing can
    change the checkpoint between the comparison and the write.
    """
    stream = tracking.stream
    row = connection.execute("SELECT metadata FROM streams WHERE stream = ?", (stream,)).fetchone()
    tracking.check(b"" if row is None else row[0])
    outcome = _append(connection, now, parts, recheck) if parts else _AppendOutcome([])
    connection.execute(
        "INSERT INTO streams (stream, version, metadata) VALUES (?, 0, ?) "
        "ON CONFLICT (stream) DO UPDATE SET metadata = excluded.metadata",
        (stream, tracking.metadata),
    )
    return outcome


def _append(
    connection: sqlite3.Connection, now: float, parts: list[StreamAppend], recheck: bool
) -> _AppendOutcome:
    """Append ``parts`` (on the writer thread, inside the job's savepoint)."""
    outcomes: list[tuple[AppendResult, bool]] = []
    for part in parts:
        stream, events = part.stream, part.events
        if recheck and (retry := match_retry(part, _stored(connection, part))) is not None:
            outcomes.append((retry, True))
            continue
        version, exists = _stream_version(connection, stream)
        try:
            check_expected(stream, part.expected, version, exists)
        except ConcurrencyError:
            retry = match_retry(part, _stored(connection, part))
            if retry is None:
                raise
            outcomes.append((retry, True))
            continue
        if not events:
            outcomes.append((AppendResult(stream, version, ()), False))
            continue
        rows = [
            (
                stream,
                version + 1 + index,
                event.id.bytes,
                event.type,
                event.content_type,
                event.data,
                event.metadata,
                now,
            )
            for index, event in enumerate(events)
        ]
        # The position is the rowid SQLite assigns: max(position) + 1, taken while this
        # transaction holds the write lock, so rows of one append get consecutive ones.
        if len(rows) == 1:
            last = connection.execute(_INSERT, rows[0]).lastrowid
        else:
            connection.executemany(_INSERT, rows)
            last = connection.execute("SELECT last_insert_rowid()").fetchone()[0]
        count = len(rows)
        connection.execute(_SET_VERSION, (stream, version + count))
        assert last is not None
        positions = tuple(range(last - count + 1, last + 1))
        outcomes.append((AppendResult(stream, version + count, positions), False))
    return _AppendOutcome(outcomes)
