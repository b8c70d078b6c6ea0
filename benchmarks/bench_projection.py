"""A projection catching up on a SQLite file: corral's Projector against eventsourcing's.

A read model that starts from scratch first applies every stored event; this workload
times that catch-up, from position 0 to the head, for a projection that keeps a
per-stream counter in a SQLite table of its read model. The events are 5,000
``Deposited`` events over 100 streams (aggregates), 50 each (200 events for
``--smoke``), payload ``{"amount": 1}`` on both sides, written untimed into each side's
own file before anything is timed. Every run projects into a new, empty view file.

Cases:

- ``corral Projector.catch_up``: a ``Projector`` over the ``SqliteEventStore`` file,
  whose ``Projection`` upserts the stream's counter through the ``SqliteTransaction`` it
  is given, into a ``SqliteReadModel`` in its own file. The projector reads 256 events
  a page and applies each page in one read-model transaction that also moves the
  checkpoint (WAL, ``synchronous=FULL``). Timed: ``await projector.catch_up()``, which
  also creates the projection's table and loads its checkpoint. Each upsert is one
  round trip to the read model's thread.
- ``corral Projector.catch_up, apply_batch``: the same projection overriding
  ``apply_batch``, which writes a page's upserts with one ``executemany`` (one round
  trip per page).
- ``eventsourcing ProjectionRunner``: the ``eventsourcing`` library's
  ``ProjectionRunner`` over an ``Application`` on its SQLite recorder, with a
  ``Projection`` whose ``process_event`` calls the view, a ``SQLiteTrackingRecorder``
  subclass in its own file, which upserts the aggregate's counter and inserts the
  tracking position in one transaction per event, as the library's projections are
  written. Its SQLite application recorder does not implement ``subscribe``, which the
  runner needs, so the application uses a subclass whose ``subscribe`` returns the
  library's own ``ListenNotifySubscription`` (it pages through
  ``select_notifications``, 500 notifications a page, on a thread). Timed: from
  constructing the runner, which starts processing at once, until the view's tracking
  position is the last event's, checked with ``has_tracking_id`` every 5 ms (the
  library's ``wait`` sleeps 100 ms to 800 ms between checks, too coarse for this).

Both views are SQLite files in WAL mode with ``synchronous=FULL`` (eventsourcing leaves
SQLite's default, FULL), so each commit is fsynced: the gap is mostly 20 commits on
corral's side against 5,000 on eventsourcing's. The files live under ``/var/tmp``
(disk-backed, unlike a ``/tmp`` that may be a tmpfs) in a directory deleted at exit.

The floor: corral is at least 2x faster. Measured at full size, best of 5, on a
2-core machine with an ext4 disk, six runs gave 4.79x, 5.28x, 5.87x, 5.61x, 5.89x and
5.66x; 2x is a round number below half the lowest. On a tmpfs, where a commit costs no fsync,
the ratio drops to about 1.6x: the floor is a claim about durable views.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from typing import TYPE_CHECKING

from benchmarks._harness import TimesFaster, Workload, timed_case
from benchmarks._scratch import ScratchFiles

if TYPE_CHECKING:
    from corral.backends.sqlite import SqliteTransaction
    from corral.eventsourcing import Projection

#: Events of a full run; the floor is judged at this size.
EVENTS = 5_000
#: Streams (aggregates) the events are spread over, in equal shares.
STREAMS = 100
PAYLOAD = b'{"amount": 1}'
#: Seconds between looks at the eventsourcing view's tracking position.
POLL = 0.005

_SCRATCH = ScratchFiles("projection-bench-", on_disk=True)
_views = itertools.count()


def _events_file(kind: str, n: int) -> str:
    """The file of ``n`` stored events for ``kind`` (corral or eventsourcing), made once."""
    write = _write_corral if kind == "corral" else _write_eventsourcing
    return _SCRATCH.made_once(f"{kind}-events-{n}.db", lambda path: write(path, n))


def _view_file(kind: str) -> str:
    """A new, empty file for one run's read model (deleted after the run)."""
    return _SCRATCH.path(f"{kind}-view-{next(_views)}.db")


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def _shares(n: int) -> list[int]:
    """How many of the ``n`` events each stream gets (the first ones get one more)."""
    return [n // STREAMS + (1 if i < n % STREAMS else 0) for i in range(STREAMS)]


# -- corral ------------------------------------------------------------------------------


def _write_corral(path: str, n: int) -> None:
    from corral.backends.sqlite import SqliteEventStore
    from corral.eventsourcing import NewEvent

    async def write() -> None:
        async with await SqliteEventStore.open(path) as store:
            for i, count in enumerate(_shares(n)):
                if count:
                    events = [NewEvent("Deposited", PAYLOAD) for _ in range(count)]
                    await store.append(f"account-{i}", events)

    asyncio.run(write())


_UPSERT = (
    "INSERT INTO counters (stream, count) VALUES (?, 1) "
    "ON CONFLICT (stream) DO UPDATE SET count = count + 1"
)


def _corral_projection(batched: bool) -> Projection[SqliteTransaction]:
    """A projection counting each stream's events in the table ``counters``: a
    statement per event, or (``batched``) one ``executemany`` per batch."""
    from collections.abc import Sequence

    from corral.backends.sqlite import SqliteTransaction
    from corral.eventsourcing import Projection, RecordedEvent

    class Counters(Projection[SqliteTransaction]):
        """Counts each stream's events in the table ``counters``."""

        name = "counters"

        async def setup(self, tx: SqliteTransaction) -> None:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS counters "
                "(stream TEXT PRIMARY KEY NOT NULL, count INTEGER NOT NULL)"
            )

        async def apply(self, event: RecordedEvent, tx: SqliteTransaction) -> None:
            await tx.execute(_UPSERT, (event.stream,))

    class BatchedCounters(Counters):
        """Counts the same, one ``executemany`` per batch."""

        async def apply_batch(self, events: Sequence[RecordedEvent], tx: SqliteTransaction) -> None:
            await tx.executemany(_UPSERT, [(event.stream,) for event in events])

    return BatchedCounters() if batched else Counters()


def _corral_catch_up(n: int, batched: bool = False) -> float:
    """Seconds ``Projector.catch_up`` takes to apply ``n`` stored events to a new view."""
    from corral.backends.sqlite import SqliteEventStore, SqliteReadModel
    from corral.eventsourcing import Projector

    events, view = _events_file("corral", n), _view_file("corral")

    async def run() -> float:
        async with (
            await SqliteEventStore.open(events) as store,
            await SqliteReadModel.open(view) as read_model,
        ):
            projector = Projector(store, _corral_projection(batched), read_model)
            start = time.perf_counter()
            applied = await projector.catch_up()
            elapsed = time.perf_counter() - start
            counted = await read_model.fetchone("SELECT SUM(count) FROM counters")
        assert applied == n, f"applied {applied} events, expected {n}"
        assert counted == (n,), f"counted {counted}, expected {n}"
        return elapsed

    try:
        return asyncio.run(run())
    finally:
        _remove(view)


# -- eventsourcing -----------------------------------------------------------------------


def _write_eventsourcing(path: str, n: int) -> None:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
    from eventsourcing.utils import get_topic

    from benchmarks._projection_peer import Deposited

    topic = get_topic(Deposited)
    datastore = SQLiteDatastore(path)
    try:
        recorder = SQLiteApplicationRecorder(datastore)
        recorder.create_table()
        for count in _shares(n):
            if count:
                aggregate = uuid.uuid4()
                recorder.insert_events(
                    [StoredEvent(aggregate, v, topic, PAYLOAD) for v in range(1, count + 1)]
                )
    finally:
        datastore.close()


def _eventsourcing_catch_up(n: int) -> float:
    """Seconds from starting a ``ProjectionRunner`` until its view has tracked ``n`` events."""
    from eventsourcing.projection import ProjectionRunner
    from eventsourcing.utils import get_topic

    from benchmarks._projection_peer import Accounts, Counters, CountersView, SubscribableRecorder

    events, view_path = _events_file("eventsourcing", n), _view_file("eventsourcing")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "ACCOUNTS_SQLITE_DBNAME": events,
        "ACCOUNTS_APPLICATION_RECORDER_TOPIC": get_topic(SubscribableRecorder),
        "COUNTERS_SQLITE_DBNAME": view_path,
    }
    try:
        start = time.perf_counter()
        runner = ProjectionRunner(
            application_class=Accounts,
            projection_class=Counters,
            view_class=CountersView,
            env=env,
        )
        with runner:
            view = runner.view
            while not view.has_tracking_id(runner.app_name, n):
                if runner.is_interrupted.wait(POLL):
                    runner.run_forever()  # raises the processing thread's error
                    raise RuntimeError("the projection runner stopped before catching up")
            elapsed = time.perf_counter() - start
            total = view.total()
        assert total == n, f"counted {total}, expected {n}"
        return elapsed
    finally:
        _remove(view_path)


def _corral_catch_up_batched(n: int) -> float:
    """As :func:`_corral_catch_up`, the projection writing each batch with one call."""
    return _corral_catch_up(n, batched=True)


CORRAL = "corral Projector.catch_up"
CORRAL_BATCHED = "corral Projector.catch_up, apply_batch"
ES = "eventsourcing ProjectionRunner"

WORKLOAD = Workload(
    name="projection",
    title="A projection catching up over 5,000 events in a SQLite file",
    n=EVENTS,
    smoke_n=200,
    unit="events",
    baseline=ES,
    cases=(
        timed_case(CORRAL, _corral_catch_up),
        timed_case(CORRAL_BATCHED, _corral_catch_up_batched),
        timed_case(ES, _eventsourcing_catch_up),
    ),
    floors=(TimesFaster(CORRAL, ES, 2),),
)
