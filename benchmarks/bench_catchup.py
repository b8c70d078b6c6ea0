"""Catching up on a SQLite file: a subscription over 1,000,000 stored events.

A read model that starts from scratch (or rebuilds) first reads the whole global log:
this workload times that catch-up. corral's case is a live subscription,
``store.subscribe()`` from position 0, iterated until it has delivered every stored
event (each one a ``RecordedEvent``, id as a ``uuid.UUID``); the peer is the
``eventsourcing`` library's SQLite recorder paging through the same number of events
with ``select_notifications`` (each one a ``Notification``), in pages of the same size
as corral's (500).

Each side reads its own file, written once per run before anything is timed and kept
under the run's temporary directory (deleted at exit): 1,000,000 events of 1,000
streams (20,000 for ``--smoke``), the same payload on both sides.

The floor is an absolute rate: corral's catch-up delivers at least 100,000 events/s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from benchmarks._harness import FloorResult, Workload, timed_case
from benchmarks._scratch import ScratchFiles

#: Events per append while writing the files, and per page for the peer's reads.
BATCH = 1000
PAGE = 500
PAYLOAD = b'{"amount": 1}'
#: Events of a full run; the floor's rate is judged at this size.
EVENTS = 1_000_000

_SCRATCH = ScratchFiles("catchup-bench-")
#: Events each case delivered in its last run, keyed by case name.
DELIVERED: dict[str, int] = {}


def _file(kind: str, n: int) -> str:
    """The file of ``n`` events for ``kind`` (corral or eventsourcing), made once per run."""
    write = _write_corral if kind == "corral" else _write_eventsourcing
    return _SCRATCH.made_once(f"{kind}-{n}.db", lambda path: write(path, n))


# -- corral ------------------------------------------------------------------------------


def _write_corral(path: str, n: int) -> None:
    from corral.backends.sqlite import SqliteEventStore
    from corral.eventsourcing import NewEvent

    async def write() -> None:
        async with await SqliteEventStore.open(path) as store:
            for first in range(0, n, BATCH):
                events = [NewEvent("Deposited", PAYLOAD) for _ in range(min(BATCH, n - first))]
                await store.append(f"account-{first // BATCH}", events)

    asyncio.run(write())


def _corral_catch_up(n: int) -> float:
    from corral.backends.sqlite import SqliteEventStore

    path = _file("corral", n)

    async def run() -> float:
        async with await SqliteEventStore.open(path) as store:
            delivered = last = 0
            start = time.perf_counter()
            async with store.subscribe() as subscription:
                async for event in subscription:
                    last = event.position
                    delivered += 1
                    if delivered == n:
                        break
            elapsed = time.perf_counter() - start
        assert last == n, f"caught up to position {last}, expected {n}"
        DELIVERED[CORRAL] = delivered
        return elapsed

    return asyncio.run(run())


# -- eventsourcing -----------------------------------------------------------------------


def _write_eventsourcing(path: str, n: int) -> None:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(path)
    try:
        recorder = SQLiteApplicationRecorder(datastore)
        recorder.create_table()
        for first in range(0, n, BATCH):
            aggregate = uuid.uuid4()
            count = min(BATCH, n - first)
            recorder.insert_events(
                [StoredEvent(aggregate, v, "Deposited", PAYLOAD) for v in range(1, count + 1)]
            )
    finally:
        datastore.close()


def _eventsourcing_catch_up(n: int) -> float:
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    path = _file("eventsourcing", n)
    datastore = SQLiteDatastore(path)
    try:
        recorder = SQLiteApplicationRecorder(datastore)
        delivered, position = 0, 1
        start = time.perf_counter()
        while delivered < n:
            page: Any = recorder.select_notifications(position, PAGE)
            if not page:
                break
            for _notification in page:
                delivered += 1
            position = page[-1].id + 1
        elapsed = time.perf_counter() - start
    finally:
        datastore.close()
    assert delivered == n, f"read {delivered} notifications, expected {n}"
    DELIVERED[ES] = delivered
    return elapsed


# -- the floor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateAtLeast:
    """``case`` delivered at least ``per_second`` events per second (at its best run)."""

    case: str
    per_second: float

    @property
    def other(self) -> str:
        return self.case

    @property
    def text(self) -> str:
        return f"{self.case} >= {self.per_second:,.0f} events/s"

    def judge(self, best: dict[str, float]) -> FloorResult:
        if self.case not in best or self.case not in DELIVERED:
            return FloorResult(self.text, None, f"not run: {self.case}")
        rate = DELIVERED[self.case] / best[self.case]
        return FloorResult(self.text, rate >= self.per_second, f"{rate:,.0f} events/s")


CORRAL = "corral subscribe, catch-up"
ES = "eventsourcing select_notifications"

WORKLOAD = Workload(
    name="catchup",
    title="Catch-up subscription over 1,000,000 events in a SQLite file",
    n=EVENTS,
    smoke_n=20_000,
    unit="events",
    baseline=ES,
    cases=(
        timed_case(CORRAL, _corral_catch_up),
        timed_case(ES, _eventsourcing_catch_up),
    ),
    floors=(RateAtLeast(CORRAL, 100_000),),
)
