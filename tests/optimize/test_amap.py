"""amap and map_all: order, limits, laziness, errors, outcomes, pacing, timeouts, lifetime."""

from __future__ import annotations

import asyncio
import inspect
import math
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Set
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
import corral.testing
from corral import AsyncMap, AsyncMapStatistics, Fulfilled, Rejected
from corral.errors import (
    ArgumentTypeError,
    ClosedResourceError,
    DeadlineExceeded,
    InvalidArgumentError,
    UsageError,
)
from corral.optimize._amap_run import MapRun
from corral.testing import wait_all_tasks_blocked

# Tests that wait run on the virtual-clock loop; the rest on every real loop too.
virtual_time = pytest.mark.usefixtures("virtual_clock")


def now() -> float:
    return asyncio.get_running_loop().time()


def workers() -> list[asyncio.Task[Any]]:
    """The amap worker tasks of this loop that have not finished."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "corral.amap worker" and not task.done()
    ]


class Probe:
    """An async function that sleeps ``delay`` per item and records what happens."""

    def __init__(
        self, delays: Mapping[int, float] | None = None, fail: Set[int] = frozenset()
    ) -> None:
        self.delays = delays or {}
        self.fail = fail
        self.running = 0
        self.peak = 0
        self.started: list[tuple[int, float]] = []
        self.cancelled: list[int] = []

    async def __call__(self, item: int) -> int:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.started.append((item, round(now(), 9)))
        try:
            await asyncio.sleep(self.delays.get(item, 0))
            if item in self.fail:
                raise ValueError(f"item {item} failed")
            return item * 10
        except asyncio.CancelledError:
            self.cancelled.append(item)
            raise
        finally:
            self.running -= 1


# -- results and order --------------------------------------------------------------------


@virtual_time
async def test_results_come_as_they_complete() -> None:
    probe = Probe({0: 3, 1: 1, 2: 2})
    assert [r async for r in corral.amap(probe, range(3), limit=3)] == [10, 20, 0]
    assert now() == 3


@virtual_time
async def test_ordered_results_come_in_input_order() -> None:
    probe = Probe({0: 3, 1: 1, 2: 2})
    arrivals = []
    async for result in corral.amap(probe, range(3), limit=3, ordered=True):
        arrivals.append((result, now()))
    assert arrivals == [(0, 3), (10, 3), (20, 3)]


async def orderly_run(delays: list[float], limit: int, ordered: bool) -> None:
    probe = Probe(dict(enumerate(delays)))
    results = [
        r async for r in corral.amap(probe, range(len(delays)), limit=limit, ordered=ordered)
    ]
    expected = [i * 10 for i in range(len(delays))]
    assert results == expected if ordered else sorted(results) == expected
    assert probe.peak == min(limit, len(delays))
    assert workers() == []


@settings(max_examples=60)
@given(
    delays=st.lists(st.sampled_from([0, 0.5, 1, 2.5, 7]), max_size=25),
    limit=st.integers(1, 6),
    ordered=st.booleans(),
    eager=st.booleans() if sys.version_info >= (3, 12) else st.just(False),
)
def test_order_and_limit_hold_for_any_delays(
    delays: list[float], limit: int, ordered: bool, eager: bool
) -> None:
    corral.testing.run(orderly_run, delays, limit, ordered, eager=eager)


@virtual_time
async def test_concurrency_never_exceeds_the_limit() -> None:
    probe = Probe({i: 1 + i % 3 for i in range(40)})
    results = await corral.map_all(probe, range(40), limit=4)
    assert results == [i * 10 for i in range(40)]
    assert probe.peak == 4


async def test_an_empty_source_yields_nothing() -> None:
    probe = Probe()
    assert [r async for r in corral.amap(probe, [], limit=2)] == []
    assert await corral.map_all(probe, iter(()), limit=2) == []
    assert probe.started == []


async def test_map_all_can_list_in_completion_order() -> None:
    probe = Probe({0: 0.02})
    assert await corral.map_all(probe, range(3), limit=3, ordered=False) == [10, 20, 0]


async def test_a_short_source_starts_no_idle_workers() -> None:
    mapped = corral.amap(Probe({0: 1, 1: 1}), range(2), limit=50)
    async with mapped:
        assert len(workers()) == 2
        assert mapped.statistics().workers == 2


# -- laziness and backpressure ------------------------------------------------------------


@virtual_time
async def test_an_infinite_source_is_pulled_only_as_capacity_frees() -> None:
    pulled = 0

    def naturals() -> Iterator[int]:
        nonlocal pulled
        i = 0
        while True:
            pulled += 1
            yield i
            i += 1

    limit = 3
    ahead = []
    async with corral.amap(Probe(), naturals(), limit=limit) as results:
        consumed = 0
        async for _ in results:
            consumed += 1
            ahead.append(pulled - consumed)
            await asyncio.sleep(1)  # a slow consumer
            if consumed == 30:
                break
    assert max(ahead) <= 2 * limit
    assert pulled <= consumed + 2 * limit
    assert workers() == []


@virtual_time
async def test_a_slow_consumer_holds_back_an_async_source() -> None:
    pulled = 0

    async def ticks() -> AsyncIterator[int]:
        nonlocal pulled
        i = 0
        while True:
            await asyncio.sleep(0)
            pulled += 1
            yield i
            i += 1

    async with corral.amap(Probe(), ticks(), limit=2, ordered=True) as results:
        got = []
        async for result in results:
            got.append(result)
            await asyncio.sleep(5)
            assert pulled <= len(got) + 4
            if len(got) == 10:
                break
    assert got == [i * 10 for i in range(10)]


# -- errors and outcomes ------------------------------------------------------------------


@virtual_time
async def test_the_first_error_cancels_the_rest_and_is_raised() -> None:
    probe = Probe(dict.fromkeys(range(6), 10) | {2: 1}, fail={2, 4})
    results = corral.amap(probe, range(6), limit=6)
    with pytest.raises(ValueError, match="item 2 failed"):
        async for _ in results:
            pass
    assert now() == 1
    assert sorted(probe.cancelled) == [0, 1, 3, 4, 5]
    assert workers() == []
    stats = results.statistics()
    assert (stats.state, stats.failed, stats.completed) == ("closed", 1, 0)
    assert (stats.cancelled, stats.in_flight) == (5, 0)
    with pytest.raises(StopAsyncIteration):
        await anext(results)


@virtual_time
async def test_outcomes_mode_returns_every_result_and_error() -> None:
    probe = Probe({0: 2, 1: 1, 2: 3}, fail={1})
    outcomes = await corral.map_all(probe, range(3), limit=3, stop_on_error=False)
    assert outcomes[0] == Fulfilled(0)
    assert outcomes[2] == Fulfilled(20)
    assert isinstance(outcomes[1], Rejected)
    assert str(outcomes[1].error) == "item 1 failed"
    assert probe.cancelled == []


async def test_an_error_of_the_source_is_raised_in_outcomes_mode_too() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise KeyError("source")

    with pytest.raises(KeyError, match="source"):
        await corral.map_all(Probe(), broken(), limit=1, stop_on_error=False)
    with pytest.raises(KeyError, match="source"):
        await corral.map_all(Probe(), broken(), limit=3)


@virtual_time
async def test_outcomes_in_input_order() -> None:
    probe = Probe({0: 3, 1: 1, 2: 2}, fail={0, 2})
    async with corral.amap(probe, range(3), limit=3, ordered=True, stop_on_error=False) as results:
        statuses = [outcome.status async for outcome in results]
    assert statuses == ["rejected", "fulfilled", "rejected"]
    assert results.statistics().failed == 2


async def test_an_error_of_an_async_source_is_raised() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise KeyError("async source")

    with pytest.raises(KeyError, match="async source"):
        await corral.map_all(Probe(), broken(), limit=2, stop_on_error=False)
    assert workers() == []


async def test_a_cancelled_error_raised_by_fn_itself_stops_the_map() -> None:
    async def gives_up(item: int) -> int:
        raise asyncio.CancelledError("fn gave up")

    with pytest.raises(asyncio.CancelledError, match="fn gave up"):
        await corral.map_all(gives_up, range(3), limit=2, stop_on_error=False)
    assert workers() == []


async def test_a_sync_function_is_refused_when_called() -> None:
    def not_async(item: int) -> int:
        return item

    with pytest.raises(
        ArgumentTypeError, match=r"not_async\(item\) returned int, not an awaitable"
    ):
        await corral.map_all(not_async, range(3), limit=2, stop_on_error=False)  # type: ignore[arg-type]
    assert workers() == []


async def test_a_function_returning_an_awaitable_object_is_accepted() -> None:
    loop = asyncio.get_running_loop()

    def resolved(item: int) -> asyncio.Future[int]:
        future = loop.create_future()
        future.set_result(item + 1)
        return future

    assert await corral.map_all(resolved, range(3), limit=2) == [1, 2, 3]


# -- pacing and timeouts ------------------------------------------------------------------


@virtual_time
async def test_rate_paces_the_starts() -> None:
    probe = Probe(dict.fromkeys(range(5), 1))
    await corral.map_all(probe, range(5), limit=5, rate=10)
    assert [at for _, at in probe.started] == [0.0, 0.1, 0.2, 0.3, 0.4]


@virtual_time
async def test_a_shared_rate_limiter_paces_several_maps() -> None:
    limiter = corral.RateLimiter(2, burst=1)
    first, second = Probe(), Probe()
    await corral.all(
        [
            corral.map_all(first, range(3), limit=3, rate=limiter),
            corral.map_all(second, range(3), limit=3, rate=limiter),
        ]
    )
    starts = sorted(at for _, at in first.started + second.started)
    assert starts == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert limiter.statistics().admitted == 6


@virtual_time
async def test_pacing_stops_quietly_at_the_enclosing_deadline() -> None:
    probe = Probe(dict.fromkeys(range(10), 0.1))
    results = []
    with corral.move_on_after(2.5) as scope:
        async for result in corral.amap(probe, range(10), limit=5, rate=1):
            results.append(result)
    assert scope.cancelled_caught
    assert now() == 2.5
    assert results == [0, 10, 20]
    assert workers() == []


@virtual_time
async def test_per_item_timeout_fails_the_slow_item_naming_its_index() -> None:
    probe = Probe({0: 0.5, 1: 5, 2: 0.5})
    with pytest.raises(
        DeadlineExceeded, match=r"item 1 did not finish within per_item_timeout=2 s"
    ):
        await corral.map_all(probe, range(3), limit=3, per_item_timeout=2)
    assert now() == 2
    assert probe.cancelled == [1]


@virtual_time
async def test_per_item_timeout_in_outcomes_mode() -> None:
    probe = Probe({0: 0.5, 1: 5, 2: 1.5})
    outcomes = await corral.map_all(
        probe, range(3), limit=1, per_item_timeout=timedelta(seconds=1), stop_on_error=False
    )
    assert outcomes[0] == Fulfilled(0)
    assert isinstance(outcomes[1], Rejected)
    assert isinstance(outcomes[1].error, TimeoutError)
    assert "item 1" in str(outcomes[1].error)
    assert isinstance(outcomes[2], Rejected)
    assert now() == 2.5
    results = await corral.map_all(probe, range(3), limit=3, per_item_timeout=math.inf)
    assert results == [0, 10, 20]


# -- lifetime -----------------------------------------------------------------------------


@virtual_time
async def test_breaking_out_of_a_plain_async_for_cancels_the_workers() -> None:
    probe = Probe(dict.fromkeys(range(1, 10), 100))
    async for result in corral.amap(probe, range(10), limit=3):
        assert result == 0
        break
    await wait_all_tasks_blocked()
    assert workers() == []
    assert sorted(probe.cancelled) == [1, 2, 3]
    assert now() == 0


@virtual_time
async def test_dropping_the_iterator_in_another_thread_stops_the_workers() -> None:
    probe = Probe(dict.fromkeys(range(10), 100))
    holder = [corral.amap(probe, range(10), limit=2)]
    await holder[0].__aenter__()
    await wait_all_tasks_blocked()
    await asyncio.to_thread(holder.clear)  # the last reference goes in a worker thread
    await wait_all_tasks_blocked()
    assert workers() == []
    assert sorted(probe.cancelled) == [0, 1]
    assert now() == 0


@virtual_time
async def test_leaving_async_with_early_stops_the_workers_at_once() -> None:
    probe = Probe(dict.fromkeys(range(1, 10), 100))
    async with corral.amap(probe, range(10), limit=3) as results:
        assert await anext(results) == 0
    assert workers() == []
    assert sorted(probe.cancelled) == [1, 2, 3]
    with pytest.raises(ClosedResourceError, match="closed"):
        await anext(results)
    await results.aclose()


@virtual_time
async def test_aclose_ends_the_wait_of_a_consumer_with_closed_resource_error() -> None:
    probe = Probe(dict.fromkeys(range(10), 100))
    results = corral.amap(probe, range(10), limit=2)
    waiter = asyncio.create_task(anext(results))
    await wait_all_tasks_blocked()
    await results.aclose()
    with pytest.raises(ClosedResourceError):
        await waiter
    assert sorted(probe.cancelled) == [0, 1]
    assert workers() == []


@virtual_time
async def test_cancelling_the_consumer_cancels_the_running_calls() -> None:
    probe = Probe(dict.fromkeys(range(10), 100))

    async def consume() -> None:
        async for _ in corral.amap(probe, range(10), limit=4):
            pass

    consumer = asyncio.create_task(consume())
    await wait_all_tasks_blocked()
    assert len(workers()) == 4
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert workers() == []
    assert sorted(probe.cancelled) == [0, 1, 2, 3]


@virtual_time
async def test_the_workers_are_bounded_by_the_enclosing_deadline() -> None:
    probe = Probe(dict.fromkeys(range(10), 2))
    results = []
    with corral.move_on_after(5) as scope:
        async for result in corral.amap(probe, range(10), limit=2):
            results.append(result)
    assert scope.cancelled_caught
    assert now() == 5
    assert sorted(results) == [0, 10, 20, 30]
    assert sorted(probe.cancelled) == [4, 5]
    assert workers() == []


@virtual_time
async def test_the_deadline_stops_the_workers_while_the_consumer_is_busy() -> None:
    probe = Probe(dict.fromkeys(range(10), 2))
    cancelled_at = []
    with corral.move_on_after(5):
        async with corral.amap(probe, range(10), limit=2) as results:
            async for _ in results:
                try:
                    await asyncio.sleep(100)
                finally:
                    cancelled_at.append(now())
    assert cancelled_at == [5]
    assert workers() == []
    # items 0-3 finished by t=4; item 4 ran; the window (2 x 2) kept item 5 unpulled
    assert probe.cancelled == [4]
    assert [item for item, _ in probe.started] == [0, 1, 2, 3, 4]


@virtual_time
async def test_a_deadline_passed_after_the_consumer_left_its_scope_is_raised() -> None:
    probe = Probe(dict.fromkeys(range(10), 2))
    results = corral.amap(probe, range(10), limit=2)
    with corral.move_on_after(3):
        await results.__aenter__()
    await asyncio.sleep(10)
    with pytest.raises(DeadlineExceeded, match="deadline enclosing the consumer passed"):
        await anext(results)
    assert workers() == []
    await results.aclose()


async def test_a_second_consumer_waiting_at_once_is_refused() -> None:
    gate = asyncio.Event()

    async def wait_for_gate(item: int) -> int:
        await gate.wait()
        return item

    async with corral.amap(wait_for_gate, range(3), limit=1) as results:
        first = asyncio.create_task(anext(results))
        await asyncio.sleep(0)
        with pytest.raises(UsageError, match="another task is already waiting"):
            await anext(results)
        assert not first.done()  # the first consumer goes on waiting
        gate.set()
        assert await first == 0
    assert workers() == []


# -- the source's lifetime ----------------------------------------------------------------


class Tracked:
    """An async generator source that records whether it was closed."""

    def __init__(self, count: int | None = None) -> None:
        self.count = count
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        i = 0
        try:
            while self.count is None or i < self.count:
                await asyncio.sleep(0)
                yield i
                i += 1
        finally:
            self.closed = True


async def test_an_async_source_is_advanced_by_one_worker_at_a_time() -> None:
    source = Tracked(50)
    assert await corral.map_all(Probe(), source.items(), limit=8) == [i * 10 for i in range(50)]
    assert source.closed


async def test_an_async_source_is_closed_when_the_map_fails() -> None:
    source = Tracked()
    with pytest.raises(ValueError, match="item 7 failed"):
        await corral.map_all(Probe(fail={7}), source.items(), limit=3)
    assert source.closed


async def test_an_async_source_is_closed_on_an_early_exit() -> None:
    source = Tracked()
    async with corral.amap(Probe(), source.items(), limit=3) as results:
        async for result in results:
            if result == 40:
                break
    assert source.closed
    assert workers() == []


async def test_a_generator_source_is_closed_when_the_map_ends_early() -> None:
    closed = []

    def naturals() -> Iterator[int]:
        try:
            yield from range(10**9)
        finally:
            closed.append(True)

    async with corral.amap(Probe(), naturals(), limit=2) as results:
        await anext(results)
    assert closed == [True]


# -- statistics, repr, events -------------------------------------------------------------


@virtual_time
async def test_statistics_and_repr_follow_the_run() -> None:
    probe = Probe({0: 1, 1: 3, 2: 2, 3: 1})
    results = corral.amap(probe, range(4), limit=2, ordered=True)
    assert repr(results) == "<AsyncMap new: 0/2 running, 0 pending, 0 delivered>"
    assert results.statistics().state == "new"
    async with results:
        assert await anext(results) == 0
        await asyncio.sleep(1.5)  # t=2.5: items 1 and 2 run
        assert results.statistics() == AsyncMapStatistics(
            state="running",
            limit=2,
            ordered=True,
            pulled=3,
            started=3,
            completed=1,
            failed=0,
            cancelled=0,
            in_flight=2,
            pending=0,
            delivered=1,
            workers=2,
        )
        await asyncio.sleep(1)  # t=3.5: items 1 and 2 wait for the consumer; item 3 runs
        assert repr(results) == "<AsyncMap running: 1/2 running, 2 pending, 1 delivered>"
        assert [r async for r in results] == [10, 20, 30]
        stats = results.statistics()
        assert (stats.state, stats.completed, stats.delivered, stats.workers) == ("closed", 4, 4, 0)


class Recorder:
    """An instrument that keeps the amap events it sees."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.parked = 0

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, MapRun):
            self.events.append((name, fields))

    def task_parked(self, task: object, on: object) -> None:
        if isinstance(on, MapRun):
            self.parked += 1


async def test_reports_start_failures_finish_and_close_to_instruments() -> None:
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        await corral.map_all(Probe(fail={1}), range(3), limit=2, stop_on_error=False)
        with pytest.raises(ValueError, match="item 0 failed"):
            await corral.map_all(Probe(fail={0}), range(3), limit=2)
    finally:
        corral.INSTRUMENTS.remove(recorder)
    names = [name for name, _ in recorder.events]
    assert names == [
        "started",
        "item_failed",
        "finished",
        "closed",
        "started",
        "item_failed",
        "failed",
        "closed",
    ]
    assert recorder.events[0][1] == {"limit": 2, "ordered": True}
    assert recorder.events[1][1]["index"] == 1
    assert recorder.events[2][1] == {"completed": 2, "failed": 1}
    assert recorder.parked >= 1


# -- bad input ----------------------------------------------------------------------------


async def double(item: int) -> int:
    return 2 * item


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"limit": 0}, InvalidArgumentError, "limit must be at least 1, got 0"),
        ({"limit": -2}, InvalidArgumentError, "limit must be at least 1, got -2"),
        ({"limit": math.nan}, InvalidArgumentError, "limit must be a whole number, not NaN"),
        ({"limit": 2.5}, ArgumentTypeError, r"limit must be an int, not float \(2.5\)"),
        ({"limit": True}, ArgumentTypeError, "limit must be an int, not bool"),
        ({"rate": 0}, InvalidArgumentError, "rate must be a positive finite number .* got 0"),
        ({"rate": -1.5}, InvalidArgumentError, "rate must be a positive .* got -1.5"),
        ({"rate": math.nan}, InvalidArgumentError, "rate must be a positive .* got nan"),
        ({"rate": math.inf}, InvalidArgumentError, "rate must be a positive .* got inf"),
        ({"rate": "fast"}, ArgumentTypeError, r"rate must be .* a corral.RateLimiter, not str"),
        ({"rate": True}, ArgumentTypeError, "rate must be a number .* not bool"),
        ({"per_item_timeout": 0}, InvalidArgumentError, "per_item_timeout must be above zero"),
        ({"per_item_timeout": -1}, InvalidArgumentError, "per_item_timeout must not be negative"),
        ({"per_item_timeout": math.nan}, InvalidArgumentError, "per_item_timeout .* not NaN"),
        ({"per_item_timeout": "1"}, ArgumentTypeError, "per_item_timeout must be seconds"),
        ({"ordered": "yes"}, ArgumentTypeError, "ordered must be True or False, not str"),
        ({"stop_on_error": 0}, ArgumentTypeError, "stop_on_error must be True or False, not int"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_runs(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    pulled = []

    def source() -> Iterator[int]:
        pulled.append(True)
        yield 1

    arguments: dict[str, Any] = {"limit": 2} | kwargs
    with pytest.raises(error, match=message):
        corral.amap(double, source(), **arguments)
    with pytest.raises(error, match=message):
        await corral.map_all(double, source(), **arguments)
    assert pulled == []


async def test_a_coroutine_object_instead_of_a_function_is_refused() -> None:
    coroutine = double(1)
    with pytest.raises(ArgumentTypeError, match=r"not a coroutine object: write amap\(fn, items"):
        corral.amap(coroutine, range(3), limit=2)  # type: ignore[call-overload]
    assert (
        inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
    )  # closed: no "never awaited" warning
    with pytest.raises(ArgumentTypeError, match=r"map_all\(\) takes an async function"):
        await corral.map_all(double(1), range(3), limit=2)  # type: ignore[call-overload]


async def test_functions_that_cannot_map_are_refused() -> None:
    async def generator(item: int) -> AsyncIterator[int]:
        yield item

    with pytest.raises(ArgumentTypeError, match="fn must be an async function, not int"):
        corral.amap(3, range(3), limit=2)  # type: ignore[call-overload]
    with pytest.raises(ArgumentTypeError, match=r"not the generator function .*generator"):
        corral.amap(generator, range(3), limit=2)  # type: ignore[arg-type]


async def test_items_that_are_not_iterable_are_refused() -> None:
    async def fetch() -> list[int]:
        return [1]

    with pytest.raises(ArgumentTypeError, match="items must be an iterable or an async iterable"):
        corral.amap(double, 3, limit=2)  # type: ignore[call-overload]
    pending = fetch()
    with pytest.raises(ArgumentTypeError, match="items is a coroutine object; await it first"):
        corral.amap(double, pending, limit=2)  # type: ignore[call-overload]
    assert inspect.getcoroutinestate(pending) == inspect.CORO_CLOSED


def test_an_unstarted_map_runs_nothing_and_needs_no_loop() -> None:
    mapped: AsyncMap[int] = corral.amap(double, range(3), limit=2)
    assert mapped.statistics().pulled == 0
    del mapped
