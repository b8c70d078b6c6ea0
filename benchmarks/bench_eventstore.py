"""Event store on a SQLite file: corral against the ``eventsourcing`` library's recorder.

Both sides write one SQLite file in WAL mode with ``synchronous=FULL`` (corral sets it;
``eventsourcing`` leaves SQLite's compiled-in default, which is FULL: this module checks
it), so every acknowledged append is on disk, fsync at commit, on both sides. Each
append is one event with an optimistic-concurrency check: corral's expected version,
``eventsourcing``'s unique ``(originator_id, originator_version)`` key.

Cases:

- one appender, one stream (aggregate), ``n`` appends in a row;
- one appender over 1,000 streams, round robin;
- 16 concurrent appenders (corral: 16 tasks on one store, group commit; eventsourcing:
  16 threads on one recorder), ``n`` appends in all;
- reading ``READ_FACTOR * n`` events back in global order (corral ``read_all``,
  eventsourcing ``select_notifications`` in pages of the same size), written beforehand
  untimed: long enough to measure paging, not the first round trip.

Every case writes its own file under ``/tmp/eventstore-bench-*`` and deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks._harness import AtMost, TimesFaster, Workload, timed_case

STREAMS = 1000
APPENDERS = 16
PAGE = 500
READ_FACTOR = 20


@contextlib.contextmanager
def _scratch_file() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="eventstore-bench-", dir="/tmp")
    try:
        yield f"{directory}/events.db"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- corral ------------------------------------------------------------------------------


def _corral(
    body: Callable[[Any, int], Any], setup: Callable[[Any, int], Any] | None = None
) -> Callable[[int], float]:
    """A measure that opens a fresh store, runs ``setup`` untimed, then times ``body``."""

    def measure(n: int) -> float:
        from corral.backends.sqlite import SqliteEventStore

        async def run(path: str) -> float:
            store = await SqliteEventStore.open(path)
            try:
                if setup is not None:
                    await setup(store, n)
                start = time.perf_counter()
                await body(store, n)
                return time.perf_counter() - start
            finally:
                await store.close()

        with _scratch_file() as path:
            return asyncio.run(run(path))

    return measure


def _new_event() -> Any:
    from corral.eventsourcing import NewEvent

    return NewEvent("Happened", b'{"amount": 1}')


async def _corral_one_stream(store: Any, n: int) -> None:
    stream = f"account-{uuid.uuid4()}"
    for version in range(n):
        await store.append(stream, [_new_event()], expected_version=version)


async def _corral_many_streams(store: Any, n: int) -> None:
    streams = [f"account-{uuid.uuid4()}" for _ in range(STREAMS)]
    for index in range(n):
        await store.append(
            streams[index % STREAMS], [_new_event()], expected_version=index // STREAMS
        )


async def _corral_concurrent(store: Any, n: int) -> None:
    async def appender(count: int) -> None:
        stream = f"account-{uuid.uuid4()}"
        for version in range(count):
            await store.append(stream, [_new_event()], expected_version=version)

    await asyncio.gather(*(appender(share) for share in _shares(n)))
    assert store.statistics().events_appended == n


async def _corral_fill(store: Any, n: int) -> None:
    n *= READ_FACTOR
    for first in range(0, n, PAGE):
        events = [_new_event() for _ in range(min(PAGE, n - first))]
        await store.append(f"account-{first}", events)


async def _corral_read(store: Any, n: int) -> None:
    events = await store.read_all().collect()
    assert len(events) == n * READ_FACTOR


def _shares(n: int) -> list[int]:
    return [n // APPENDERS + (1 if index < n % APPENDERS else 0) for index in range(APPENDERS)]


# -- eventsourcing -----------------------------------------------------------------------


def _eventsourcing(
    body: Callable[[Any, int], None], setup: Callable[[Any, int], None] | None = None
) -> Callable[[int], float]:
    def measure(n: int) -> float:
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        with _scratch_file() as path:
            datastore = SQLiteDatastore(path)
            try:
                recorder = SQLiteApplicationRecorder(datastore)
                recorder.create_table()
                with datastore.transaction(commit=False) as cursor:
                    cursor.execute("PRAGMA synchronous")
                    synchronous = cursor.fetchone()[0]
                assert synchronous == 2, (
                    f"eventsourcing's SQLite is not at synchronous=FULL ({synchronous})"
                )
                if setup is not None:
                    setup(recorder, n)
                start = time.perf_counter()
                body(recorder, n)
                return time.perf_counter() - start
            finally:
                datastore.close()

    return measure


def _stored(aggregate: uuid.UUID, version: int) -> Any:
    from eventsourcing.persistence import StoredEvent

    return StoredEvent(aggregate, version, "Happened", b'{"amount": 1}')


def _es_one_aggregate(recorder: Any, n: int) -> None:
    aggregate = uuid.uuid4()
    for version in range(1, n + 1):
        recorder.insert_events([_stored(aggregate, version)])


def _es_many_aggregates(recorder: Any, n: int) -> None:
    aggregates = [uuid.uuid4() for _ in range(STREAMS)]
    for index in range(n):
        recorder.insert_events([_stored(aggregates[index % STREAMS], index // STREAMS + 1)])


def _es_concurrent(recorder: Any, n: int) -> None:
    def appender(count: int) -> None:
        aggregate = uuid.uuid4()
        for version in range(1, count + 1):
            recorder.insert_events([_stored(aggregate, version)])

    threads = [threading.Thread(target=appender, args=(share,)) for share in _shares(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recorder.max_notification_id() == n, "an appender thread failed"


def _es_fill(recorder: Any, n: int) -> None:
    n *= READ_FACTOR
    for first in range(0, n, PAGE):
        aggregate = uuid.uuid4()
        count = min(PAGE, n - first)
        recorder.insert_events([_stored(aggregate, version) for version in range(1, count + 1)])


def _es_read(recorder: Any, n: int) -> None:
    read, start = 0, 1
    while True:
        page = recorder.select_notifications(start, PAGE)
        if not page:
            break
        read += len(page)
        start = page[-1].id + 1
    assert read == n * READ_FACTOR


CORRAL_ONE = "corral append, 1 stream"
ES_ONE = "eventsourcing insert_events, 1 aggregate"
CORRAL_MANY = "corral append, 1,000 streams"
ES_MANY = "eventsourcing insert_events, 1,000 aggregates"
CORRAL_CONCURRENT = "corral append, 16 tasks"
ES_CONCURRENT = "eventsourcing insert_events, 16 threads"
CORRAL_READ = "corral read_all"
ES_READ = "eventsourcing select_notifications"

WORKLOAD = Workload(
    name="eventstore",
    title="Event store on a SQLite file (fsync at commit): appends and reading back",
    n=500,
    smoke_n=16,
    unit="events",
    baseline=ES_ONE,
    cases=(
        timed_case(CORRAL_ONE, _corral(_corral_one_stream)),
        timed_case(ES_ONE, _eventsourcing(_es_one_aggregate)),
        timed_case(CORRAL_MANY, _corral(_corral_many_streams)),
        timed_case(ES_MANY, _eventsourcing(_es_many_aggregates)),
        timed_case(CORRAL_CONCURRENT, _corral(_corral_concurrent)),
        timed_case(ES_CONCURRENT, _eventsourcing(_es_concurrent)),
        timed_case(CORRAL_READ, _corral(_corral_read, _corral_fill)),
        timed_case(ES_READ, _eventsourcing(_es_read, _es_fill)),
    ),
    floors=(
        TimesFaster(CORRAL_ONE, ES_ONE, 2),
        TimesFaster(CORRAL_MANY, ES_MANY, 2),
        TimesFaster(CORRAL_CONCURRENT, ES_CONCURRENT, 10),
        AtMost(CORRAL_READ, ES_READ, 1),
    ),
)
