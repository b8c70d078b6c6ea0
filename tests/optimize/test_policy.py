"""policy / Timeout / Fallback: the fixed stage order, deadlines, cancellation, bad input."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral import (
    Bulkhead,
    CircuitBreaker,
    Fallback,
    FallbackStatistics,
    Hedge,
    PolicyStatistics,
    RateLimiter,
    Retry,
    Timeout,
    TimeoutStatistics,
)
from corral.errors import (
    ArgumentTypeError,
    CircuitOpenError,
    DeadlineExceeded,
    InvalidArgumentError,
)
from corral.testing import VirtualClock, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")


class Flaky:
    """Fails the first ``failures`` calls with ConnectionError, then returns "ok"."""

    def __init__(self, failures: int, pause: float = 0.0) -> None:
        self.failures = failures
        self.pause = pause
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(self.pause)
        if self.calls <= self.failures:
            raise ConnectionError(f"failure {self.calls}")
        return "ok"


# -- Timeout -----------------------------------------------------------------------------


async def test_timeout_cuts_a_slow_call_short(virtual_clock: VirtualClock) -> None:
    limit = Timeout(2)
    with pytest.raises(DeadlineExceeded, match="longer than its limit of 2s"):
        await limit.run(asyncio.sleep, 10)
    assert virtual_clock.time() == 2
    assert await limit.run(asyncio.sleep, 1, "done") == "done"
    assert limit.statistics() == TimeoutStatistics(calls=2, timed_out=1)
    assert repr(limit) == "<Timeout 2s; 2 calls, 1 timed out>"


async def test_timeout_never_extends_the_enclosing_deadline(virtual_clock: VirtualClock) -> None:
    limit = Timeout(10)
    with corral.move_on_after(1) as scope:
        await limit.run(asyncio.sleep, 5)
    assert scope.cancelled_caught  # the enclosing scope ended it, silently
    assert virtual_clock.time() == 1
    assert limit.statistics().timed_out == 0


async def test_timeout_passes_the_callers_cancellation_through() -> None:
    limit = Timeout(100)
    task = asyncio.create_task(limit.run(asyncio.sleep, 50))
    await wait_all_tasks_blocked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limit.statistics().timed_out == 0


async def test_timeout_as_a_decorator() -> None:
    @Timeout(1)
    async def quick(value: int) -> int:
        """Quick."""
        return value

    assert await quick(3) == 3
    assert quick.__doc__ == "Quick."


# -- Fallback ----------------------------------------------------------------------------


async def test_fallback_answers_with_a_value_for_matching_errors() -> None:
    fallback = Fallback("cached", on=ConnectionError)
    assert await fallback.run(Flaky(1)) == "cached"
    assert await fallback.run(Flaky(0)) == "ok"

    async def broken() -> str:
        raise KeyError("other")

    with pytest.raises(KeyError):
        await fallback.run(broken)
    assert fallback.statistics() == FallbackStatistics(calls=3, fell_back=1)
    assert repr(fallback) == "<Fallback to value 'cached'; 3 calls, 1 fell back>"


async def test_fallback_handlers_get_the_error_and_may_be_async() -> None:
    def plain(error: Exception) -> str:
        return f"plain after {error}"

    async def awaited(error: Exception) -> str:
        await asyncio.sleep(0)
        return f"awaited after {error}"

    assert await Fallback(handler=plain).run(Flaky(1)) == "plain after failure 1"
    assert await Fallback(handler=awaited).run(Flaky(1)) == "awaited after failure 1"
    assert await Fallback(None).run(Flaky(1)) is None  # None is a value like any other

    def broken(error: Exception) -> str:
        raise RuntimeError("handler broke")

    with pytest.raises(RuntimeError, match="handler broke") as caught:
        await Fallback(handler=broken).run(Flaky(1))
    assert isinstance(caught.value.__context__, ConnectionError)


async def test_fallback_never_replaces_cancellation() -> None:
    fallback = Fallback("never", on=lambda error: True)
    task = asyncio.create_task(fallback.run(asyncio.sleep, 100))
    await wait_all_tasks_blocked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fallback.statistics().fell_back == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((), {}, InvalidArgumentError, "exactly one of value= and handler= .got neither"),
        ((1,), {"handler": print}, InvalidArgumentError, "got both"),
        ((), {"handler": 3}, ArgumentTypeError, "handler must be callable"),
        ((1,), {"on": BaseException}, InvalidArgumentError, "on must name Exception"),
    ],
)
def test_bad_fallback_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Fallback(*args, **kwargs)


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf])
def test_bad_timeout_seconds(seconds: float) -> None:
    with pytest.raises(InvalidArgumentError, match="seconds"):
        Timeout(seconds)


# -- policy: the order -------------------------------------------------------------------

LOG: list[str] = []


def recorded(label: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def record(*args: Any, **kwargs: Any) -> Any:
        LOG.append(label)
        return await fn(*args, **kwargs)

    return record


class RecordingFallback(Fallback):
    def __call__(self, fn: Any) -> Any:
        return recorded("fallback", super().__call__(recorded("in fallback", fn)))


class RecordingRetry(Retry):
    def __call__(self, fn: Any) -> Any:
        return recorded("retry", super().__call__(recorded("in retry", fn)))


class RecordingBreaker(CircuitBreaker):
    def __call__(self, fn: Any) -> Any:
        return recorded("breaker", super().__call__(recorded("in breaker", fn)))


class RecordingHedge(Hedge):
    def __call__(self, fn: Any) -> Any:
        return recorded("hedge", super().__call__(recorded("in hedge", fn)))


class RecordingTimeout(Timeout):
    def __call__(self, fn: Any) -> Any:
        return recorded("timeout", super().__call__(recorded("in timeout", fn)))


class RecordingRateLimiter(RateLimiter):
    async def acquire(self, cost: float = 1) -> None:
        LOG.append("rate limit")
        await super().acquire(cost)


class RecordingBulkhead(Bulkhead):
    async def __aenter__(self) -> None:
        LOG.append("bulkhead")
        await super().__aenter__()


def recording_stages() -> list[Any]:
    return [
        RecordingFallback(None),
        RecordingRetry(attempts=1),
        RecordingRateLimiter(100),
        RecordingBreaker(),
        RecordingHedge(delay=1),
        RecordingBulkhead(1, 0),
        RecordingTimeout(5),
    ]


@given(order=st.permutations(range(7)))
def test_stages_nest_in_the_fixed_order_whatever_order_they_are_given_in(
    order: list[int],
) -> None:
    async def main() -> None:
        stages = recording_stages()
        resilient = corral.policy(*(stages[index] for index in order))
        assert resilient.stages == tuple(stages)
        LOG.clear()

        async def call() -> str:
            LOG.append("call")
            return "done"

        assert await resilient.run(call) == "done"
        assert LOG == [
            "fallback",
            "in fallback",
            "retry",
            "in retry",
            "rate limit",
            "breaker",
            "in breaker",
            "hedge",
            "in hedge",
            "bulkhead",
            "timeout",
            "in timeout",
            "call",
        ]

    corral.testing.run(main)


def test_the_repr_names_the_order() -> None:
    resilient = corral.policy(Timeout(1), corral.retry(), Fallback(0))
    assert repr(resilient) == (
        "<Policy fallback -> retry -> timeout; 0 calls, 0 succeeded, 0 failed>"
    )
    assert repr(corral.policy()) == "<Policy no stages; 0 calls, 0 succeeded, 0 failed>"


# -- policy: behaviour -------------------------------------------------------------------


async def test_each_retry_attempt_gets_its_own_timeout(virtual_clock: VirtualClock) -> None:
    pauses = [10.0, 0.5]

    async def sometimes_hangs() -> str:
        await asyncio.sleep(pauses.pop(0))
        return "ok"

    resilient = corral.policy(
        corral.retry(attempts=2, wait_initial=1, wait_jitter=False), Timeout(2)
    )
    assert await resilient(sometimes_hangs)() == "ok"
    assert virtual_clock.time() == 2 + 1 + 0.5  # timed out, waited, succeeded


async def test_retries_open_the_breaker_and_the_fallback_answers(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker("dep", window_calls=4, open_for=60)
    retry = corral.retry(attempts=3, wait_initial=0.1, wait_jitter=False, on=ConnectionError)
    fallback = Fallback("stale", on=(ConnectionError, CircuitOpenError))
    resilient = corral.policy(fallback, breaker, retry)
    flaky = Flaky(100)
    fetch = resilient(flaky)
    assert await fetch() == "stale"  # three attempts failed
    assert await fetch() == "stale"  # the 4th attempt opened the circuit...
    assert flaky.calls == 4  # ...so the next attempts were rejected without a call
    assert breaker.state is corral.CircuitState.OPEN
    assert fallback.statistics().fell_back == 2
    assert resilient.statistics() == PolicyStatistics(calls=2, succeeded=2, failed=0)


async def test_a_hedged_copy_the_bulkhead_turns_away_is_not_a_breaker_failure(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(window_calls=1)
    bulkhead = Bulkhead(1, 0)
    resilient = corral.policy(breaker, Hedge(delay=1), bulkhead)
    assert await resilient.run(asyncio.sleep, 3, "slow but fine") == "slow but fine"
    # the hedge at t=1 found the only slot taken: that copy failed, the first went on
    assert virtual_clock.time() == 3
    assert bulkhead.statistics().rejected == 1
    assert breaker.statistics().failures == 0
    assert breaker.state is corral.CircuitState.CLOSED


async def test_a_rate_limit_that_cannot_make_the_deadline_is_not_a_breaker_failure(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(window_calls=1)
    limiter = RateLimiter(1, per=10, burst=1)
    resilient = corral.policy(limiter, breaker)
    assert await resilient.run(asyncio.sleep, 0, 1) == 1
    with corral.move_on_after(5), pytest.raises(DeadlineExceeded):
        await resilient.run(asyncio.sleep, 0, 2)  # the next token is 10 s away
    assert breaker.statistics().failures == 0


async def test_cancellation_passes_through_every_stage(virtual_clock: VirtualClock) -> None:
    breaker = CircuitBreaker(window_calls=1, minimum_calls=1)
    retry = corral.retry(attempts=5)
    fallback = Fallback("never", on=lambda error: True)
    resilient = corral.policy(fallback, retry, breaker, Hedge(delay=1), Timeout(100))
    server_calls = 0

    async def hang() -> None:
        nonlocal server_calls
        server_calls += 1
        await asyncio.sleep(1000)

    task = asyncio.create_task(resilient.run(hang))
    await asyncio.sleep(5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server_calls == 2  # the first call and its hedge; no retry
    assert retry.statistics().retries == 0
    assert breaker.statistics().failures == 0
    assert fallback.statistics().fell_back == 0


async def test_the_enclosing_deadline_bounds_the_whole_policy(virtual_clock: VirtualClock) -> None:
    resilient = corral.policy(
        corral.retry(attempts=10, wait_initial=3, wait_jitter=False), Timeout(2)
    )
    flaky = Flaky(100, pause=0.5)
    with corral.move_on_after(5), pytest.raises(ConnectionError, match="failure 2") as caught:
        await resilient.run(flaky)
    # 0.5 fail, wait 3, 4.0 fail: a wait of 6 more would pass the deadline at 5
    assert virtual_clock.time() == 4.0
    assert "enclosing deadline" in caught.value.__notes__[0]


async def test_the_decorator_keeps_the_function() -> None:
    @corral.policy(Timeout(1))
    async def add(a: int, b: int = 1) -> int:
        """Add."""
        return a + b

    assert await add(1, b=2) == 3
    assert add.__name__ == "add"


async def test_a_failure_is_counted_and_raised() -> None:
    resilient = corral.policy(corral.retry(attempts=1))
    with pytest.raises(ConnectionError):
        await resilient.run(Flaky(1))
    assert resilient.statistics() == PolicyStatistics(calls=1, succeeded=0, failed=1)


async def test_bad_policies_are_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="not int"):
        corral.policy(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="at most one timeout stage"):
        corral.policy(Timeout(1), Timeout(2))
    resilient = corral.policy(Timeout(1))
    coroutine = Flaky(0)()
    with pytest.raises(ArgumentTypeError, match="coroutine object"):
        resilient.run(coroutine)  # type: ignore[arg-type, unused-coroutine]
    with pytest.raises(ArgumentTypeError, match="coroutine object"):
        resilient(Flaky(0)())  # type: ignore[arg-type]
