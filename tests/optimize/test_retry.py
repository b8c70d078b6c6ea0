"""corral.retry, corral.retrying and corral.RetryBudget, on the virtual clock."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
import corral.testing
from corral.errors import ArgumentTypeError, DeadlineExceeded, InvalidArgumentError
from corral.testing import VirtualClock, retry_without_waits


class Flaky:
    """An async callable that fails ``failures`` times, recording the loop time of each call."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.times: list[float] = []

    async def __call__(self, value: int = 1) -> int:
        self.times.append(asyncio.get_running_loop().time())
        if len(self.times) <= self.failures:
            raise self.error(f"failure {len(self.times)}")
        return value * 2


def gaps(times: list[float]) -> list[float]:
    return [round(later - earlier, 9) for earlier, later in itertools.pairwise(times)]


async def test_success_on_first_attempt_returns_at_once(virtual_clock: VirtualClock) -> None:
    policy = corral.retry()
    flaky = Flaky(0)
    assert await policy(flaky)(21) == 42
    assert flaky.times == [0.0]
    assert policy.statistics() == corral.RetryStatistics(calls=1, retries=0, gave_up=0)


async def test_exact_backoff_sequence_without_jitter(virtual_clock: VirtualClock) -> None:
    flaky = Flaky(5)
    policy = corral.retry(attempts=6, wait_initial=0.5, wait_max=3, backoff=2, wait_jitter=False)
    assert await policy(flaky)() == 2
    assert gaps(flaky.times) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.statistics() == corral.RetryStatistics(calls=1, retries=5, gave_up=0)


async def test_jitter_stays_within_the_ceiling_and_is_seeded(virtual_clock: VirtualClock) -> None:
    async def run(seed: int) -> list[float]:
        flaky = Flaky(6)
        policy = corral.retry(
            attempts=7, wait_initial=1, wait_max=8, wait_jitter=random.Random(seed)
        )
        await policy(flaky)()
        return gaps(flaky.times)

    first = await run(7)
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(0 <= gap <= ceiling for gap, ceiling in zip(first, ceilings, strict=True))
    assert first != [float(c) for c in ceilings]
    assert await run(7) == first
    assert await run(8) != first


async def test_attempts_run_out_and_the_last_error_says_so(virtual_clock: VirtualClock) -> None:
    flaky = Flaky(10)
    policy = corral.retry(attempts=3, wait_jitter=False)
    with pytest.raises(ConnectionError, match="failure 3") as caught:
        await policy(flaky)()
    assert len(flaky.times) == 3
    assert any("gave up after 3 attempt(s)" in note for note in caught.value.__notes__)
    assert policy.statistics() == corral.RetryStatistics(calls=1, retries=2, gave_up=1)


async def test_on_filters_by_type_and_by_predicate(virtual_clock: VirtualClock) -> None:
    other = Flaky(1, KeyError)
    with pytest.raises(KeyError):
        await corral.retry(on=ConnectionError)(other)()
    assert len(other.times) == 1

    typed = Flaky(2, TimeoutError)
    assert await corral.retry(on=(ConnectionError, TimeoutError))(typed)() == 2
    assert len(typed.times) == 3

    seen: list[Exception] = []

    def transient(error: Exception) -> bool:
        seen.append(error)
        return "1" in str(error)

    picky = Flaky(5)
    with pytest.raises(ConnectionError, match="failure 2"):
        await corral.retry(on=transient)(picky)()
    assert [str(error) for error in seen] == ["failure 1", "failure 2"]


async def test_cancellation_is_never_retried(virtual_clock: VirtualClock) -> None:
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await corral.retry(attempts=5)(cancelled)()
    assert calls == 1
    with pytest.raises(InvalidArgumentError, match="never retried"):
        corral.retry(on=asyncio.CancelledError)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="KeyboardInterrupt"):
        corral.retry(on=(ValueError, KeyboardInterrupt))  # type: ignore[arg-type]


async def test_cancel_during_wait_returns_the_budget_token(virtual_clock: VirtualClock) -> None:
    budget = corral.RetryBudget(ratio=0.5, min_per_second=0, capacity=5)
    before = budget.statistics().balance
    policy = corral.retry(attempts=5, wait_initial=10, wait_jitter=False, budget=budget)
    flaky = Flaky(10)
    async with corral.TaskGroup() as tg:
        tg.start_soon(policy(flaky))
        await asyncio.sleep(1)
        assert budget.statistics().retries == 1
        tg.cancel()
    assert len(flaky.times) == 1
    assert budget.statistics().retries == 0
    assert budget.statistics().balance == before + 0.5
    assert policy.statistics().retries == 0


async def test_never_sleeps_past_the_enclosing_deadline(virtual_clock: VirtualClock) -> None:
    flaky = Flaky(10)
    policy = corral.retry(attempts=10, wait_initial=1, wait_max=100, wait_jitter=False)
    loop = asyncio.get_running_loop()
    with corral.move_on_after(5.5):
        with pytest.raises(ConnectionError, match="failure 3") as caught:
            await policy(flaky)()
        # waits 1 and 2 fit; the third (4s) would end at 7 > 5.5
        assert loop.time() == 3.0
    assert gaps(flaky.times) == [1.0, 2.0]
    assert any("enclosing deadline" in note for note in caught.value.__notes__)


async def test_timeout_stops_before_a_wait_that_would_pass_it(
    virtual_clock: VirtualClock,
) -> None:
    flaky = Flaky(10)
    policy = corral.retry(attempts=None, timeout=4, wait_initial=1, wait_jitter=False)
    with pytest.raises(ConnectionError, match="failure 3") as caught:
        await policy(flaky)()
    assert gaps(flaky.times) == [1.0, 2.0]
    assert any("retry timeout" in note for note in caught.value.__notes__)


async def test_timeout_cancels_a_slow_attempt(virtual_clock: VirtualClock) -> None:
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("first")
        await asyncio.sleep(3600)

    policy = corral.retry(timeout=timedelta(seconds=2), wait_initial=1, wait_jitter=False)
    with pytest.raises(DeadlineExceeded, match="2s passed during attempt 2") as caught:
        await policy(slow)()
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert asyncio.get_running_loop().time() == 2.0
    assert policy.statistics().gave_up == 1


async def test_budget_limits_a_retry_storm(virtual_clock: VirtualClock) -> None:
    budget = corral.RetryBudget(ratio=0.25, min_per_second=0, capacity=2)
    assert budget.statistics().balance == 1.0
    policy = corral.retry(attempts=3, wait_initial=0.01, wait_jitter=False, budget=budget)
    always = Flaky(1000)
    attempts_per_call = []
    for _ in range(8):
        before = len(always.times)
        with pytest.raises(ConnectionError) as caught:
            await policy(always)()
        attempts_per_call.append(len(always.times) - before)
    # 1 saved token + 0.25 per call: 3 retries for 8 calls, not 16
    assert attempts_per_call == [2, 1, 1, 2, 1, 1, 1, 2]
    assert any("budget is exhausted" in note for note in caught.value.__notes__)
    stats = budget.statistics()
    assert (stats.requests, stats.retries) == (8, 3)
    assert stats.denied == 8
    assert "8 requests, 3 retries, 8 denied" in repr(budget)


async def test_budget_refills_with_loop_time(virtual_clock: VirtualClock) -> None:
    budget = corral.RetryBudget(ratio=0.1, min_per_second=0.5, capacity=3)
    policy = corral.retry(attempts=2, wait_initial=0.01, wait_jitter=False, budget=budget)
    always = Flaky(1000)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await policy(always)()
    assert budget.statistics().denied == 1
    await asyncio.sleep(4)  # +2 tokens
    with pytest.raises(ConnectionError):
        await policy(always)()
    assert budget.statistics().retries == 2


async def test_before_sleep_hook_sees_each_failure(virtual_clock: VirtualClock) -> None:
    infos: list[corral.AttemptInfo] = []
    awaited: list[int] = []

    async def async_hook(info: corral.AttemptInfo) -> None:
        awaited.append(info.attempt)

    flaky = Flaky(2)
    await corral.retry(wait_initial=1, wait_jitter=False, before_sleep=infos.append)(flaky)()
    assert [(i.attempt, str(i.error), i.wait) for i in infos] == [
        (1, "failure 1", 1.0),
        (2, "failure 2", 2.0),
    ]
    await corral.retry(wait_jitter=False, before_sleep=async_hook)(Flaky(2))()
    assert awaited == [1, 2]


async def test_retrying_loop_form(virtual_clock: VirtualClock) -> None:
    flaky = Flaky(2)
    numbers = []
    async for attempt in corral.retrying(wait_initial=1, wait_jitter=False):
        with attempt:
            numbers.append(attempt.number)
            result = await flaky(5)
    assert result == 10
    assert numbers == [1, 2, 3]
    assert gaps(flaky.times) == [1.0, 2.0]

    failing = Flaky(5)
    with pytest.raises(ConnectionError, match="failure 2"):
        async for attempt in corral.retrying(attempts=2, wait_jitter=False):
            with attempt:
                await failing()

    with pytest.raises(KeyError):
        async for attempt in corral.retrying(on=ConnectionError):
            with attempt:
                await Flaky(5, KeyError)()


async def test_retrying_loop_timeout(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(DeadlineExceeded, match="during attempt 1"):
        async for attempt in corral.retrying(timeout=3):
            with attempt:
                await asyncio.sleep(10)
    assert loop.time() == 3.0


async def test_retry_without_waits_keeps_retries_but_not_sleeps(
    virtual_clock: VirtualClock,
) -> None:
    infos: list[corral.AttemptInfo] = []
    flaky = Flaky(3)
    policy = corral.retry(attempts=4, wait_initial=60, before_sleep=infos.append)
    with retry_without_waits():
        with retry_without_waits():
            pass
        assert await policy(flaky)() == 2
    assert flaky.times == [0.0, 0.0, 0.0, 0.0]
    assert [info.wait for info in infos] == [0.0, 0.0, 0.0]
    again = Flaky(1)
    await corral.retry(wait_initial=60, wait_max=60, wait_jitter=False)(again)()
    assert gaps(again.times) == [60.0]


async def test_statistics_and_repr(virtual_clock: VirtualClock) -> None:
    policy = corral.retry(attempts=4, timeout=9, wait_jitter=False)
    await policy(Flaky(1))()
    assert repr(policy) == (
        "<Retry 4 attempts, wait 0.1s x2 up to 5s (no jitter), timeout 9s; "
        "1 calls, 1 retries, 0 gave up>"
    )
    loop = policy.retrying()
    assert repr(loop).startswith("<Retrying attempt 0 of <Retry 4 attempts")
    async for attempt in loop:
        assert repr(attempt) == "<Attempt 1>"
        with attempt:
            pass
    assert loop.attempt == 1
    assert "unlimited attempts" in repr(corral.retry(attempts=None))


def test_decorator_keeps_the_function_name() -> None:
    @corral.retry()
    async def fetch(value: int) -> int:
        """Fetch it."""
        return value

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch it."


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"attempts": 0}, InvalidArgumentError, "attempts must be at least 1, got 0"),
        ({"attempts": 2.5}, ArgumentTypeError, "attempts must be an int"),
        ({"attempts": True}, ArgumentTypeError, "attempts must be an int"),
        ({"timeout": 0}, InvalidArgumentError, "timeout must be a finite duration above zero"),
        ({"timeout": -1}, InvalidArgumentError, "timeout must not be negative"),
        ({"timeout": math.nan}, InvalidArgumentError, "timeout must be a number of seconds"),
        ({"wait_initial": 0}, InvalidArgumentError, "wait_initial must be a finite"),
        ({"wait_max": math.inf}, InvalidArgumentError, "wait_max must be a finite"),
        ({"wait_initial": "1"}, ArgumentTypeError, "wait_initial must be seconds"),
        ({"backoff": 0.5}, InvalidArgumentError, "backoff must be a finite factor"),
        ({"backoff": math.nan}, InvalidArgumentError, "backoff must be a finite factor"),
        ({"backoff": "2"}, ArgumentTypeError, "backoff must be a number"),
        ({"wait_jitter": 0.5}, ArgumentTypeError, "wait_jitter must be True, False"),
        ({"on": ()}, InvalidArgumentError, "on must name at least one exception type"),
        ({"on": 3}, ArgumentTypeError, "on must be an exception type"),
        ({"on": (ValueError, 3)}, ArgumentTypeError, "on must be an exception type"),
        ({"budget": 0.2}, ArgumentTypeError, "budget must be a corral.RetryBudget"),
        ({"before_sleep": 1}, ArgumentTypeError, "before_sleep must be callable"),
    ],
)
def test_bad_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        corral.retry(**kwargs)
    with pytest.raises(error, match=message):
        corral.retrying(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ratio": 0}, InvalidArgumentError, "ratio must be greater than zero, got 0"),
        ({"ratio": -0.1}, InvalidArgumentError, "ratio must be greater than zero"),
        ({"ratio": math.nan}, InvalidArgumentError, "ratio must be a finite number"),
        ({"ratio": "a"}, ArgumentTypeError, "ratio must be a number, not str"),
        ({"min_per_second": -1}, InvalidArgumentError, "min_per_second must not be negative"),
        ({"capacity": 0.5}, InvalidArgumentError, "capacity must be at least 1 token"),
    ],
)
def test_bad_budget_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        corral.RetryBudget(**kwargs)


async def test_decorating_a_coroutine_object_is_refused() -> None:
    async def work() -> None:
        pass

    coro = work()
    with pytest.raises(ArgumentTypeError, match="got a coroutine object"):
        corral.retry()(coro)  # type: ignore[arg-type]
    await coro
    with pytest.raises(ArgumentTypeError, match="decorates an async function, not 3"):
        corral.retry()(3)  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def task_parked(self, task: object, on: object) -> None:
        self.seen.append(("parked", on))

    def task_woken(self, task: object, on: object) -> None:
        self.seen.append(("woken", on))

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, corral.Retry):
            self.seen.append((name, {k: v for k, v in fields.items() if k != "error"}))


async def test_instruments_see_waits_retries_and_giving_up(virtual_clock: VirtualClock) -> None:
    recorder = Recorder()
    policy = corral.retry(attempts=2, wait_initial=1, wait_jitter=False)
    corral.INSTRUMENTS.add(recorder)
    try:
        with pytest.raises(ConnectionError):
            await policy(Flaky(5))()
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.seen == [
        ("retry", {"attempt": 1, "wait": 1.0}),
        ("parked", policy),
        ("woken", policy),
        ("gave_up", {"attempts": 2, "reason": "no attempts left"}),
    ]


async def test_a_failing_hook_propagates_and_returns_the_token(
    virtual_clock: VirtualClock,
) -> None:
    budget = corral.RetryBudget(min_per_second=0)

    def broken(info: corral.AttemptInfo) -> None:
        raise RuntimeError("hook broke")

    flaky = Flaky(5)
    with pytest.raises(RuntimeError, match="hook broke"):
        await corral.retry(budget=budget, before_sleep=broken)(flaky)()
    assert len(flaky.times) == 1
    assert budget.statistics().retries == 0
    assert budget.statistics().balance == 1.2


async def test_retry_without_waits_works_on_real_loops() -> None:
    policy = corral.retry(attempts=5, wait_initial=3600, wait_max=3600, wait_jitter=False)
    with corral.move_on_after(600):
        # an hour's wait would pass the deadline, so the policy gives up at once...
        with pytest.raises(ConnectionError, match="failure 1"):
            await policy(Flaky(4))()
        # ...unless waits are off: then all five attempts run
        with retry_without_waits():
            assert await policy(Flaky(4))() == 2


@given(
    wait_initial=st.floats(min_value=0.001, max_value=10),
    wait_max=st.floats(min_value=0.001, max_value=60),
    backoff=st.floats(min_value=1, max_value=4),
    failures=st.integers(min_value=0, max_value=8),
    seed=st.one_of(st.none(), st.integers(min_value=0, max_value=2**32)),
)
def test_waits_stay_under_the_backoff_ceilings(
    wait_initial: float, wait_max: float, backoff: float, failures: int, seed: int | None
) -> None:
    """Every wait is the ceiling ``min(wait_max, wait_initial * backoff**n)`` without
    jitter, and lies in ``[0, ceiling]`` with it; the clock moves by exactly the waits."""
    infos: list[corral.AttemptInfo] = []
    jitter: bool | random.Random = False if seed is None else random.Random(seed)

    async def main() -> None:
        flaky = Flaky(failures)
        policy = corral.retry(
            attempts=None,
            wait_initial=wait_initial,
            wait_max=wait_max,
            backoff=backoff,
            wait_jitter=jitter,
            before_sleep=infos.append,
        )
        assert await policy(flaky)() == 2
        waits = [info.wait for info in infos]
        assert len(waits) == failures
        assert gaps(flaky.times) == pytest.approx(waits, abs=1e-6)
        ceiling = min(wait_initial, wait_max)
        for wait in waits:
            if seed is None:
                assert wait == pytest.approx(ceiling)
            else:
                assert 0 <= wait <= ceiling
            ceiling = min(wait_max, ceiling * backoff)

    corral.testing.run(main)
