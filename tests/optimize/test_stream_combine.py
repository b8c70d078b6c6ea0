"""Stream combining and concurrent stages on the virtual clock: buffer, merge, zip and
map with a limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stream_sources import at, stamped

import corral
from corral import Stream, StreamStatistics
from corral.errors import ArgumentTypeError, InvalidArgumentError
from corral.testing import VirtualClock, run, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")


async def test_buffer_reads_ahead_while_the_consumer_is_busy(virtual_clock: VirtualClock) -> None:
    pulled: list[int] = []

    async def source() -> AsyncIterator[int]:
        for i in range(10):
            pulled.append(i)
            yield i

    async with Stream(source()).buffer(3).iterate() as items:
        assert await anext(items) == 0
        await wait_all_tasks_blocked()
        # 0 taken, 1-3 buffered, 4 pulled and waiting for room
        assert pulled == [0, 1, 2, 3, 4]
        assert items.statistics() == StreamStatistics(emitted=1, tasks=1, closed=False)
        assert repr(items) == "<StreamIterator source() | buffer(3): 1 emitted, 1 task running>"
    assert items.statistics() == StreamStatistics(emitted=1, tasks=0, closed=True)


async def test_buffer_overlaps_a_slow_producer_with_a_slow_consumer(
    virtual_clock: VirtualClock,
) -> None:
    async def produce() -> AsyncIterator[int]:
        for i in range(4):
            await asyncio.sleep(1)
            yield i

    async def consume(stream: Stream[int]) -> float:
        async for _ in stream:
            await asyncio.sleep(1)
        return virtual_clock.time()

    assert await consume(Stream(produce())) == 8
    assert await consume(Stream(produce()).buffer(1)) - 8 == 5


async def test_merge_interleaves_by_arrival_and_ends_with_the_last_input() -> None:
    merged = Stream(at(0, 2, 4)).merge(at(1, 3), Stream(at(0.5)).map(lambda t: t * 10))
    assert await stamped(merged) == [(0, 0), (0.5, 5), (1, 1), (2, 2), (3, 3), (4, 4)]


@given(inputs=st.lists(st.lists(st.integers(0, 20), max_size=6), min_size=1, max_size=4))
def test_merge_keeps_every_item_and_the_order_within_each_input(
    inputs: list[list[int]],
) -> None:
    # Each input yields (input, position) after the given pauses: any interleaving, but
    # each input's own items come in order, and none is lost or repeated.
    async def paced(index: int, pauses: list[int]) -> AsyncIterator[tuple[int, int]]:
        for position, pause in enumerate(pauses):
            await asyncio.sleep(pause / 10)
            yield index, position

    async def main() -> list[tuple[int, int]]:
        first, *others = [paced(i, pauses) for i, pauses in enumerate(inputs)]
        return await Stream(first).merge(*others).list()

    merged = run(main)
    assert sorted(merged) == [(i, p) for i, pauses in enumerate(inputs) for p in range(len(pauses))]
    for index in range(len(inputs)):
        assert [p for i, p in merged if i == index] == list(range(len(inputs[index])))


async def test_merge_raises_the_first_error_and_closes_the_other_inputs() -> None:
    closed: list[str] = []

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                await asyncio.sleep(1)
                yield 0
        finally:
            closed.append("endless")

    async def failing() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(2.5)
        raise LookupError("input 2 broke")

    with pytest.raises(LookupError, match="input 2 broke"):
        await Stream(endless()).merge(failing()).list()
    assert closed == ["endless"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_map_with_a_limit_runs_calls_concurrently_in_input_order(
    virtual_clock: VirtualClock,
) -> None:
    running = most = 0

    async def work(seconds: float) -> float:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(seconds)
        running -= 1
        return seconds

    delays = [3, 1, 2, 1, 1]
    assert await stamped(Stream(delays).map(work, limit=2)) == [
        (3, 3),  # 1 (done at 1) and 2 (done at 3) wait for the first
        (3, 1),
        (3, 2),
        (4, 1),
        (4, 1),
    ]
    assert most == 2
    unordered = await stamped(Stream(delays).map(work, limit=2, ordered=False))
    # from t=4: 1 is done at 5, then 2 starts; 3 and 2 are done at 7; then the last two
    assert unordered == [(5, 1), (7, 3), (7, 2), (8, 1), (8, 1)]


@given(
    delays=st.lists(st.integers(0, 5), max_size=12),
    limit=st.integers(2, 4),
    ordered=st.booleans(),
)
def test_map_with_a_limit_keeps_every_result_and_the_order_when_asked(
    delays: list[int], limit: int, ordered: bool
) -> None:
    async def work(item: tuple[int, int]) -> int:
        await asyncio.sleep(item[1])
        return item[0]

    async def main() -> list[int]:
        stream = Stream(enumerate(delays)).map(work, limit=limit, ordered=ordered)
        return await stream.list()

    results = run(main)
    if ordered:
        assert results == list(range(len(delays)))
    else:
        assert sorted(results) == list(range(len(delays)))


async def test_map_with_a_limit_takes_a_function_returning_an_awaitable() -> None:
    async def triple(x: int) -> int:
        return 3 * x

    assert await Stream(range(4)).map(lambda x: triple(x), limit=3).list() == [0, 3, 6, 9]
    repr_ = repr(Stream([]).map(triple, limit=3).map(triple, limit=2, ordered=False))
    assert repr_ == "<Stream list | map(limit=3) | map(limit=2, unordered)>"


async def test_map_with_a_limit_refuses_a_function_returning_no_awaitable() -> None:
    with pytest.raises(ArgumentTypeError, match="needs an async function"):
        await Stream(range(4)).map(str, limit=2).list()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_map_with_a_limit_reports_its_workers_as_tasks() -> None:
    async def forever(x: int) -> int:
        await asyncio.sleep(3600)
        return x

    async with Stream(range(10)).map(forever, limit=3).iterate() as items:
        pending = asyncio.ensure_future(anext(items))
        await wait_all_tasks_blocked()
        assert items.statistics().tasks == 3
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    assert items.statistics().tasks == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"limit": 0}, InvalidArgumentError, "limit must be at least 1, got 0"),
        ({"limit": 2.0}, ArgumentTypeError, "limit must be an int, not float"),
        ({"ordered": "yes"}, ArgumentTypeError, "ordered must be True or False, not str"),
    ],
)
def test_map_refuses_a_bad_limit_or_order(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Stream([1]).map(str, **kwargs)


async def test_background_tasks_are_reported_to_instruments() -> None:
    class Tasks:
        def __init__(self) -> None:
            self.spawned: list[str] = []
            self.done: list[str] = []

        def task_spawned(self, task: asyncio.Task[Any], parent: object) -> None:
            self.spawned.append(task.get_name())

        def task_done(self, task: asyncio.Task[Any]) -> None:
            self.done.append(task.get_name())

    tasks = Tasks()
    corral.INSTRUMENTS.add(tasks)
    try:
        assert sorted(await Stream(range(3)).buffer(2).merge([3]).list()) == [0, 1, 2, 3]
        await asyncio.sleep(0)  # done callbacks run at the next loop step
    finally:
        corral.INSTRUMENTS.remove(tasks)
    names = ["Stream buffer(2)", "Stream merge(1)", "Stream merge(1)"]
    assert sorted(tasks.spawned) == names  # an eager task factory changes the order
    assert sorted(tasks.done) == names
