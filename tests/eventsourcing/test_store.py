"""The EventStore front every engine shares: readers, statistics, instrumentation."""

from __future__ import annotations

from typing import Any

import corral
from corral.backends.memory import MemoryEventStore
from corral.eventsourcing import ANY, NO_STREAM, STREAM_EXISTS, NewEvent


def event() -> NewEvent:
    return NewEvent("Happened", b"{}")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[object, str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        self.events.append((source, name, fields))


async def test_appends_are_reported_to_instruments() -> None:
    store = MemoryEventStore()
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        await store.append("a", [event(), event()])
        await store.append_many({"a": ([event()], 2), "b": ([event()], NO_STREAM)})
    finally:
        corral.INSTRUMENTS.remove(recorder)
    await store.append("a", [event()])  # nobody listens any more
    assert recorder.events == [
        (store, "appended", {"stream": "a", "version": 2}),
        (store, "appended_many", {"versions": {"a": 3, "b": 1}}),
    ]


async def test_a_reader_shows_its_progress_and_collects_the_rest() -> None:
    store = MemoryEventStore()
    await store.append("s", [event() for _ in range(3)])
    reader = store.read_stream("s", backwards=True)
    assert repr(reader) == "<EventReader stream 's' backward: 0 read, reading>"
    first = await anext(reader)
    rest = await reader.collect()
    assert [first.version, *(e.version for e in rest)] == [3, 2, 1]
    assert repr(reader) == "<EventReader stream 's' backward: 3 read, done>"
    assert await reader.collect() == []
    assert store.statistics().events_read == 3


async def test_statistics_and_repr_follow_the_store() -> None:
    store = MemoryEventStore()
    assert (
        repr(store)
        == "<MemoryEventStore 0 events in 0 streams, open, 0 appends, last position 0, 0 pending>"
    )
    await store.append("s", [event(), event()])
    await store.append("t", [event()])
    statistics = store.statistics()
    assert (statistics.engine, statistics.appends, statistics.events_appended) == ("memory", 2, 3)
    assert (statistics.last_position, statistics.transactions) == (3, 2)
    assert (
        repr(store)
        == "<MemoryEventStore 3 events in 2 streams, open, 2 appends, last position 3, 0 pending>"
    )
    await store.close()
    assert (
        repr(store)
        == "<MemoryEventStore 0 events in 0 streams, closed, 2 appends, last position 3, 0 pending>"
    )


def test_stream_states_show_their_names() -> None:
    assert [repr(state) for state in (ANY, NO_STREAM, STREAM_EXISTS)] == [
        "ANY",
        "NO_STREAM",
        "STREAM_EXISTS",
    ]
