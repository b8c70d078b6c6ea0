"""PostgresEventStore: the event store in a PostgreSQL schema, on an asyncpg pool."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from ...errors import (
    ArgumentTypeError,
    BackendUnavailable,
    ConcurrencyError,
    InvalidArgumentError,
    SerializationError,
)
from ...eventsourcing._rules import StreamAppend, check_expected, match_retry
from ...eventsourcing._store import EventStore
from ...eventsourcing._tracking import CHECKPOINT_KEY, Tracking
from ...eventsourcing._types import (
    AppendResult,
    ExpectedVersion,
    RecordedEvent,
    StreamInfo,
    StreamState,
)
from ...optimize._limiter import size_arg
from ._connections import Connections
from ._listener import Listener
from ._schema import (
    APPEND_FUNCTION,
    APPEND_ONE_FUNCTION,
    CONFLICT,
    EXPECT_ANY,
    EXPECT_NO_STREAM,
    EXPECT_STREAM_EXISTS,
    LISTENING,
    POSITION_BITS,
    channel,
    create_schema,
    horizon,
    map_exceptions,
    schema_arg,
    writers_key,
)

__all__ = ("PostgresEventStore",)

#: Longest (seconds) :meth:`PostgresEventStore.read_all` waits, per page, for older
#: transactions to end when committed events wait behind them.
HORIZON_WAIT: Final = 0.25

#: Most events one append (over all its streams) may hold.
MAX_EVENTS_PER_APPEND: Final = 2**POSITION_BITS

_COLUMNS: Final = "stream, version, position, id, type, data, metadata, content_type, recorded_at"
_EXPECTED: Final[dict[StreamState, int]] = {
    StreamState.ANY: EXPECT_ANY,
    StreamState.NO_STREAM: EXPECT_NO_STREAM,
    StreamState.STREAM_EXISTS: EXPECT_STREAM_EXISTS,
}


def _recorded(rows: Sequence[asyncpg.Record], skip: int = 0) -> list[RecordedEvent]:
    """Rows (from column ``skip`` on) as events; a malformed row raises
    ``SerializationError`` naming it."""
    events = []
    for row in rows:
        values = list(row.values())[skip:]
        if None in values:
            keys = list(row.keys())[skip:]
            empty = ", ".join(key for key, value in zip(keys, values, strict=True) if value is None)
            raise SerializationError(values[0], values[2], f"malformed stored event: no {empty}")
        events.append(RecordedEvent(*values))
    return events


class PostgresEventStore(EventStore):
    """An event store in PostgreSQL (``postgresql://user@host/db``), on an asyncpg pool.

    Open it with ``await corral.connect("postgresql://...")`` or
    ``await PostgresEventStore.open(dsn, schema="corral")``. Its tables and its append
    function live in one PostgreSQL schema, created on first use (under an advisory
    lock, so processes starting together create it once) and versioned.

    Appends: one round trip each, a single autocommitted statement (prepared once per
    connection) calling a server-side function. One event to one stream, the
    commonest append, goes to ``append_one``, which takes its arguments as plain values
    and checks and inserts in one statement (a conflict raises from it too); when the
    id is already stored or the stream deleted it writes nothing, and the general
    function below decides, in a second round trip. The general function takes a
    transaction-scoped advisory lock per stream (in key order, so concurrent
    multi-stream appends cannot deadlock), looks the event ids up, checks every
    expected version and inserts the events. A failed check rolls everything back and
    raises :class:`~corral.errors.ConcurrencyError` (no second round trip); a retry of
    a stored append is answered from the events the same call returns (it writes
    nothing), and so is a :class:`~corral.errors.DuplicateError`. Only an
    :meth:`append_many` that repeats some of its parts and not others takes a second
    call, for the new parts. Only appends to the same stream wait for each other.
    Durability is PostgreSQL's: an acknowledged append has committed. Connections
    come from an asyncpg pool of ``max_size``; the store keeps the idle ones at hand
    instead of returning each to the pool after every statement.

    Global order without a table lock: a transaction's events get positions
    ``xid * 2**20 + n`` (``xid`` is its ``pg_current_xact_id()``, ``n`` counts its
    events), so positions are ordered by transaction id, not by commit time. An append
    holds the store's writer lock (a shared advisory lock) and its streams' advisory
    locks from BEFORE it draws its transaction id until it ends. :meth:`read_all`
    returns only positions below a horizon computed in the same statement as its
    snapshot: the first transaction id still in progress in the snapshot that may
    write events (it holds the writer lock, or has ended since the snapshot), else the
    snapshot's ``xmax``. Every append below the horizon has ended and is visible, and
    every append that commits later has an id at or above it, so a reader that has
    passed position ``p`` never sees an event appear below ``p`` later, whatever the
    commit order. Transactions that write no events (other tables, other databases) do
    not hold readers back; an append in flight does, for as long as it runs: when
    committed events wait behind one, a page of :meth:`read_all` polls for up to
    :data:`HORIZON_WAIT` seconds (0.25) for it to end, so a reader normally sees what
    was appended before it asked. Since a stream's locks are taken before the id is
    drawn, a stream's versions follow the global order. Positions are large numbers
    with gaps; one append holds at most ``2**20`` events.

    Waking subscriptions: while one of its subscriptions waits, the store listens on a
    connection of its own (opened by the first such wait, closed with the store), and
    every append that writes events notifies the store's channel, delivered when it
    commits, so subscriptions in every process wake as soon as an append commits. An
    append notifies only while some store listens: a notifying transaction holds a
    database-wide lock from its commit until the commit is flushed, so notifying
    appends commit one at a time instead of sharing flushes. If the listening
    connection is lost, the store connects again (after 0.05 s, doubling after each
    failure up to 5 s) and wakes its subscriptions once it listens, so they read what
    was committed meanwhile; until then they poll.

    Cancellation: an append is a single statement, so it has committed entirely or not
    at all when ``CancelledError`` arrives; asyncpg cancels the statement on the server
    if it is still running. Retrying with the same event ids is safe either way.

    Errors: asyncpg and network errors surface as
    :class:`~corral.errors.BackendUnavailable` (the driver error is its ``__cause__``).

    Thread-safety: use a store from the tasks of one event loop (the pool is bound to
    the loop that opened it).
    """

    engine = "postgres"

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        schema: str,
        writers: int,
        where: str,
        *,
        dsn: str,
    ) -> None:
        super().__init__()
        self._connections = Connections(pool)
        self._schema = schema
        self._where = where
        connect = functools.partial(
            asyncpg.connect,
            dsn,
            server_settings={"application_name": f"corral {schema} listener"},
        )
        self._listener = Listener(
            connect, channel(schema), (writers, LISTENING), self._signal.notify
        )
        s = schema
        self._sql_append = f"SELECT * FROM {s}.{APPEND_FUNCTION}($1, $2, $3, $4, $5, $6, $7, $8)"
        self._sql_append_one = (
            f'SELECT version, "position" FROM {s}.{APPEND_ONE_FUNCTION}($1, $2, $3, $4, $5, $6, $7)'
        )
        visible_from = f"coalesce((SELECT truncate_before FROM {s}.streams WHERE stream = $1), 0)"
        self._sql_forward = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE stream = $1 "
            f"AND version >= greatest($2, {visible_from}) ORDER BY version LIMIT $3"
        )
        self._sql_backward = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE stream = $1 AND version <= $2 "
            f"AND version >= {visible_from} ORDER BY version DESC LIMIT $3"
        )
        self._sql_all = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE position >= $1 AND position < "
            f"{horizon(writers)} ORDER BY position LIMIT $2"
        )
        # An index scan backwards from the horizon: the last event read_all returns now.
        self._sql_head = (
            f"SELECT coalesce(max(position), 0) FROM {s}.events WHERE position < {horizon(writers)}"
        )
        self._sql_held_back = (
            f"SELECT EXISTS (SELECT FROM {s}.events WHERE position >= greatest($1, "
            f"{horizon(writers)}))"
        )
        # Distinct stream names by a skip scan of the (stream, version) index, one index
        # probe per stream, evaluated only as far as the LIMIT needs; then each stream's
        # last event, and what the streams table adds (its row may not exist).
        self._sql_streams = (
            "WITH RECURSIVE names (stream) AS ("
            f"SELECT (SELECT min(stream) FROM {s}.events WHERE stream > $2 AND stream >= $1) "
            f"UNION ALL SELECT (SELECT min(e.stream) FROM {s}.events AS e "
            "WHERE e.stream > n.stream) FROM names AS n WHERE n.stream IS NOT NULL) "
            "SELECT n.stream, last.version, "
            f"coalesce((SELECT deleted FROM {s}.streams WHERE stream = n.stream), false), "
            f"coalesce((SELECT truncate_before FROM {s}.streams WHERE stream = n.stream), 0), "
            "last.position, last.recorded_at FROM names AS n CROSS JOIN LATERAL ("
            f"SELECT version, position, recorded_at FROM {s}.events WHERE stream = n.stream "
            "ORDER BY version DESC LIMIT 1) AS last "
            "WHERE n.stream IS NOT NULL AND starts_with(n.stream, $1) LIMIT $3"
        )
        # The checkpoint a checkpoint stream's metadata holds (see corral.eventsourcing.
        # _tracking): the JSON object's CHECKPOINT_KEY, 0 for no metadata.
        checkpoint = (
            f"coalesce((convert_from(nullif(s.metadata, ''), 'UTF8')::jsonb "
            f"->> '{CHECKPOINT_KEY}')::bigint, 0)"
        )
        self._sql_advance = (
            f"UPDATE {s}.streams AS s SET metadata = $2 WHERE stream = $1 "
            f"AND {checkpoint} = $3 RETURNING true"
        )
        self._sql_advance_from_zero = (
            f"INSERT INTO {s}.streams AS s (stream, metadata) VALUES ($1, $2) "
            f"ON CONFLICT (stream) DO UPDATE SET metadata = excluded.metadata "
            f"WHERE {checkpoint} = $3 RETURNING true"
        )
        # A stream's version is its last event's; the streams row may not exist.
        self._sql_stream = (
            f"SELECT (SELECT coalesce(max(version), 0) FROM {s}.events WHERE stream = $1), "
            "coalesce(s.deleted, false), coalesce(s.truncate_before, 0), "
            f"coalesce(s.metadata, '') FROM (SELECT) AS one LEFT JOIN {s}.streams AS s "
            "ON s.stream = $1"
        )

    @classmethod
    async def open(
        cls, dsn: str, *, schema: str = "corral", max_size: int = 10, create: bool = True
    ) -> PostgresEventStore:
        """Connect to the database ``dsn`` names and open the store in ``schema``.

        The schema, its tables and its function are created if missing (unless
        ``create`` is false).

        Args:
            dsn: a libpq connection URL, ``postgresql://user:password@host:port/database``.
                The store's connections name themselves ``corral <schema>`` (their
                ``application_name``).
            schema: the PostgreSQL schema holding the store (a lower-case identifier).
            max_size: most connections the store's pool opens (``>= 1``).
            create: create the store if the schema holds none. With ``False``, only an
                existing store is opened (for tools that inspect one): a schema without
                one raises ``BackendUnavailable`` and nothing is created.

        Raises:
            ArgumentTypeError, InvalidArgumentError: a bad argument.
            BackendUnavailable: the database cannot be reached, the schema holds a
                version of the store this corral does not know, or (``create`` false)
                holds no store.
        """
        if not isinstance(dsn, str):
            raise ArgumentTypeError(f"dsn must be a str, not {type(dsn).__name__} ({dsn!r})")
        if not isinstance(create, bool):
            raise ArgumentTypeError(
                f"create must be a bool, not {type(create).__name__} ({create!r})"
            )
        schema = schema_arg(schema)
        size = size_arg(max_size, "max_size")
        where = f"{_redacted(dsn)} schema {schema!r}"
        with map_exceptions(where):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=size,
                server_settings={"application_name": f"corral {schema}"},
                reset=_keep_session,
            )
        try:
            with map_exceptions(where):
                async with pool.acquire() as connection:
                    problem = await create_schema(connection, schema, create=create)
                    writers = await writers_key(connection, schema)
        except BaseException:
            pool.terminate()
            raise
        if problem:
            await pool.close()
            raise BackendUnavailable(f"PostgreSQL {where}: {problem}")
        return cls(pool, schema, writers, where, dsn=dsn)

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding the store."""
        return self._schema

    def _describe(self) -> str:
        return self._where

    # -- writing ---------------------------------------------------------------------

    async def _append(
        self, parts: list[StreamAppend], tracking: Tracking | None = None
    ) -> list[AppendResult]:
        if sum(len(part.events) for part in parts) > MAX_EVENTS_PER_APPEND:
            raise InvalidArgumentError(
                f"a PostgreSQL append holds at most {MAX_EVENTS_PER_APPEND} events"
            )
        if tracking is not None:
            return await self._append_tracked(parts, tracking)
        with map_exceptions(self._where):
            async with self._connections.lease() as connection:
                if len(parts) == 1 and len(parts[0].events) == 1:
                    appended = await self._append_one(connection, parts[0])
                    if appended is not None:
                        self._counters.count_part(appended, False)
                        self._counters.transactions += 1
                        return [appended]
                outcome = await self._append_on(connection, parts)
        counters = self._counters
        for result, retried in outcome:
            counters.count_part(result, retried)
        counters.transactions += 1
        return [result for result, _ in outcome]

    async def _append_one(self, connection: Any, part: StreamAppend) -> AppendResult | None:
        """Append one event to one stream with the function of plain values, if it can.

        Raises ``ConcurrencyError`` on a conflict. ``None`` when that function wrote
        nothing because the id is stored or the stream deleted, or when a concurrent
        append of the same id committed first: the general function then decides, as
        it decides every other append.
        """
        (event,) = part.events
        try:
            row = await connection.fetchrow(
                self._sql_append_one,
                part.stream,
                _expected_code(part.expected),
                event.id,
                event.type,
                event.content_type,
                event.data,
                event.metadata,
            )
        except asyncpg.UniqueViolationError:
            return None
        except asyncpg.RaiseError as exc:
            raise self._conflict(exc, [part]) from None
        version = row[0]
        if version is None:
            return None
        return AppendResult(part.stream, version, (row[1],))

    async def _append_on(
        self, connection: Any, parts: list[StreamAppend], *, in_transaction: bool = False
    ) -> list[tuple[AppendResult, bool]]:
        """Call the append function (one autocommitted statement) until it has decided.

        A plain append, a conflict and a retry of a whole append each take one call.
        When the function finds event ids stored, it writes nothing and returns those
        events: the parts they repeat are answered from them (or raise
        ``DuplicateError``) and the others are appended by the next call, which looks
        again (ids only accumulate, so this ends). A unique-key violation means a
        concurrent append of the same ids committed first: the next call sees them
        (``in_transaction``: the violation is raised, as the transaction is lost).
        """
        stored: dict[uuid.UUID, RecordedEvent] = {}
        retries: list[AppendResult | None] = [None] * len(parts)
        while True:
            if stored:
                retries = [
                    match_retry(part, [stored.get(e.id) for e in part.events]) for part in parts
                ]
            fresh = [part for part, retry in zip(parts, retries, strict=True) if retry is None]
            rows: list[asyncpg.Record] = []
            if fresh:
                try:
                    rows = await connection.fetch(self._sql_append, *_arguments(fresh))
                except asyncpg.UniqueViolationError:
                    if in_transaction:
                        raise
                    continue
                except asyncpg.RaiseError as exc:
                    raise self._conflict(exc, fresh) from None
                if rows and rows[0][0]:
                    stored.update((event.id, event) for event in _recorded(rows, 1))
                    continue
            written = iter(rows)
            return [
                (retry, True) if retry is not None else (_result(part, next(written)), False)
                for part, retry in zip(parts, retries, strict=True)
            ]

    def _conflict(self, exc: asyncpg.RaiseError, parts: list[StreamAppend]) -> Exception:
        """What an append function's error means: a ``ConcurrencyError`` for the part it
        names (counted), or the error itself when it is not a conflict."""
        if exc.message != CONFLICT:
            error: Exception = exc
            return error
        index, actual = map(int, exc.detail.split())
        part = parts[index - 1]
        self._counters.conflicts += 1
        return ConcurrencyError(part.stream, part.expected, actual)

    async def _append_tracked(
        self, parts: list[StreamAppend], tracking: Tracking
    ) -> list[AppendResult]:
        """Append ``parts`` and compare-and-set the checkpoint in one transaction.

        The append function runs first: it takes the writer lock before the transaction
        draws its id, as the read horizon requires of every transaction that writes
        events; the checkpoint is written after it. A checkpoint-only advance writes no
        event and is a single statement. A unique-key violation (a concurrent append of
        the same ids committed first) rolls the transaction back; the next one sees them.
        """
        with map_exceptions(self._where):
            async with self._connections.lease() as connection:
                if not parts:
                    await self._advance(connection, tracking)
                    outcome: list[tuple[AppendResult, bool]] = []
                else:
                    while True:
                        try:
                            async with connection.transaction():
                                outcome = await self._append_on(
                                    connection, parts, in_transaction=True
                                )
                                await self._advance(connection, tracking)
                            break
                        except asyncpg.UniqueViolationError:
                            continue
        counters = self._counters
        for result, retried in outcome:
            counters.count_part(result, retried)
        counters.transactions += 1
        return [result for result, _ in outcome]

    async def _advance(self, connection: Any, tracking: Tracking) -> None:
        """Move the checkpoint from ``tracking.expected`` to ``tracking.position``.

        One statement: it locks the checkpoint's row, so of two concurrent advances
        from the same position one waits for the other and then finds it moved.

        Raises:
            ConcurrencyError: the stored checkpoint is not ``tracking.expected``.
        """
        stream = tracking.stream
        sql = self._sql_advance_from_zero if tracking.expected == 0 else self._sql_advance
        done = await connection.fetchval(sql, stream, tracking.metadata, tracking.expected)
        if done is None:
            custom = await connection.fetchval(
                f"SELECT metadata FROM {self._schema}.streams WHERE stream = $1", stream
            )
            self._counters.conflicts += 1
            tracking.check(custom or b"")  # raises with the stored checkpoint
            raise ConcurrencyError(stream, tracking.expected, tracking.expected)

    async def _set_stream(
        self, stream: str, *, custom: bytes | None = None, truncate_before: int | None = None
    ) -> None:
        with map_exceptions(self._where):
            async with self._connections.lease() as connection:
                await connection.execute(
                    f"INSERT INTO {self._schema}.streams AS s (stream, metadata, "
                    "truncate_before) VALUES ($1, coalesce($2::bytea, ''), "
                    "coalesce($3::bigint, 0)) ON CONFLICT (stream) DO UPDATE "
                    "SET metadata = coalesce($2, s.metadata), "
                    "truncate_before = coalesce($3, s.truncate_before)",
                    stream,
                    custom,
                    truncate_before,
                )

    async def _delete_stream(self, stream: str, expected: ExpectedVersion) -> None:
        s = self._schema
        with map_exceptions(self._where):
            async with self._connections.lease() as connection, connection.transaction():
                await connection.execute(f"SELECT {s}.lock_streams($1)", [stream])
                version, deleted, _, _ = await connection.fetchrow(self._sql_stream, stream)
                exists = version > 0 and not deleted
                try:
                    check_expected(stream, expected, version, exists)
                except ConcurrencyError:
                    self._counters.conflicts += 1
                    raise
                if exists:
                    await connection.execute(
                        f"INSERT INTO {s}.streams (stream, deleted, truncate_before) "
                        "VALUES ($1, true, $2) ON CONFLICT (stream) DO UPDATE "
                        "SET deleted = true, truncate_before = excluded.truncate_before",
                        stream,
                        version + 1,
                    )

    # -- reading ---------------------------------------------------------------------

    async def _fetch_stream(
        self, stream: str, start: int | None, backwards: bool, count: int
    ) -> list[RecordedEvent]:
        if backwards:
            sql, first = self._sql_backward, 2**62 if start is None else start
        else:
            sql, first = self._sql_forward, start or 0
        with map_exceptions(self._where):
            async with self._connections.lease() as connection:
                rows = await connection.fetch(sql, stream, first, count)
        return _recorded(rows)

    async def _fetch_all(self, start: int, count: int) -> list[RecordedEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HORIZON_WAIT
        delay = 0.001
        with map_exceptions(self._where):
            while True:
                async with self._connections.lease() as connection:
                    rows = await connection.fetch(self._sql_all, start, count)
                if len(rows) == count or loop.time() >= deadline:
                    break
                after = rows[-1][2] + 1 if rows else start
                async with self._connections.lease() as connection:
                    held_back = await connection.fetchval(self._sql_held_back, after)
                if not held_back:
                    break
                # Committed events wait behind an older transaction still running: give
                # it a moment, so a reader sees what was appended before it asked.
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.02)
        return _recorded(rows)

    async def _fetch_streams(self, prefix: str, after: str, count: int) -> list[StreamInfo]:
        with map_exceptions(self._where):
            async with self._connections.lease() as connection:
                rows = await connection.fetch(self._sql_streams, prefix, after, count)
        page = [StreamInfo(*row.values()) for row in rows]
        page.sort(key=lambda info: info.stream)  # the scan's order, made explicit
        return page

    async def _head_position(self) -> int:
        with map_exceptions(self._where):
            async with self._connections.lease() as connection:
                position: int = await connection.fetchval(self._sql_head)
        return position

    async def _get_stream(self, stream: str) -> tuple[int, bool, int, bytes]:
        with map_exceptions(self._where):
            async with self._connections.lease() as connection:
                row = await connection.fetchrow(self._sql_stream, stream)
        return row[0], row[1], row[2], row[3]

    def _watch(self) -> None:
        # The first subscription that waits opens the listening connection.
        if not self._listener.started and not self._closed:
            self._listener.start()

    async def _close(self) -> None:
        await self._listener.close()
        try:
            with map_exceptions(self._where):
                await self._connections.close()
        except BaseException:
            self._connections.terminate()
            raise


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Reset nothing when a connection returns to the pool (asyncpg rolls back an open
    transaction first): the store sets no session state (no LISTEN, SET, cursors or
    session locks), and the default reset costs a round trip per query."""


def _arguments(parts: list[StreamAppend]) -> tuple[list[Any], ...]:
    events = [event for part in parts for event in part.events]
    return (
        [part.stream for part in parts],
        [_expected_code(part.expected) for part in parts],
        [len(part.events) for part in parts],
        [event.id for event in events],
        [event.type for event in events],
        [event.content_type for event in events],
        [event.data for event in events],
        [event.metadata for event in events],
    )


def _expected_code(expected: ExpectedVersion) -> int:
    return expected if isinstance(expected, int) else _EXPECTED[expected]


def _result(part: StreamAppend, row: asyncpg.Record) -> AppendResult:
    version, first = row[2], row[3]
    return AppendResult(part.stream, version, tuple(range(first, first + len(part.events))))


def _redacted(dsn: str) -> str:
    """``dsn`` without its password."""
    scheme, separator, rest = dsn.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return dsn
    user = credentials.split(":", 1)[0]
    return f"{scheme}{separator}{user}:***@{host}"
