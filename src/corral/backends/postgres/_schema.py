"""The PostgreSQL schema of a corral event store, its append function, error translation.

Everything lives in one PostgreSQL schema (``corral`` unless told otherwise), created on
first use under an advisory lock and versioned in its ``schema_version`` table.

Positions come from transaction ids: an event's position is
``pg_current_xact_id() * 2**20 + n``, where ``n`` counts the events its transaction
wrote. See :class:`~corral.backends.postgres.PostgresEventStore` for why.
"""

from __future__ import annotations

import contextlib
import re
from types import TracebackType
from typing import TYPE_CHECKING, Final

import asyncpg

from ...errors import BackendUnavailable, InvalidArgumentError

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

__all__ = (
    "APPEND_FUNCTION",
    "APPEND_ONE_FUNCTION",
    "CONFLICT",
    "LISTENING",
    "POSITION_BITS",
    "SCHEMA_VERSION",
    "channel",
    "create_schema",
    "horizon",
    "map_exceptions",
    "schema_arg",
    "writers_key",
)

#: The schema this version of corral writes, kept in its ``schema_version`` table.
SCHEMA_VERSION: Final = 4

#: The append function's name (in the store's schema).
APPEND_FUNCTION: Final = "append_to_streams"

#: The name of the function that appends one event to one stream (in the store's schema).
APPEND_ONE_FUNCTION: Final = "append_one"

# The append function each older schema version had, dropped by the upgrade (which then
# creates this version's functions).
_OLD_FUNCTIONS: Final = {1: "append_events", 2: APPEND_FUNCTION, 3: APPEND_FUNCTION}

#: Positions are ``xid << POSITION_BITS | n``: one transaction writes at most
#: ``2**POSITION_BITS`` events.
POSITION_BITS: Final = 20

#: The message of the error the append function raises on an expected-version conflict.
CONFLICT: Final = "corral: expected version conflict"

_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Expected versions as the append function takes them: an exact version is >= 0.
EXPECT_ANY: Final = -1
EXPECT_NO_STREAM: Final = -2
EXPECT_STREAM_EXISTS: Final = -3

_TABLES: Final = """
CREATE TABLE {s}.streams (
    stream text PRIMARY KEY,
    deleted boolean NOT NULL DEFAULT false,
    truncate_before bigint NOT NULL DEFAULT 0,
    metadata bytea NOT NULL DEFAULT ''
);
CREATE TABLE {s}.events (
    position bigint PRIMARY KEY,
    stream text NOT NULL,
    version bigint NOT NULL,
    id uuid NOT NULL UNIQUE,
    type text NOT NULL,
    content_type text NOT NULL,
    data bytea NOT NULL,
    metadata bytea NOT NULL,
    recorded_at double precision NOT NULL,
    UNIQUE (stream, version)
);
"""

# One call appends to every stream of an append, in one statement (autocommitted by the
# caller: one round trip). It first takes the store's writer lock (shared) and a
# transaction-scoped advisory lock per stream (in key order, so two multi-stream appends
# cannot deadlock) and only THEN draws its transaction id: advisory locks assign no id,
# so of two appends to one stream the one that locks first also has the lower id, and a
# stream's versions follow the global order. Under those locks it looks the event ids
# up: when any is stored (a retry, or a duplicate) it returns the stored events (rows
# with ``stored`` true) and writes nothing, for the caller to decide. Otherwise it
# checks each expected version (a stream's version is its last event's, read from the
# events' (stream, version) index) and inserts the events, returning one row per stream
# (``stored`` false, the stream's new version, its first position); the streams table
# holds only what events cannot tell (soft deletion, truncation, metadata), so a plain
# append writes nothing but its events. A conflict raises CONFLICT with
# "<index of the stream> <actual version>" as its detail, rolling everything back. An
# append that wrote events ends by waking the store's listeners, if any (see _WAKE).
# To extend it (an extra write committed with the events), add parameters and bump
# SCHEMA_VERSION (and name the old function in _OLD_FUNCTIONS): create_schema
# drops it and creates the new one when it opens an older schema.
_APPEND_FUNCTION: Final = """
CREATE FUNCTION {s}.{append}(
    p_streams text[], p_expected bigint[], p_counts integer[], p_ids uuid[], p_types text[],
    p_content_types text[], p_data bytea[], p_metadata bytea[]
) RETURNS TABLE (
    stored boolean, stream text, version bigint, "position" bigint, id uuid, type text,
    data bytea, metadata bytea, content_type text, recorded_at double precision
)
LANGUAGE plpgsql AS $$
DECLARE
    base bigint;
    now_seconds double precision := extract(epoch FROM clock_timestamp());
    v_stream text;
    v_expected bigint;
    v_count integer;
    v_version bigint;
    v_deleted boolean;
    written integer := 0;
BEGIN
    IF cardinality(p_streams) > 1 THEN
        PERFORM {s}.lock_streams(p_streams);
    ELSE
        -- One stream, the common case: its locks (no other transaction takes the
        -- writer lock but shared, so their order cannot deadlock), then one statement
        -- (one snapshot, taken after the locks) that checks and inserts. When it
        -- inserts nothing (an id stored, a conflict, a deleted stream, no events),
        -- the general path below finds out why, under the same locks.
        PERFORM pg_advisory_xact_lock_shared({writers}, 0),
            pg_advisory_xact_lock(hashtextextended('{s}.' || p_streams[1], 0));
        IF p_counts[1] > 0 THEN
            WITH cur AS (
                SELECT coalesce(max(e.version), 0) AS v FROM {s}.events AS e
                WHERE e.stream = p_streams[1]
            ), inserted AS (
                INSERT INTO {s}.events AS t (position, stream, version, id, type,
                    content_type, data, metadata, recorded_at)
                SELECT ((pg_current_xact_id()::text::bigint) << {bits}) + n.k - 1,
                       p_streams[1], c.v + n.k, n.id, n.type, n.content_type, n.data,
                       n.metadata, now_seconds
                FROM cur AS c, unnest(p_ids, p_types, p_content_types, p_data, p_metadata)
                    WITH ORDINALITY AS n (id, type, content_type, data, metadata, k)
                WHERE (p_expected[1] IN ({any}, c.v)
                        OR (p_expected[1] = {exists} AND c.v > 0)
                        OR (p_expected[1] = {no_stream} AND c.v = 0))
                    AND NOT EXISTS (SELECT FROM {s}.streams AS d
                                    WHERE d.stream = p_streams[1] AND d.deleted)
                    AND NOT EXISTS ({stored_ids})
                RETURNING t.version, t.position
            )
            SELECT max(i.version), min(i.position) INTO v_version, base FROM inserted AS i;
            IF v_version IS NOT NULL THEN
                stored := false;
                stream := p_streams[1];
                version := v_version;
                "position" := base;
                RETURN NEXT;
                {wake}
                RETURN;
            END IF;
        END IF;
    END IF;
    RETURN QUERY SELECT true, e.stream, e.version, e.position, e.id, e.type, e.data,
            e.metadata, e.content_type, e.recorded_at
        FROM ({stored_ids}) AS e;
    IF FOUND THEN
        RETURN;
    END IF;
    base := (pg_current_xact_id()::text::bigint) << {bits};
    FOR i IN 1 .. cardinality(p_streams) LOOP
        v_stream := p_streams[i];
        v_expected := p_expected[i];
        v_count := p_counts[i];
        SELECT coalesce((SELECT max(e.version) FROM {s}.events AS e
                         WHERE e.stream = v_stream), 0),
               coalesce((SELECT t.deleted FROM {s}.streams AS t
                         WHERE t.stream = v_stream), false)
            INTO v_version, v_deleted;
        IF (v_expected = {no_stream} AND v_version > 0 AND NOT v_deleted)
            OR (v_expected = {exists} AND (v_version = 0 OR v_deleted))
            OR (v_expected >= 0 AND v_expected <> v_version) THEN
            RAISE EXCEPTION '{conflict}' USING DETAIL = i || ' ' || v_version;
        END IF;
        IF v_count > 0 THEN
            INSERT INTO {s}.events AS t (position, stream, version, id, type, content_type,
                data, metadata, recorded_at)
            SELECT base + written + n.k - 1, v_stream, v_version + n.k, n.id, n.type,
                   n.content_type, n.data, n.metadata, now_seconds
            FROM unnest(
                p_ids[written + 1 : written + v_count],
                p_types[written + 1 : written + v_count],
                p_content_types[written + 1 : written + v_count],
                p_data[written + 1 : written + v_count],
                p_metadata[written + 1 : written + v_count]
            ) WITH ORDINALITY AS n (id, type, content_type, data, metadata, k);
            IF v_deleted THEN
                UPDATE {s}.streams AS t SET deleted = false WHERE t.stream = v_stream;
            END IF;
        END IF;
        stored := false;
        stream := v_stream;
        version := v_version + v_count;
        "position" := base + written;
        RETURN NEXT;
        written := written + v_count;
    END LOOP;
    IF written > 0 THEN
        {wake}
    END IF;
END
$$;
"""

# The commonest append, one event to one stream, as a function of plain values: the
# general function's fast path without its arrays, its unnesting and its set of rows,
# which cost the server (and the client, encoding and decoding them) about twice what
# the insert does. The same locks in the same order, then one statement (its snapshot
# taken after the locks) that checks and inserts. It returns the stream's new version
# and the event's position. When it inserted nothing, nothing was written: it raises
# CONFLICT (detail "1 <actual version>") if the expected version was wrong, and returns
# NULLs when the id is stored (a retry, or a duplicate) or the stream is deleted, for
# the caller to ask the general function. Under the stream's lock, the version it reads
# again is the one the insert saw, and for a stream that is not deleted the insert's
# version test fails exactly when the general function's conflict test holds.
_APPEND_ONE_FUNCTION: Final = """
CREATE FUNCTION {s}.{append_one}(
    p_stream text, p_expected bigint, p_id uuid, p_type text, p_content_type text,
    p_data bytea, p_metadata bytea, OUT version bigint, OUT "position" bigint
)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({writers}, 0),
        pg_advisory_xact_lock(hashtextextended('{s}.' || p_stream, 0));
    WITH cur AS (
        SELECT coalesce(max(e.version), 0) AS v FROM {s}.events AS e
        WHERE e.stream = p_stream
    )
    INSERT INTO {s}.events AS t (position, stream, version, id, type, content_type, data,
        metadata, recorded_at)
    SELECT (pg_current_xact_id()::text::bigint) << {bits}, p_stream, c.v + 1, p_id,
           p_type, p_content_type, p_data, p_metadata,
           extract(epoch FROM clock_timestamp())
    FROM cur AS c
    WHERE (p_expected IN ({any}, c.v)
            OR (p_expected = {exists} AND c.v > 0)
            OR (p_expected = {no_stream} AND c.v = 0))
        AND NOT EXISTS (SELECT FROM {s}.streams AS d WHERE d.stream = p_stream AND d.deleted)
        AND NOT EXISTS (SELECT FROM {s}.events AS f WHERE f.id = p_id)
    RETURNING t.version, t.position INTO version, "position";
    IF FOUND THEN
        {wake}
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM {s}.events AS f WHERE f.id = p_id)
        AND NOT EXISTS (SELECT FROM {s}.streams AS d
                        WHERE d.stream = p_stream AND d.deleted) THEN
        RAISE EXCEPTION '{conflict}' USING DETAIL = '1 ' || coalesce(
            (SELECT max(e.version) FROM {s}.events AS e WHERE e.stream = p_stream), 0);
    END IF;
END
$$;
"""


# The locks an append or a deletion holds until it commits: the store's writer lock,
# shared (readers look for its holders), and one per stream.
_LOCK_FUNCTION: Final = """
CREATE FUNCTION {s}.lock_streams(p_streams text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    key bigint;
BEGIN
    PERFORM pg_advisory_xact_lock_shared({writers}, 0);
    FOR key IN
        SELECT DISTINCT hashtextextended('{s}.' || name, 0) FROM unnest(p_streams) AS name
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(key);
    END LOOP;
END
$$;
"""


def horizon(writers: int) -> str:
    """SQL for the first position ``read_all`` must not return yet, in this statement.

    Of the transactions in progress in the statement's snapshot, the first that may
    write events: one holding the store's writer lock (``writers``, taken before an
    append draws its transaction id, so a transaction without it now never writes
    events), or one that has ended since the snapshot (it may have). Without such a
    transaction, the snapshot's ``xmax``: every later transaction id is at or above it.
    Unrelated transactions, even held open for long, do not hold readers back.

    The order of the two looks matters. The lock holders are read first, in full (the
    aggregate ends before the lateral join asks for a transaction's status), and the
    statuses after: an append seen in progress then held its lock when the holders were
    read, or it would have ended by then and been seen ended. Asked the other way round,
    an append that commits between its status and the lock table would be seen neither
    ended nor holding the lock, and a reader would pass its events for good.
    """
    return f"""(SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))::text::bigint
        << {POSITION_BITS} FROM (
            SELECT coalesce(array_agg(t.transactionid), '{{}}') AS held
            FROM pg_locks AS a JOIN pg_locks AS t
                ON t.virtualtransaction = a.virtualtransaction AND t.locktype = 'transactionid'
            WHERE a.locktype = 'advisory' AND a.classid = {writers} AND a.objid = 0
                AND a.objsubid = 2
        ) AS holders, LATERAL (
            SELECT x FROM pg_snapshot_xip(pg_current_snapshot()) AS x
            WHERE x::xid = ANY(holders.held)
                OR pg_xact_status(x) IS DISTINCT FROM 'in progress'
        ) AS pending)"""


async def writers_key(connection: PoolConnectionProxy[asyncpg.Record], schema: str) -> int:
    """The advisory-lock key of the store in ``schema`` that its appends hold shared."""
    key: int = await connection.fetchval(
        "SELECT hashtext($1) & 2147483647", f"corral writers:{schema}"
    )
    return key


def schema_arg(value: object) -> str:
    """Check a schema name: a lower-case SQL identifier (letters, digits, ``_``).

    Raises:
        InvalidArgumentError: ``value`` is not such a name (also for a non-``str``).
    """
    if not isinstance(value, str) or _IDENTIFIER.fullmatch(value) is None:
        raise InvalidArgumentError(
            "schema must be a lower-case identifier (a-z, 0-9, _; at most 63 characters, "
            f"not starting with a digit), got {value!r}"
        )
    return value


_DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class _ExceptionMap:
    """The context manager :func:`map_exceptions` returns (a class: every append uses
    one, and a generator-based one costs several times more to enter and leave)."""

    __slots__ = ("_where",)

    def __init__(self, where: str) -> None:
        self._where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, _DRIVER_ERRORS):
            raise BackendUnavailable(f"PostgreSQL {self._where}: {exc}") from exc


def map_exceptions(where: str) -> contextlib.AbstractContextManager[None]:
    """Translate driver and network errors into ``BackendUnavailable`` (cause attached)."""
    return _ExceptionMap(where)


async def create_schema(
    connection: PoolConnectionProxy[asyncpg.Record], schema: str, *, create: bool = True
) -> str:
    """Create ``schema`` with its tables and functions, or upgrade an older version of it.

    Runs in one transaction under an advisory lock, so processes opening a new store at
    once do not both create it. An older version is upgraded in place (its append
    function replaced; the events stay as they are); processes still running the older
    corral then fail their appends with ``BackendUnavailable`` (the function they call
    is gone) instead of misreading the new one. Version 3 had the general append
    function only; the upgrade recreates it (unchanged) next to ``append_one``. Returns
    ``""`` when the schema is usable, else why not (a version newer than this corral
    knows; with ``create`` false, also when it holds no store: then nothing is created).
    """
    if not create:
        present = await connection.fetchval("SELECT to_regclass($1)", f"{schema}.schema_version")
        if present is None:
            return f"no corral event store in schema {schema!r}"
    writers = await writers_key(connection, schema)
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"corral:{schema}")
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        present = await connection.fetchval("SELECT to_regclass($1)", f"{schema}.schema_version")
        if present is None:
            await connection.execute(_TABLES.format(s=schema))
            await connection.execute(_LOCK_FUNCTION.format(s=schema, writers=writers))
            await connection.execute(_append_functions(schema, writers))
            await connection.execute(f"CREATE TABLE {schema}.schema_version (version integer)")
            await connection.execute(
                f"INSERT INTO {schema}.schema_version VALUES ($1)", SCHEMA_VERSION
            )
            return ""
        version = await connection.fetchval(f"SELECT max(version) FROM {schema}.schema_version")
        if version in _OLD_FUNCTIONS:
            await connection.execute(f"DROP FUNCTION IF EXISTS {schema}.{_OLD_FUNCTIONS[version]}")
            await connection.execute(_append_functions(schema, writers))
            await connection.execute(
                f"UPDATE {schema}.schema_version SET version = $1", SCHEMA_VERSION
            )
            return ""
    if version != SCHEMA_VERSION:
        return f"schema {schema!r} has version {version}; this corral knows {SCHEMA_VERSION}"
    return ""


# Wakes the store's listeners, if any, when the append commits. A NOTIFY takes a
# database-wide lock from its transaction's commit until the commit has been flushed,
# which makes concurrent appends commit one at a time; so an append notifies only when
# a listener holds the store's listener lock (shared, for as long as its connection
# lives). A failed try means a listener, or another append trying at that very moment
# (then it notifies for nothing). The try and the unlock are session-level, with
# nothing in between that could fail.
_WAKE: Final = """IF pg_try_advisory_lock({writers}, {listening}) THEN
            PERFORM pg_advisory_unlock({writers}, {listening});
        ELSE
            PERFORM pg_notify('{channel}', '');
        END IF;"""

#: The second key of the advisory lock a store's listeners hold (the first is the
#: store's writer-lock key).
LISTENING: Final = 1


def channel(schema: str) -> str:
    """The notification channel of the store in ``schema`` (at most 63 characters)."""
    return f"corral_{schema}"[:63]


# The stored events among ``p_ids``: one index lookup per id (a plain ``id = ANY(p_ids)``
# is planned as a scan of the whole table until the table is large).
_STORED_IDS: Final = """SELECT e.* FROM unnest(p_ids) AS x (id) CROSS JOIN LATERAL
            (SELECT * FROM {s}.events AS f WHERE f.id = x.id LIMIT 1) AS e"""


def _append_functions(schema: str, writers: int) -> str:
    """The statements that create both append functions of the store in ``schema``."""
    fields = {
        "s": schema,
        "stored_ids": _STORED_IDS.format(s=schema),
        "wake": _WAKE.format(writers=writers, listening=LISTENING, channel=channel(schema)),
        "append": APPEND_FUNCTION,
        "append_one": APPEND_ONE_FUNCTION,
        "writers": writers,
        "bits": POSITION_BITS,
        "any": EXPECT_ANY,
        "no_stream": EXPECT_NO_STREAM,
        "exists": EXPECT_STREAM_EXISTS,
        "conflict": CONFLICT,
    }
    return _APPEND_FUNCTION.format(**fields) + ";" + _APPEND_ONE_FUNCTION.format(**fields)
