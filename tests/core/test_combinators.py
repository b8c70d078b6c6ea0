"""all / all_settled / any / race / all_keyed: results, structure, limits, bad input."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
from corral import AggregateError, CancelReason, CancelSource, Fulfilled, Rejected
from corral.errors import (
    ArgumentTypeError,
    InputCancelledError,
    InvalidArgumentError,
    UsageError,
)
from corral.testing import VirtualClock


class Tracker:
    """Coroutines that record when they start, finish and get cancelled."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self.cancelled: list[Any] = []
        self.running = 0
        self.peak = 0

    async def value(self, value: Any, delay: float = 0.0) -> Any:
        self.started.append(value)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(value)
            raise
        finally:
            self.running -= 1
        self.finished.append(value)
        return value

    async def error(self, exc: BaseException, delay: float = 0.0) -> Any:
        await asyncio.sleep(delay)
        raise exc


async def test_all_returns_results_in_input_order(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    assert await corral.all([t.value("a", 3), t.value("b", 1), t.value("c", 2)]) == ["a", "b", "c"]
    assert t.finished == ["b", "c", "a"]


async def test_all_of_nothing_is_an_empty_list() -> None:
    assert await corral.all([]) == []


async def test_all_accepts_every_kind_of_awaitable() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    loop.call_soon(future.set_result, "future")

    async def coro() -> str:
        return "coroutine"

    task = asyncio.create_task(coro())

    class Custom:
        def __await__(self) -> Any:
            return coro().__await__()

    results = await corral.all([coro(), task, future, Custom()])
    assert results == ["coroutine", "coroutine", "future", "coroutine"]


async def test_all_fails_fast_and_cleans_up(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(ValueError, match="bad"):
        await corral.all([t.value("slow", 100), t.error(ValueError("bad"), 1), t.value("x", 50)])
    assert loop.time() - start == pytest.approx(1)
    # everything all() started is cancelled *and finished* before it raises
    assert sorted(t.cancelled) == ["slow", "x"]
    assert t.running == 0


async def test_all_leaves_callers_tasks_running(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    mine = asyncio.create_task(t.value("mine", 10))
    with pytest.raises(ValueError, match="bad"):
        await corral.all([mine, t.error(ValueError("bad"), 1)])
    assert not mine.done()
    assert await mine == "mine"


async def test_all_raises_cancelled_when_an_input_was_cancelled_by_someone_else() -> None:
    async def sleeper() -> None:
        await asyncio.sleep(10)

    victim = asyncio.create_task(sleeper())
    asyncio.get_running_loop().call_soon(victim.cancel)
    with pytest.raises(asyncio.CancelledError):
        await corral.all([victim])


async def test_cancelling_the_caller_cancels_started_inputs(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    with corral.move_on_after(1) as scope:
        await corral.all([t.value("a", 10), t.value("b", 20)])
    assert scope.cancelled_caught
    assert sorted(t.cancelled) == ["a", "b"]
    assert t.running == 0


async def test_cleanup_survives_repeated_cancellation(virtual_clock: VirtualClock) -> None:
    finished_cleanup = []

    async def slow_to_die() -> None:
        try:
            await asyncio.sleep(100)
        finally:
            with corral.CancelScope(shield=True):
                await asyncio.sleep(5)  # cleanup that takes a while
            finished_cleanup.append(True)

    with corral.move_on_after(1):
        await corral.all([slow_to_die()])
    assert finished_cleanup == [True]


async def test_inputs_are_cancelled_with_a_settled_reason(virtual_clock: VirtualClock) -> None:
    reasons: list[CancelReason | None] = []

    async def loser() -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError as exc:
            reasons.append(CancelReason.of(exc))
            raise

    async def winner() -> str:
        await asyncio.sleep(1)
        return "won"

    assert await corral.race([loser(), winner()]) == "won"
    assert len(reasons) == 1
    assert reasons[0] is not None
    assert reasons[0].source is CancelSource.SETTLED


async def test_all_settled_reports_each_outcome(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    boom = ValueError("boom")
    outcomes = await corral.all_settled([t.value(1, 2), t.error(boom, 1), t.value(3)])
    assert outcomes == [Fulfilled(1), Rejected(boom), Fulfilled(3)]
    assert [o.status for o in outcomes] == ["fulfilled", "rejected", "fulfilled"]
    assert outcomes[0].unwrap() == 1
    with pytest.raises(ValueError, match="boom"):
        outcomes[1].unwrap()


async def test_all_settled_turns_foreign_cancellation_into_a_rejection() -> None:
    async def sleeper() -> None:
        await asyncio.sleep(10)

    victim = asyncio.create_task(sleeper())
    asyncio.get_running_loop().call_soon(victim.cancel)
    [outcome] = await corral.all_settled([victim])
    assert isinstance(outcome, Rejected)
    assert isinstance(outcome.error, asyncio.CancelledError)


async def test_any_returns_first_fulfilment(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    result = await corral.any(
        [t.error(ValueError("fast failure"), 1), t.value("second", 2), t.value("third", 3)]
    )
    assert result == "second"
    assert t.cancelled == ["third"]


async def test_any_aggregates_every_failure_in_input_order(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    first, second = KeyError("first"), ValueError("second")
    with pytest.raises(AggregateError) as info:
        await corral.any([t.error(first, 2), t.error(second, 1)])
    assert info.value.exceptions == (first, second)
    assert isinstance(info.value, ExceptionGroup)


async def test_any_failure_works_with_except_star() -> None:
    t = Tracker()
    caught: list[BaseException] = []
    try:
        await corral.any([t.error(ValueError("v")), t.error(KeyError("k"))])
    except* ValueError as group:
        caught.extend(group.exceptions)
    except* KeyError as group:
        caught.extend(group.exceptions)
    assert sorted(type(e).__name__ for e in caught) == ["KeyError", "ValueError"]


async def test_any_reports_foreign_cancellation_as_input_cancelled() -> None:
    async def sleeper() -> None:
        await asyncio.sleep(10)

    victim = asyncio.create_task(sleeper())
    asyncio.get_running_loop().call_soon(victim.cancel)
    t = Tracker()
    with pytest.raises(AggregateError) as info:
        await corral.any([t.error(KeyError("k")), victim])
    first, second = info.value.exceptions
    assert isinstance(first, KeyError)
    assert isinstance(second, InputCancelledError)
    assert second.index == 1
    assert isinstance(second.__cause__, asyncio.CancelledError)


async def test_any_of_nothing_raises_an_empty_aggregate_error() -> None:
    with pytest.raises(AggregateError) as info:
        await corral.any([])
    assert info.value.exceptions == ()
    assert "no inputs" in str(info.value)


async def test_race_settles_like_the_first_input(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    assert await corral.race([t.value("slow", 2), t.value("fast", 1)]) == "fast"
    assert t.cancelled == ["slow"]
    with pytest.raises(KeyError):
        await corral.race([t.value("slow", 2), t.error(KeyError("k"), 1)])


async def test_race_of_nothing_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least one input"):
        await corral.race([])


async def test_all_keyed_maps_keys_to_results(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    result = await corral.all_keyed({"user": t.value("ann", 2), "orders": t.value([1, 2], 1)})
    assert result == {"user": "ann", "orders": [1, 2]}
    assert list(result) == ["user", "orders"]


async def test_all_keyed_refuses_bad_values_naming_the_key() -> None:
    t = Tracker()
    with pytest.raises(ArgumentTypeError, match="key 'b'"):
        await corral.all_keyed({"a": t.value(1), "b": 2})  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="mapping"):
        await corral.all_keyed([t.value(1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "combinator",
    [corral.all, corral.all_settled, corral.any, corral.race],
    ids=lambda f: f.__name__,
)
async def test_non_awaitable_input_is_named_by_index(
    combinator: Callable[..., Awaitable[Any]],
) -> None:
    t = Tracker()
    first = t.value(1)
    with pytest.raises(ArgumentTypeError, match=r"input 1 is not awaitable: int"):
        await combinator([first, 42])
    # nothing was started, and the coroutine given was closed (no "never awaited")
    assert t.started == []
    assert first.cr_frame is None  # type: ignore[attr-defined]


async def test_a_string_is_not_taken_as_an_iterable_of_inputs() -> None:
    with pytest.raises(ArgumentTypeError, match="iterable of awaitables"):
        await corral.all("abc")  # type: ignore[arg-type]


async def test_future_of_another_loop_is_refused() -> None:
    other = asyncio.new_event_loop()
    try:
        foreign = other.create_future()
        with pytest.raises(UsageError, match="input 0 is a future of another event loop"):
            await corral.all([foreign])
    finally:
        other.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, math.nan])
async def test_bad_limits_are_value_errors(bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match="limit"):
        await corral.all([], limit=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["2", True])
async def test_limit_of_wrong_type_is_a_type_error(bad: object) -> None:
    with pytest.raises(ArgumentTypeError, match="limit"):
        await corral.all([], limit=bad)  # type: ignore[arg-type]


async def test_limit_bounds_running_coroutines(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    results = await corral.all([t.value(i, 1 + i % 3) for i in range(20)], limit=4)
    assert results == list(range(20))
    assert t.peak == 4
    assert t.started == list(range(20))  # started in input order


async def test_limit_leaves_unstarted_coroutines_closed(virtual_clock: VirtualClock) -> None:
    t = Tracker()
    coros = [t.error(ValueError("x"), 1)] + [t.value(i, 5) for i in range(5)]
    with pytest.raises(ValueError, match="x"):
        await corral.all(coros, limit=2)
    assert t.started == [0]
    assert all(c.cr_frame is None for c in coros)  # type: ignore[attr-defined]  # closed: no "never awaited" warning


async def test_float_limit_that_is_whole_is_accepted() -> None:
    t = Tracker()
    assert await corral.all([t.value(1), t.value(2)], limit=1.0) == [1, 2]  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    delays=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=12),
    limit=st.integers(min_value=1, max_value=6),
    fail_at=st.one_of(st.none(), st.integers(min_value=0, max_value=11)),
)
def test_limit_property(delays: list[int], limit: int, fail_at: int | None) -> None:
    """For any delays and limit: never more than ``limit`` run at once, results are in
    input order, and on failure nothing the combinator started is left running."""
    t = Tracker()

    async def main() -> None:
        coros: list[Coroutine[Any, Any, Any]] = [
            t.error(ValueError(i), d) if i == fail_at else t.value(i, d)
            for i, d in enumerate(delays)
        ]
        if fail_at is not None and fail_at < len(delays):
            with pytest.raises(ValueError):
                await corral.all(coros, limit=limit)
        else:
            assert await corral.all(coros, limit=limit) == list(range(len(delays)))
        assert t.running == 0
        assert t.peak <= limit
        assert t.started == sorted(t.started)

    corral.testing.run(main)
