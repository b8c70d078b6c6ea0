"""Projector: batches, categories, live following, rebuilds, read-your-writes, bad input.

On the memory engines (and virtual time wherever something waits); the engines' own
behaviour is pinned by the read-model contract in tests/backends.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.backends.memory import MemoryEventStore, MemoryReadModel, MemoryTransaction
from corral.backends.sqlite import SqliteEventStore
from corral.errors import (
    ArgumentTypeError,
    ClosedResourceError,
    InvalidArgumentError,
    ProjectionError,
)
from corral.eventsourcing import (
    NewEvent,
    Projection,
    Projector,
    ProjectorStatistics,
    RecordedEvent,
)
from corral.testing import VirtualClock


def added(amount: int) -> NewEvent:
    return NewEvent("Added", json.dumps({"amount": amount}).encode())


class Totals(Projection[MemoryTransaction]):
    """Sums the amounts of each order stream; can be told to fail or to hang."""

    name = "totals"
    categories = ("order",)

    def __init__(self) -> None:
        self.fail_at: int | None = None
        self.hang_at: int | None = None
        self.hanging = asyncio.Event()
        self.applied: list[int] = []

    async def reset(self, tx: MemoryTransaction) -> None:
        tx.clear("totals")

    async def apply(self, event: RecordedEvent, tx: MemoryTransaction) -> None:
        if event.position == self.fail_at:
            raise ValueError("bad amount")
        if event.position == self.hang_at:
            self.hanging.set()
            await asyncio.Event().wait()
        amount = json.loads(event.data)["amount"]
        tx.put("totals", event.stream, tx.get("totals", event.stream, 0) + amount)
        self.applied.append(event.position)


def totals(read_model: MemoryReadModel) -> dict[Any, Any]:
    return dict(read_model.rows("totals"))


async def test_categories_filter_and_the_checkpoint_passes_skipped_events() -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    await store.append("order-1", [added(5), added(7)])
    await store.append("customer-1", [added(100)])
    await store.append("order", [added(1)])  # the category's own stream
    await store.append("orders-1", [added(1000)])  # another category
    projection = Totals()
    projector = Projector(store, projection, read_model)
    assert await projector.catch_up() == 3
    assert totals(read_model) == {"order-1": 12, "order": 1}
    assert projector.position == await read_model.checkpoint("totals") == 5
    statistics = projector.statistics()
    assert isinstance(statistics, ProjectorStatistics)
    assert (statistics.events_applied, statistics.events_skipped, statistics.batches) == (3, 2, 1)
    assert repr(projector) == (
        "<Projector 'totals' at position 5, 3 applied in 1 batches, idle, 0 waiting>"
    )


async def test_no_categories_means_every_stream_but_system_streams() -> None:
    class Everything(Projection[MemoryTransaction]):
        name = "everything"

        async def apply(self, event: RecordedEvent, tx: MemoryTransaction) -> None:
            tx.put("seen", event.position, event.stream)

    store, read_model = MemoryEventStore(), MemoryReadModel()
    await store.append("a", [added(1)])
    await store.append("$checkpoint-x", [added(1)])
    await store.append("b-1", [added(1)])
    projector = Projector(store, Everything(), read_model)
    assert await projector.catch_up() == 2
    assert dict(read_model.rows("seen")) == {1: "a", 3: "b-1"}
    assert projector.position == 3


async def test_an_empty_store_applies_nothing() -> None:
    projector = Projector(MemoryEventStore(), Totals(), MemoryReadModel())
    calls: list[Any] = []
    assert await projector.catch_up(lambda *args: calls.append(args)) == 0
    assert calls == []
    assert projector.position == 0


async def test_run_follows_appends_and_wait_for_position_reads_your_writes(
    virtual_clock: VirtualClock,
) -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    projector = Projector(store, Totals(), read_model)
    async with asyncio.TaskGroup() as group:
        running = group.create_task(projector.run())
        for amount in (3, 4):
            result = await store.append("order-9", [added(amount)])
            await projector.wait_for_position(result.positions[-1])
        assert totals(read_model) == {"order-9": 7}
        # Appends through the same store object wake it at once: no poll was waited for.
        assert asyncio.get_running_loop().time() == 0
        assert projector.statistics().running == 1
        assert "running" in repr(projector)
        running.cancel()
    assert projector.statistics().running == 0
    # A position reached already returns at once, without a running projector.
    await projector.wait_for_position(1, timeout=0)


async def test_run_sees_appends_made_through_another_store_object(
    virtual_clock: VirtualClock, tmp_path: Path
) -> None:
    path = tmp_path / "events.db"
    async with await SqliteEventStore.open(path) as store:
        async with await SqliteEventStore.open(path) as other:
            read_model = MemoryReadModel()
            projector = Projector(store, Totals(), read_model, poll_interval=timedelta(seconds=3))
            loop = asyncio.get_running_loop()
            async with asyncio.TaskGroup() as group:
                running = group.create_task(projector.run())
                await projector.wait_for_position(0)
                await asyncio.sleep(1)  # the projector now waits for a wake-up
                start = loop.time()
                result = await other.append("order-2", [added(2)])
                await projector.wait_for_position(result.positions[-1], timeout=10)
                # No wake-up from this store object: the file watcher or, at the
                # latest, the next poll (due 3 s after the last) sees it.
                assert loop.time() - start <= 3
                running.cancel()
            assert totals(read_model) == {"order-2": 2}


async def test_wait_for_position_times_out_and_leaves_nothing_behind(
    virtual_clock: VirtualClock,
) -> None:
    store = MemoryEventStore()
    await store.append("order-1", [added(1)])
    projector = Projector(store, Totals(), MemoryReadModel())
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError, match=r"did not reach position 1 within 2\.5 seconds"):
        await projector.wait_for_position(1, timeout=2.5)
    assert loop.time() == 2.5
    assert projector.statistics().waiting == 0
    waiting = asyncio.ensure_future(projector.wait_for_position(1))
    await asyncio.sleep(1)
    assert projector.statistics().waiting == 1
    assert "1 waiting" in repr(projector)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert projector.statistics().waiting == 0
    # Waiters are woken by a catch-up too, and only those whose position is reached.
    early = asyncio.ensure_future(projector.wait_for_position(1))
    late = asyncio.ensure_future(projector.wait_for_position(2))
    await asyncio.sleep(0)
    await projector.catch_up()
    await early
    assert not late.done()
    assert projector.statistics().waiting == 1
    late.cancel()
    await asyncio.gather(late, return_exceptions=True)


async def test_a_failing_apply_stops_run_and_names_the_event() -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    await store.append("order-1", [added(1)])
    await store.append("order-2", [added(2), added(3)])
    projection = Totals()
    projection.fail_at = 3
    projector = Projector(store, projection, read_model)
    with pytest.raises(ProjectionError) as caught:
        await projector.run()
    error = caught.value
    assert (error.projection, error.stream, error.position, error.event_type) == (
        "totals",
        "order-2",
        3,
        "Added",
    )
    assert isinstance(error.__cause__, ValueError)
    assert totals(read_model) == {}
    assert projector.position == 0
    assert projector.statistics().failed_batches == 1
    projection.fail_at = None
    assert await projector.catch_up() == 3
    assert totals(read_model) == {"order-1": 1, "order-2": 5}


class BatchTotals(Totals):
    """Totals that applies each batch in one call, recording the positions of each."""

    name = "batch-totals"

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[int]] = []

    async def apply_batch(self, events: Sequence[RecordedEvent], tx: MemoryTransaction) -> None:
        self.batches.append([event.position for event in events])
        if any(event.position == self.fail_at for event in events):
            raise ValueError("bad amount")
        for event in events:
            amount = json.loads(event.data)["amount"]
            tx.put("totals", event.stream, tx.get("totals", event.stream, 0) + amount)


async def test_apply_batch_gets_each_batch_of_its_categories_in_one_call() -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    await store.append("order-1", [added(1), added(2)])  # positions 1, 2
    await store.append("customer-1", [added(100)])  # 3: not for this projection
    await store.append("order-2", [added(3)])  # 4
    await store.append("customer-2", [added(100), added(100)])  # 5, 6: a batch of none
    await store.append("order-1", [added(4)])  # 7
    projection = BatchTotals()
    projector = Projector(store, projection, read_model, batch_size=2)
    assert await projector.catch_up() == 4
    assert projection.batches == [[1, 2], [4], [7]]  # pages (1, 2) (3, 4) (5, 6) (7)
    assert projection.applied == []  # apply itself was never called
    assert totals(read_model) == {"order-1": 7, "order-2": 3}
    assert projector.position == 7
    stats = projector.statistics()
    assert (stats.events_applied, stats.events_skipped, stats.batches) == (4, 3, 4)


async def test_a_failing_apply_batch_names_the_batch_and_rolls_it_back() -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    await store.append("order-1", [added(1), added(2), added(3)])
    await store.append("order-2", [added(4)])
    projection = BatchTotals()
    projection.fail_at = 4
    projector = Projector(store, projection, read_model, batch_size=3)
    with pytest.raises(ProjectionError) as caught:
        await projector.catch_up()
    error = caught.value
    assert (error.stream, error.position, error.events) == ("order-2", 4, 1)
    assert totals(read_model) == {"order-1": 6}  # the first batch committed
    failing = BatchTotals()
    failing.fail_at = 2
    again = Projector(store, failing, MemoryReadModel(), batch_size=3)
    with pytest.raises(ProjectionError, match="a batch of 3 events from position 1") as caught:
        await again.catch_up()
    error = caught.value
    assert (error.projection, error.stream, error.position, error.event_type, error.events) == (
        "batch-totals",
        "order-1",
        1,
        "Added",
        3,
    )
    assert isinstance(error.__cause__, ValueError)
    assert pickle.loads(pickle.dumps(error)).events == 3
    assert again.position == 0


async def test_a_cancelled_batch_is_rolled_back_and_applied_later(
    virtual_clock: VirtualClock,
) -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    await store.append("order-1", [added(1), added(2), added(3)])
    projection = Totals()
    projection.hang_at = 5
    await store.append("order-1", [added(4), added(5), added(6)])
    projector = Projector(store, projection, read_model, batch_size=3)
    catching_up = asyncio.ensure_future(projector.catch_up())
    await projection.hanging.wait()
    catching_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await catching_up
    assert totals(read_model) == {"order-1": 6}
    assert projector.position == 3
    assert read_model.statistics().rollbacks == 1
    projection.hang_at = None
    assert await projector.catch_up() == 3
    assert totals(read_model) == {"order-1": 21}
    assert projection.applied == [1, 2, 3, 4, 4, 5, 6]  # 4 ran twice, took effect once


async def test_rebuild_while_running(virtual_clock: VirtualClock) -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    projection = Totals()
    projector = Projector(store, projection, read_model, batch_size=2)
    async with asyncio.TaskGroup() as group:
        running = group.create_task(projector.run())
        last = 0
        for amount in range(1, 8):
            last = (await store.append(f"order-{amount % 2}", [added(amount)])).positions[-1]
        await projector.wait_for_position(last)
        before = totals(read_model)
        assert await projector.rebuild() == 7
        await store.append("order-1", [added(100)])
        await projector.wait_for_position(last + 1)
        running.cancel()
    assert before == {"order-0": 12, "order-1": 16}
    assert totals(read_model) == {"order-0": 12, "order-1": 116}
    assert projector.statistics().rebuilds == 1


async def test_a_closed_store_or_read_model_stops_the_projector() -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    await store.append("order-1", [added(1)])
    projector = Projector(store, Totals(), read_model)
    await read_model.close()
    with pytest.raises(ClosedResourceError):
        await projector.catch_up()
    projector = Projector(store, Totals(), MemoryReadModel())
    await store.close()
    with pytest.raises(ClosedResourceError):
        await projector.run()


async def test_bad_input() -> None:
    store, read_model = MemoryEventStore(), MemoryReadModel()
    with pytest.raises(ArgumentTypeError, match="store must be an EventStore"):
        Projector(object(), Totals(), read_model)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="projection must be a Projection"):
        Projector(store, object(), read_model)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="read_model must be a ReadModel"):
        Projector(store, Totals(), {})  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="batch_size must be an int"):
        Projector(store, Totals(), read_model, batch_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="batch_size must be at least 1, got 0"):
        Projector(store, Totals(), read_model, batch_size=0)
    with pytest.raises(InvalidArgumentError, match="poll_interval must be more than 0"):
        Projector(store, Totals(), read_model, poll_interval=0)

    class Nameless(Totals):
        name = ""

    class Untyped(Totals):
        name = 7  # type: ignore[assignment]

    class Dashed(Totals):
        categories = ("order-1",)

    class Listed(Totals):
        categories = ["order"]  # type: ignore[assignment]  # noqa: RUF012

    with pytest.raises(InvalidArgumentError, match=r"Nameless\.name must not be empty"):
        Projector(store, Nameless(), read_model)
    with pytest.raises(ArgumentTypeError, match=r"Untyped\.name must be a str"):
        Projector(store, Untyped(), read_model)
    with pytest.raises(InvalidArgumentError, match="holds no '-', got 'order-1'"):
        Projector(store, Dashed(), read_model)
    with pytest.raises(ArgumentTypeError, match="categories must be a tuple of str"):
        Projector(store, Listed(), read_model)

    projector = Projector(store, Totals(), read_model)
    with pytest.raises(ArgumentTypeError, match="progress must be a callable"):
        await projector.catch_up(progress=5)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="progress must be a callable"):
        await projector.rebuild(progress="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="position must be at least 0"):
        await projector.wait_for_position(-1)
    with pytest.raises(ArgumentTypeError, match="position must be an int"):
        await projector.wait_for_position("3")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="timeout must not be negative"):
        await projector.wait_for_position(3, timeout=-1)
    assert read_model.statistics().commits == 0  # nothing was written by bad calls


# -- exactly once, whatever the batches, failures and rebuilds ---------------------------

_steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 3), st.integers(1, 4)),
        st.tuples(st.just("catch_up"), st.just(0), st.just(0)),
        st.tuples(st.just("fail"), st.integers(0, 3), st.integers(1, 4)),
        st.tuples(st.just("rebuild"), st.just(0), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps, batch_size=st.integers(1, 5))
def test_every_event_takes_effect_exactly_once(
    steps: list[tuple[str, int, int]], batch_size: int
) -> None:
    async def scenario() -> None:
        store, read_model = MemoryEventStore(), MemoryReadModel()
        projection = Totals()
        projector = Projector(store, projection, read_model, batch_size=batch_size)
        amount = 0
        for kind, stream, count in steps:
            if kind == "append":
                events = []
                for _ in range(count):
                    amount += 1
                    events.append(added(amount))
                name = "order-x" if stream == 0 else f"order-{stream}"
                await store.append(name if stream != 3 else "other-1", events)
            elif kind == "fail":
                head = await store.head_position()
                projection.fail_at = head - count + 1 if head >= count else None
                try:
                    await projector.catch_up()
                except ProjectionError as error:
                    assert error.position == projection.fail_at
                projection.fail_at = None
            elif kind == "rebuild":
                await projector.rebuild()
            else:
                await projector.catch_up()
        await projector.catch_up()
        expected: dict[str, int] = {}
        for event in await store.read_all().collect():
            if event.stream.startswith("order"):
                value = json.loads(event.data)["amount"]
                expected[event.stream] = expected.get(event.stream, 0) + value
        assert totals(read_model) == expected
        assert projector.position == await store.head_position()
        assert await read_model.checkpoint("totals") == projector.position

    asyncio.run(scenario())
