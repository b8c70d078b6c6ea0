"""Stream lifetime: sources closed deterministically, in the iterating task; background
tasks bounded by the consumer; no warnings (``filterwarnings = error`` is on)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import corral
from corral import Stream
from corral.testing import VirtualClock, wait_all_tasks_blocked


class Source:
    """An async generator source that records where and when its ``finally`` ran."""

    def __init__(self, count: int = 1_000, *, cleanup_awaits: bool = False) -> None:
        self.count = count
        self.cleanup_awaits = cleanup_awaits
        self.sent = 0
        self.closed_in: asyncio.Task[Any] | None = None
        self.closed_at = -1.0
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        try:
            for i in range(self.count):
                await asyncio.sleep(0)
                self.sent += 1
                yield i
        finally:
            if self.cleanup_awaits:
                await asyncio.sleep(0.5)
            self.closed_in = asyncio.current_task()
            self.closed_at = asyncio.get_running_loop().time()
            self.closed = True


async def pause(item: int) -> int:
    await asyncio.sleep(1)
    return item


def only_this_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


# Streams that read their source in a background task, and ones that do not.
STAGED: list[tuple[str, Callable[[Stream[int]], Stream[Any]]]] = [
    ("map", lambda s: s.map(lambda x: x + 1)),
    ("filter+enumerate", lambda s: s.filter(lambda x: True).enumerate()),
    ("flat_map", lambda s: s.flat_map(lambda x: [x])),
    ("zip", lambda s: s.zip(Stream(range(10**6)))),
    ("chunk", lambda s: s.chunk(1)),
]
TASKED: list[tuple[str, Callable[[Stream[int]], Stream[Any]]]] = [
    ("buffer", lambda s: s.buffer(3)),
    ("merge", lambda s: s.merge(Source().items())),
    ("chunk timeout", lambda s: s.chunk(1, timeout=5)),
    ("debounce", lambda s: s.map(pause).debounce(0.5)),
    ("nested", lambda s: s.buffer(2).map(lambda x: x).buffer(2)),
    ("map limit", lambda s: s.map(pause, limit=3)),
    ("map limit unordered", lambda s: s.map(pause, limit=2, ordered=False).buffer(1)),
]
EVERY = STAGED + TASKED


@pytest.mark.parametrize(("name", "build"), STAGED, ids=[n for n, _ in STAGED])
async def test_break_closes_the_source_right_away_in_the_iterating_task(
    name: str, build: Callable[[Stream[int]], Stream[Any]]
) -> None:
    source = Source()
    async for _ in build(Stream(source.items())):
        if source.sent == 3:
            break
    assert source.closed  # before the next statement: no loop turn needed
    assert source.closed_in is asyncio.current_task()


@pytest.mark.parametrize(("name", "build"), TASKED, ids=[n for n, _ in TASKED])
async def test_break_cancels_background_tasks_which_close_their_source(
    name: str, build: Callable[[Stream[int]], Stream[Any]], virtual_clock: VirtualClock
) -> None:
    source = Source()
    async for _ in build(Stream(source.items())):
        break
    await wait_all_tasks_blocked()
    assert source.closed
    assert source.closed_in is not asyncio.current_task()  # the feeder task read it
    assert only_this_task_left()


@pytest.mark.parametrize(("name", "build"), EVERY, ids=[n for n, _ in EVERY])
async def test_async_with_closes_everything_before_leaving(
    name: str, build: Callable[[Stream[int]], Stream[Any]], virtual_clock: VirtualClock
) -> None:
    source = Source(cleanup_awaits=True)
    async with build(Stream(source.items())).iterate() as items:
        await anext(items)
        await anext(items)
        leaving = virtual_clock.time()
    assert source.closed_at == leaving + 0.5  # the cleanup's own wait ran to the end
    assert only_this_task_left()


@pytest.mark.parametrize(("name", "build"), EVERY, ids=[n for n, _ in EVERY])
async def test_an_error_downstream_closes_the_chain_before_it_reaches_the_consumer(
    name: str, build: Callable[[Stream[int]], Stream[Any]], virtual_clock: VirtualClock
) -> None:
    source = Source()

    def explode(item: object) -> object:
        raise KeyError(item)

    with pytest.raises(KeyError):
        async for _ in build(Stream(source.items())).map(explode):
            pass
    assert source.closed
    assert only_this_task_left()


@pytest.mark.parametrize(("name", "build"), EVERY, ids=[n for n, _ in EVERY])
async def test_an_error_in_the_source_reaches_the_consumer_as_it_is(
    name: str, build: Callable[[Stream[int]], Stream[Any]], virtual_clock: VirtualClock
) -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(0.01)
        raise ValueError("source broke")

    with pytest.raises(ValueError, match="source broke"):
        async for _ in build(Stream(failing())):
            pass
    assert only_this_task_left()


@pytest.mark.parametrize(("name", "build"), EVERY, ids=[n for n, _ in EVERY])
async def test_cancelling_the_consumer_cancels_every_stage_above_it(
    name: str, build: Callable[[Stream[int]], Stream[Any]], virtual_clock: VirtualClock
) -> None:
    source = Source()
    stuck = asyncio.Event()

    async def slow(x: int) -> int:
        stuck.set()
        await asyncio.sleep(3600)
        return x

    async def consume() -> None:
        async for _ in build(Stream(source.items()).map(slow)):
            pass

    consumer = asyncio.create_task(consume())
    await stuck.wait()
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert source.closed
    assert virtual_clock.time() == 0
    assert only_this_task_left()


@pytest.mark.parametrize(("name", "build"), EVERY, ids=[n for n, _ in EVERY])
async def test_a_cancel_scope_deadline_stops_the_stream_and_closes_it(
    name: str, build: Callable[[Stream[int]], Stream[Any]], virtual_clock: VirtualClock
) -> None:
    async def ticks() -> AsyncIterator[int]:
        try:
            for i in range(100):
                await asyncio.sleep(1)
                yield i
        finally:
            closed.append(asyncio.get_running_loop().time())

    closed: list[float] = []
    seen = 0
    with corral.move_on_after(2.5) as scope:
        async for _ in build(Stream(ticks())):
            seen += 1
    assert scope.cancelled_caught
    assert closed == [2.5]
    assert only_this_task_left()


@pytest.mark.parametrize(("name", "build"), EVERY, ids=[n for n, _ in EVERY])
async def test_take_closes_the_source_as_soon_as_it_has_enough(
    name: str, build: Callable[[Stream[int]], Stream[Any]], virtual_clock: VirtualClock
) -> None:
    source = Source()
    async with build(Stream(source.items())).take(2).iterate() as items:
        await anext(items)
        await anext(items)
        await wait_all_tasks_blocked()
        assert source.closed
        assert only_this_task_left()


async def test_take_on_a_plain_stream_closes_before_handing_out_the_last_item() -> None:
    source = Source()
    async for _ in Stream(source.items()).take(3):
        closed_when_taken = source.closed
    assert closed_when_taken
    assert source.closed_in is asyncio.current_task()
    assert source.sent == 3


async def test_a_dropped_iterator_whose_cleanup_awaits_finishes_closing_in_a_task(
    virtual_clock: VirtualClock,
) -> None:
    source = Source(cleanup_awaits=True)
    async for _ in Stream(source.items()).map(str):
        break
    assert not source.closed  # its finally waits for 0.5 s...
    await asyncio.sleep(1)
    assert source.closed_at == 0.5  # ...then finishes in a task of its own
    assert only_this_task_left()


async def test_a_failing_cleanup_of_a_dropped_iterator_goes_to_the_exception_handler(
    virtual_clock: VirtualClock,
) -> None:
    async def broken(awaits: bool) -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            if awaits:
                await asyncio.sleep(0.5)
            raise OSError("cleanup failed")

    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        for awaits in (False, True):
            async for _ in Stream(broken(awaits)).map(str):
                break
            await asyncio.sleep(1)
    finally:
        loop.set_exception_handler(None)
    assert [type(context["exception"]) for context in reported] == [OSError, OSError]
    assert "closing" in reported[0]["message"]


async def test_a_flat_map_inner_iterable_is_closed_with_the_stream() -> None:
    inner = Source()
    async for _ in Stream([1, 2]).flat_map(lambda _: inner.items()):
        break
    assert inner.closed
    assert inner.closed_in is asyncio.current_task()


async def test_zip_closes_every_input_when_the_shortest_ends() -> None:
    left, right = Source(), Source(count=2)
    assert await Stream(left.items()).zip(right.items()).list() == [(0, 0), (1, 1)]
    assert left.closed
    assert right.closed


async def test_a_fused_stream_closes_a_sync_generator_source_on_break_and_error() -> None:
    closed: list[str] = []

    def numbers(tag: str) -> Any:
        try:
            yield from range(100)
        finally:
            closed.append(tag)

    async for _ in Stream(numbers("break")).map(str):
        break
    with pytest.raises(ZeroDivisionError):
        await Stream(numbers("error")).map(lambda x: 1 / (x - 3)).list()
    assert await Stream(numbers("take")).take(2).list() == [0, 1]
    # a fused stream with a staged tail closes the generator too
    async with Stream(numbers("staged")).buffer(1).iterate() as items:
        await anext(items)
    assert closed == ["break", "error", "take", "staged"]


async def test_closing_an_unread_iteration_starts_nothing() -> None:
    source = Source()
    items = Stream(source.items()).buffer(2).merge(Source().items()).iterate()
    await items.aclose()
    assert source.sent == 0
    assert only_this_task_left()


async def test_a_dropped_iterator_finishes_a_cleanup_that_waits_on_any_loop() -> None:
    release = asyncio.Event()
    steps: list[str] = []

    async def source() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            steps.append("cleanup started")
            await asyncio.sleep(0)
            await release.wait()
            steps.append("cleanup done")

    async for _ in Stream(source()).map(str):
        break
    assert steps == ["cleanup started"]  # it ran in this task up to its first wait
    release.set()
    for _ in range(5):  # the closing task wakes, finishes; its done callback runs
        await asyncio.sleep(0)
    assert steps == ["cleanup started", "cleanup done"]
    assert only_this_task_left()


def test_an_iterator_dropped_after_its_loop_was_closed_is_quiet() -> None:
    async def start() -> Any:
        items = Stream(range(10)).buffer(2).iterate()
        assert await anext(items) == 0
        return items

    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _, context: None)  # "Task was destroyed but..."
    kept = loop.run_until_complete(start())
    loop.close()  # closed under a running feeder, which can no longer be cancelled
    assert kept.statistics().tasks == 1
    del kept  # no "Exception ignored" (filterwarnings = error would report it)
