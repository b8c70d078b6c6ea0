"""Event store on PostgreSQL: corral against ``eventsourcing``'s recorder and a raw floor.

All sides write to the same server at its default durability (``synchronous_commit=on``:
every acknowledged append has reached the WAL on disk). Each append is one event with an
optimistic-concurrency check: corral's expected version, ``eventsourcing``'s unique
``(originator_id, originator_version)`` key, the raw floor's unique ``(stream, version)``.

Cases:

- one writer, one stream, ``n`` appends in a row;
- eight concurrent writers, ``n`` appends in all (corral: eight tasks on one store;
  eventsourcing: eight threads on one recorder with eight pooled connections; raw:
  eight tasks, each on its own connection);
- the raw floor: asyncpg, one autocommitted ``INSERT`` per event into a table like
  corral's events table, with no version check and no stream row.

``eventsourcing``'s PostgreSQL recorder needs psycopg 3; without it those cases are
reported as unavailable. The server is ``CORRAL_POSTGRES_URL`` or
``postgresql://127.0.0.1:5432/test``; when it is not reachable every case is reported
unavailable (so a smoke run without the service passes). Each case works in a schema of
its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from benchmarks._harness import TimesFaster, Workload, timed_case

WRITERS = 8
URL = os.environ.get("CORRAL_POSTGRES_URL") or "postgresql://127.0.0.1:5432/test"

_RAW_TABLE = """
CREATE TABLE {s}.raw_events (
    position bigserial PRIMARY KEY,
    stream text NOT NULL,
    version bigint NOT NULL,
    id uuid NOT NULL UNIQUE,
    type text NOT NULL,
    data bytea NOT NULL,
    UNIQUE (stream, version)
)
"""


def _require_server() -> None:
    from corral.testing._services import unreachable

    parts = urlsplit(URL)
    problem = unreachable(parts.hostname or "127.0.0.1", parts.port or 5432, 1.0)
    if problem is not None:
        # The harness reports a case that raises ImportError as unavailable here.
        raise ImportError(f"PostgreSQL is not reachable at {URL} ({problem})")


async def _admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def _scratch_schema() -> Iterator[str]:
    _require_server()
    schema = f"corral_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        asyncio.run(_admin(f"DROP SCHEMA {schema} CASCADE"))


def _shares(n: int) -> list[int]:
    return [n // WRITERS + (1 if index < n % WRITERS else 0) for index in range(WRITERS)]


# -- corral ------------------------------------------------------------------------------


def _corral(body: Callable[[Any, int], Awaitable[None]]) -> Callable[[int], float]:
    def measure(n: int) -> float:
        from corral.backends.postgres import PostgresEventStore

        async def run(schema: str) -> float:
            store = await PostgresEventStore.open(URL, schema=schema, max_size=WRITERS)
            try:
                # Open the pool's connections untimed, as the raw floor opens its own.
                await asyncio.gather(
                    *(store.get_stream_metadata("warm-up") for _ in range(WRITERS))
                )
                start = time.perf_counter()
                await body(store, n)
                return time.perf_counter() - start
            finally:
                await store.close()

        with _scratch_schema() as schema:
            return asyncio.run(run(schema))

    return measure


async def _corral_writer(store: Any, count: int) -> None:
    from corral.eventsourcing import NewEvent

    stream = f"account-{uuid.uuid4()}"
    for version in range(count):
        await store.append(
            stream, [NewEvent("Happened", b'{"amount": 1}')], expected_version=version
        )


async def _corral_concurrent(store: Any, n: int) -> None:
    await asyncio.gather(*(_corral_writer(store, share) for share in _shares(n)))
    assert store.statistics().events_appended == n


# -- raw asyncpg ---------------------------------------------------------------------------


def _raw(writers: int) -> Callable[[int], float]:
    def measure(n: int) -> float:
        import asyncpg

        async def writer(connection: Any, schema: str, count: int) -> None:
            sql = (
                f"INSERT INTO {schema}.raw_events (stream, version, id, type, data) "
                "VALUES ($1, $2, $3, $4, $5)"
            )
            stream = f"account-{uuid.uuid4()}"
            for version in range(1, count + 1):
                await connection.execute(
                    sql, stream, version, uuid.uuid4(), "Happened", b'{"amount": 1}'
                )

        async def run(schema: str) -> float:
            await _admin(_RAW_TABLE.format(s=schema))
            connections = [await asyncpg.connect(URL) for _ in range(writers)]
            try:
                shares = [n] if writers == 1 else _shares(n)
                start = time.perf_counter()
                await asyncio.gather(
                    *(
                        writer(c, schema, share)
                        for c, share in zip(connections, shares, strict=True)
                    )
                )
                return time.perf_counter() - start
            finally:
                for connection in connections:
                    await connection.close()

        with _scratch_schema() as schema:
            return asyncio.run(run(schema))

    return measure


# -- eventsourcing -----------------------------------------------------------------------


def _eventsourcing(writers: int) -> Callable[[int], float]:
    def measure(n: int) -> float:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        def writer(recorder: Any, count: int) -> None:
            aggregate = uuid.uuid4()
            for version in range(1, count + 1):
                event = StoredEvent(aggregate, version, "Happened", b'{"amount": 1}')
                recorder.insert_events([event])

        parts = urlsplit(URL)
        with _scratch_schema() as schema:
            datastore = PostgresDatastore(
                dbname=parts.path.lstrip("/"),
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 5432,
                user=parts.username or "postgres",
                password=parts.password or "",
                pool_size=writers,
                schema=schema,
            )
            try:
                recorder = PostgresApplicationRecorder(datastore)
                recorder.create_table()
                shares = [n] if writers == 1 else _shares(n)
                threads = [threading.Thread(target=writer, args=(recorder, s)) for s in shares]
                start = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = time.perf_counter() - start
                assert recorder.max_notification_id() == n, "a writer thread failed"
                return elapsed
            finally:
                datastore.close()

    return measure


CORRAL_ONE = "corral append, 1 writer"
ES_ONE = "eventsourcing insert_events, 1 writer"
RAW_ONE = "raw asyncpg INSERT per event, 1 writer"
CORRAL_MANY = "corral append, 8 tasks"
ES_MANY = "eventsourcing insert_events, 8 threads"
RAW_MANY = "raw asyncpg INSERT per event, 8 connections"

WORKLOAD = Workload(
    name="eventstore-postgres",
    title="Event store on PostgreSQL (synchronous_commit=on): appends",
    n=400,
    smoke_n=16,
    unit="events",
    baseline=RAW_ONE,
    cases=(
        timed_case(CORRAL_ONE, _corral(lambda store, n: _corral_writer(store, n))),
        timed_case(ES_ONE, _eventsourcing(1)),
        timed_case(RAW_ONE, _raw(1)),
        timed_case(CORRAL_MANY, _corral(_corral_concurrent)),
        timed_case(ES_MANY, _eventsourcing(WRITERS)),
        timed_case(RAW_MANY, _raw(WRITERS)),
    ),
    floors=(
        TimesFaster(CORRAL_ONE, ES_ONE, 3),
        TimesFaster(CORRAL_MANY, ES_MANY, 5),
        TimesFaster(CORRAL_ONE, RAW_ONE, 0.6),
        TimesFaster(CORRAL_MANY, RAW_MANY, 0.6),
    ),
)
