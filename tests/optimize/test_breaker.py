"""CircuitBreaker: windows, thresholds, open -> half-open -> closed, stores, bad input."""

from __future__ import annotations

import asyncio
import inspect
import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral import (
    BreakerAdmission,
    BreakerRules,
    CircuitBreaker,
    CircuitBreakerStatistics,
    CircuitState,
    CircuitStateChange,
    CircuitView,
    MemoryBreakerStore,
)
from corral.errors import (
    ArgumentTypeError,
    CircuitOpenError,
    CorralError,
    InvalidArgumentError,
    UsageError,
)
from corral.testing import VirtualClock, wait_all_tasks_blocked

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN


class Boom(Exception):
    pass


async def ok(value: int = 1) -> int:
    return value


async def fail(message: str = "boom") -> int:
    raise Boom(message)


async def run_calls(breaker: CircuitBreaker, outcomes: str) -> None:
    """Run one call per character: ``o`` succeeds, ``x`` fails with Boom."""
    for outcome in outcomes:
        if outcome == "o":
            await breaker.call(ok)
        else:
            with pytest.raises(Boom):
                await breaker.call(fail)


async def test_opens_when_the_failure_rate_reaches_the_threshold(
    virtual_clock: VirtualClock,
) -> None:
    changes: list[CircuitStateChange] = []
    breaker = CircuitBreaker(
        "db", window_calls=10, minimum_calls=4, failure_rate=0.5, on_state_change=changes.append
    )
    await run_calls(breaker, "oxo")  # 1/3 failed, and too few calls to count anyway
    assert repr(breaker) == "<CircuitBreaker 'db' closed, 1/3 failed>"
    await run_calls(breaker, "o")  # 1/4: under the threshold
    assert breaker.state is CLOSED
    await run_calls(breaker, "x")  # 2/5 = 40%
    assert breaker.state is CLOSED
    await run_calls(breaker, "x")  # 3/6 = 50%: opens
    assert breaker.state is OPEN
    assert repr(breaker) == "<CircuitBreaker 'db' open, probes in 30s>"
    assert changes == [
        CircuitStateChange("db", CLOSED, OPEN, 0.0, "failure rate 50% >= 50% over 6 calls")
    ]
    called = False

    async def spy() -> int:
        nonlocal called
        called = True
        return 1

    await asyncio.sleep(10)
    with pytest.raises(CircuitOpenError, match=r"'db' is open; .* in 20s") as caught:
        await breaker.call(spy)
    assert not called
    assert caught.value.retry_after == 20.0
    assert caught.value.breaker_name == "db"
    assert isinstance(caught.value, CorralError)
    assert breaker.statistics() == CircuitBreakerStatistics(
        name="db",
        state=OPEN,
        window_calls=0,
        failure_rate=0.0,
        slow_rate=0.0,
        calls=6,
        failures=3,
        slow_calls=0,
        rejected=1,
        state_changes=1,
    )


async def test_the_count_window_forgets_the_oldest_outcomes() -> None:
    breaker = CircuitBreaker(window_calls=4, minimum_calls=4, failure_rate=0.75)
    await run_calls(breaker, "xxoo")  # 2/4
    await run_calls(breaker, "oo")  # the two failures slid out: 0/4
    stats = breaker.statistics()
    assert (stats.window_calls, stats.failure_rate) == (4, 0.0)
    await run_calls(breaker, "xx")  # 2/4
    assert breaker.state is CLOSED
    await run_calls(breaker, "x")  # 3/4
    assert breaker.state is OPEN


async def test_the_time_window_forgets_outcomes_older_than_its_span(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(window_seconds=timedelta(seconds=10), minimum_calls=3)
    await run_calls(breaker, "xx")
    await asyncio.sleep(10)  # both failures leave the window
    assert breaker.statistics().window_calls == 0
    await run_calls(breaker, "oox")  # 1/3
    assert breaker.state is CLOSED
    await asyncio.sleep(5)
    await run_calls(breaker, "x")  # 2/4 = 50%
    assert breaker.state is OPEN


async def test_open_then_half_open_after_open_for_then_closed_by_probes(
    virtual_clock: VirtualClock,
) -> None:
    changes: list[CircuitStateChange] = []
    breaker = CircuitBreaker(
        "api",
        window_calls=2,
        open_for=30,
        half_open_probes=2,
        on_state_change=changes.append,
    )
    await run_calls(breaker, "xx")
    assert breaker.state is OPEN
    await asyncio.sleep(29.5)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after == pytest.approx(0.5)
    await asyncio.sleep(0.5)
    gate = asyncio.Event()

    async def probe() -> int:
        await gate.wait()
        return 7

    first = asyncio.create_task(breaker.call(probe))
    second = asyncio.create_task(breaker.call(probe))
    await wait_all_tasks_blocked()
    assert breaker.state is HALF_OPEN
    with pytest.raises(CircuitOpenError, match="half-open and all 2 probe slot"):
        await breaker.call(ok)  # both probe slots are taken
    gate.set()
    assert [await first, await second] == [7, 7]
    assert breaker.state is CLOSED
    assert [(c.previous, c.current, c.at, c.reason) for c in changes] == [
        (CLOSED, OPEN, 0.0, "failure rate 100% >= 50% over 2 calls"),
        (OPEN, HALF_OPEN, 30.0, "open_for passed"),
        (HALF_OPEN, CLOSED, 30.0, "2 probe(s) succeeded"),
    ]
    assert breaker.statistics().window_calls == 0  # closed with an empty window
    await run_calls(breaker, "x")  # one failure of one call: under minimum_calls=2
    assert breaker.state is CLOSED


async def test_a_failed_probe_opens_the_circuit_again(virtual_clock: VirtualClock) -> None:
    breaker = CircuitBreaker(window_calls=1, open_for=5)
    await run_calls(breaker, "x")
    await asyncio.sleep(5)
    await run_calls(breaker, "x")  # the probe fails
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after == 5.0  # a fresh open_for from the failed probe
    await asyncio.sleep(5)
    await run_calls(breaker, "o")
    assert breaker.state is CLOSED
    assert breaker.statistics().state_changes == 5


async def test_slow_calls_open_the_circuit(virtual_clock: VirtualClock) -> None:
    breaker = CircuitBreaker(window_calls=4, slow_after=2.0, slow_rate=0.5)

    async def slow(seconds: float) -> None:
        await asyncio.sleep(seconds)

    await breaker.call(slow, 1.9)
    await breaker.call(slow, 2.0)  # exactly slow_after counts as slow
    await breaker.call(slow, 0.1)
    assert breaker.state is CLOSED
    stats = breaker.statistics()
    assert stats.slow_calls == 1
    assert stats.slow_rate == pytest.approx(1 / 3)
    await breaker.call(slow, 5)  # 2/4 slow
    assert breaker.state is OPEN


async def test_a_slow_probe_opens_the_circuit_again(virtual_clock: VirtualClock) -> None:
    changes: list[CircuitStateChange] = []
    breaker = CircuitBreaker(
        window_calls=1, slow_after=1, open_for=1, on_state_change=changes.append
    )
    await run_calls(breaker, "x")
    await asyncio.sleep(1)
    await breaker.call(asyncio.sleep, 3)
    assert breaker.state is OPEN
    assert changes[-1].reason == "a probe was slow"


async def test_errors_that_on_rejects_pass_through_and_count_as_successes() -> None:
    breaker = CircuitBreaker(window_calls=2, on=ConnectionError)
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.state is CLOSED
    assert breaker.statistics().failure_rate == 0.0

    async def refused() -> None:
        raise ConnectionRefusedError

    predicate_breaker = CircuitBreaker(window_calls=1, on=lambda e: "fatal" in str(e))
    with pytest.raises(Boom):
        await predicate_breaker.call(fail, "harmless")
    assert predicate_breaker.state is CLOSED
    with pytest.raises(Boom):
        await predicate_breaker.call(fail, "fatal")
    assert predicate_breaker.state is OPEN
    with pytest.raises(ConnectionRefusedError):  # a subclass of ConnectionError
        await breaker.call(refused)
    assert breaker.state is OPEN  # 1 failure of the last 2 calls


async def test_cancellation_is_never_an_outcome_and_frees_a_probe_slot(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(window_calls=2, minimum_calls=1, open_for=1)
    for _ in range(3):
        task = asyncio.create_task(breaker.call(asyncio.sleep, 100))
        await wait_all_tasks_blocked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with corral.move_on_after(1):
        await breaker.call(asyncio.sleep, 100)
    stats = breaker.statistics()
    assert (stats.state, stats.window_calls, stats.calls, stats.failures) == (CLOSED, 0, 4, 0)
    await run_calls(breaker, "x")
    await asyncio.sleep(1)
    probe = asyncio.create_task(breaker.call(asyncio.sleep, 100))
    await wait_all_tasks_blocked()
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state is HALF_OPEN
    assert await breaker.call(ok, 5) == 5  # the cancelled probe's slot is free again
    assert breaker.state is CLOSED


async def test_a_timeout_inside_the_call_counts_as_a_failure(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(window_calls=1)

    async def too_slow() -> None:
        with corral.fail_after(1):
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await breaker.call(too_slow)
    assert breaker.state is OPEN


async def test_decorator_and_async_with_forms() -> None:
    breaker = CircuitBreaker("forms", window_calls=3, minimum_calls=3)

    @breaker
    async def add(a: int, *, b: int) -> int:
        """Add two numbers."""
        if a < 0:
            raise Boom
        return a + b

    assert await add(1, b=2) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    async with breaker:
        pass
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    assert breaker.statistics().window_calls == 3
    with pytest.raises(Boom):
        await add(-1, b=0)
    assert breaker.state is OPEN  # 2 of the last 3 failed
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("the block must not run")
    with pytest.raises(CircuitOpenError):
        await add(1, b=1)


async def test_async_with_nests_and_pairs_enter_and_exit_per_task(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(window_calls=10, slow_after=1)

    async def body(pause: float) -> None:
        async with breaker:
            await asyncio.sleep(pause)

    async with breaker:
        await asyncio.gather(body(2), body(0))
    stats = breaker.statistics()
    assert (stats.window_calls, stats.slow_calls) == (3, 2)
    with pytest.raises(UsageError, match="did not enter"):
        await breaker.__aexit__(None, None, None)


async def test_manual_open_close_and_reset(virtual_clock: VirtualClock) -> None:
    breaker = CircuitBreaker("manual", open_for=10)
    await breaker.open()
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after == 10.0
    await breaker.close()
    assert await breaker.call(ok, 3) == 3
    await breaker.open()
    await breaker.reset()
    assert breaker.statistics() == CircuitBreakerStatistics(
        name="manual",
        state=CLOSED,
        window_calls=0,
        failure_rate=0.0,
        slow_rate=0.0,
        calls=0,
        failures=0,
        slow_calls=0,
        rejected=0,
        state_changes=0,
    )


async def test_a_failing_hook_goes_to_the_exception_handler() -> None:
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: seen.append(context))

    def broken(change: CircuitStateChange) -> None:
        raise RuntimeError("hook broke")

    try:
        breaker = CircuitBreaker(window_calls=1, on_state_change=broken)
        await run_calls(breaker, "x")  # the caller still sees its own error
    finally:
        loop.set_exception_handler(previous)
    assert breaker.state is OPEN
    assert [str(context["exception"]) for context in seen] == ["hook broke"]


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, CircuitBreaker):
            self.seen.append((name, fields))


async def test_instruments_see_state_changes_and_rejections(virtual_clock: VirtualClock) -> None:
    recorder = Recorder()
    breaker = CircuitBreaker(window_calls=1, open_for=2)
    corral.INSTRUMENTS.add(recorder)
    try:
        await run_calls(breaker, "x")
        with pytest.raises(CircuitOpenError):
            await breaker.call(ok)
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.seen == [
        (
            "state_change",
            {
                "previous": "closed",
                "current": "open",
                "reason": "failure rate 100% >= 50% over 1 calls",
            },
        ),
        ("rejected", {"state": "open", "retry_after": 2.0}),
    ]


class AwaitingStore:
    """A BreakerStore whose steps await, backed by one shared memory store."""

    def __init__(self, shared: MemoryBreakerStore) -> None:
        self.shared = shared
        self.steps: list[str] = []

    async def acquire(self, name: str, rules: BreakerRules, now: float) -> BreakerAdmission:
        await asyncio.sleep(0)
        self.steps.append("acquire")
        return self.shared.acquire(name, rules, now)

    async def record(
        self,
        name: str,
        rules: BreakerRules,
        now: float,
        generation: int,
        *,
        failed: bool,
        slow: bool,
    ) -> CircuitView:
        await asyncio.sleep(0)
        self.steps.append("record")
        return self.shared.record(name, rules, now, generation, failed=failed, slow=slow)

    async def release(self, name: str, rules: BreakerRules, generation: int) -> None:
        self.steps.append("release")
        self.shared.release(name, rules, generation)

    async def force(
        self, name: str, rules: BreakerRules, now: float, state: CircuitState
    ) -> CircuitView:
        self.steps.append("force")
        return self.shared.force(name, rules, now, state)

    async def view(self, name: str, rules: BreakerRules, now: float) -> CircuitView:
        return self.shared.view(name, rules, now)


async def test_breakers_that_share_a_store_and_a_name_share_one_circuit(
    virtual_clock: VirtualClock,
) -> None:
    shared = MemoryBreakerStore()
    here_changes: list[CircuitStateChange] = []
    here = CircuitBreaker(
        "svc", window_calls=2, store=AwaitingStore(shared), on_state_change=here_changes.append
    )
    there_store = AwaitingStore(shared)
    there = CircuitBreaker("svc", window_calls=2, store=there_store)
    other = CircuitBreaker("other", window_calls=2, store=AwaitingStore(shared))
    await run_calls(there, "xx")
    assert there.state is OPEN
    with pytest.raises(CircuitOpenError):
        await here.call(ok)  # opened by the other breaker
    assert here.state is OPEN
    assert await other.call(ok, 2) == 2  # another name, another circuit
    await there.close()
    task = asyncio.create_task(here.call(asyncio.sleep, 10))
    await wait_all_tasks_blocked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert there_store.steps == ["acquire", "record", "acquire", "record", "force"]
    assert repr(shared) == "<MemoryBreakerStore 2 circuits>"
    assert here.statistics().state is CLOSED  # the last answer it had from the store
    assert [(c.previous, c.current, c.reason) for c in here_changes] == [
        (CLOSED, OPEN, "changed by another user of the store"),
        (OPEN, CLOSED, "changed by another user of the store"),
    ]


async def test_a_store_must_be_all_coroutines_or_all_plain() -> None:
    class Mixed(MemoryBreakerStore):
        async def view(  # type: ignore[override]
            self, name: str, rules: BreakerRules, now: float
        ) -> CircuitView:
            return super().view(name, rules, now)

    with pytest.raises(ArgumentTypeError, match="mixes coroutine and plain"):
        CircuitBreaker(store=Mixed())  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="store must be a BreakerStore"):
        CircuitBreaker(store=object())  # type: ignore[arg-type]


async def test_a_coroutine_object_is_refused_and_closed() -> None:
    breaker = CircuitBreaker()
    coroutine = ok()
    with pytest.raises(ArgumentTypeError, match="not a coroutine object"):
        await breaker.call(coroutine)  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coroutine) == "CORO_CLOSED"  # so it never warns
    with pytest.raises(ArgumentTypeError, match="coroutine object"):
        breaker(ok())  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="async function"):
        await breaker.call(42)  # type: ignore[arg-type]
    assert breaker.statistics().calls == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"failure_rate": 0}, InvalidArgumentError, "failure_rate must be a fraction in"),
        ({"failure_rate": 1.5}, InvalidArgumentError, "failure_rate"),
        ({"failure_rate": math.nan}, InvalidArgumentError, "failure_rate .* nan"),
        ({"slow_rate": -0.1}, InvalidArgumentError, "slow_rate"),
        ({"slow_rate": "half"}, ArgumentTypeError, "slow_rate"),
        ({"failure_rate": True}, ArgumentTypeError, "failure_rate"),
        ({"window_calls": 0}, InvalidArgumentError, "window_calls must be at least 1"),
        ({"window_calls": 2.5}, ArgumentTypeError, "window_calls must be an int"),
        ({"window_seconds": 0}, InvalidArgumentError, "window_seconds"),
        ({"window_seconds": math.nan}, InvalidArgumentError, "window_seconds"),
        ({"window_seconds": math.inf}, InvalidArgumentError, "window_seconds"),
        ({"window_calls": 5, "window_seconds": 5}, InvalidArgumentError, "not both"),
        ({"minimum_calls": 0}, InvalidArgumentError, "minimum_calls must be at least 1"),
        ({"window_calls": 5, "minimum_calls": 6}, InvalidArgumentError, "minimum_calls"),
        ({"open_for": -1}, InvalidArgumentError, "open_for must not be negative"),
        ({"open_for": 0}, InvalidArgumentError, "open_for"),
        ({"open_for": math.nan}, InvalidArgumentError, "open_for"),
        ({"slow_after": -2}, InvalidArgumentError, "slow_after"),
        ({"slow_after": "1s"}, ArgumentTypeError, "slow_after"),
        ({"half_open_probes": 0}, InvalidArgumentError, "half_open_probes"),
        ({"on": KeyboardInterrupt}, InvalidArgumentError, "on must name Exception"),
        ({"on": 3}, ArgumentTypeError, "on must be"),
        ({"on_state_change": 3}, ArgumentTypeError, "on_state_change must be callable"),
        ({"name": ""}, ArgumentTypeError, "name"),
    ],
)
def test_bad_arguments_are_refused_with_their_name(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CircuitBreaker(**kwargs)


def test_time_based_windows_take_at_least_ten_calls_by_default() -> None:
    rules = CircuitBreaker(window_seconds=60)._rules
    assert (rules.window_calls, rules.window_seconds, rules.minimum_calls) == (None, 60.0, 10)
    assert CircuitBreaker(window_calls=3)._rules.minimum_calls == 3


@given(
    outcomes=st.lists(st.booleans(), max_size=40),
    window=st.integers(min_value=1, max_value=8),
    minimum=st.integers(min_value=1, max_value=8),
    rate=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
)
def test_opens_exactly_when_the_last_calls_cross_the_threshold(
    outcomes: list[bool], window: int, minimum: int, rate: float
) -> None:
    """Against a model: the circuit opens at the first call after which the last
    ``window`` outcomes number at least ``minimum`` and their failure share reaches
    ``rate``, and not before."""
    minimum = min(minimum, window)

    async def main() -> None:
        breaker = CircuitBreaker(
            window_calls=window, minimum_calls=minimum, failure_rate=rate, open_for=1
        )
        history: list[bool] = []
        for failed in outcomes:
            if breaker.state is OPEN:
                with pytest.raises(CircuitOpenError):
                    await breaker.call(ok)
                return
            history.append(failed)
            last = history[-window:]
            expect_open = len(last) >= minimum and sum(last) >= rate * len(last)
            if failed:
                with pytest.raises(Boom):
                    await breaker.call(fail)
            else:
                await breaker.call(ok)
            assert (breaker.state is OPEN) == expect_open

    corral.testing.run(main)


async def test_an_outcome_from_before_a_state_change_is_ignored(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(window_calls=2, minimum_calls=1)
    slow_success = asyncio.create_task(breaker.call(asyncio.sleep, 5, "late"))
    slow_failure = asyncio.create_task(breaker.call(fail))
    await wait_all_tasks_blocked()
    with pytest.raises(Boom):
        await slow_failure
    assert breaker.state is OPEN
    assert await slow_success == "late"  # admitted while closed: it does not count now
    assert breaker.state is OPEN
    stats = breaker.statistics()
    assert (stats.calls, stats.window_calls) == (2, 0)


class RecordingStore(MemoryBreakerStore):
    """A synchronous store of its own: the breaker goes through every step."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[str] = []

    def acquire(self, name: str, rules: BreakerRules, now: float) -> BreakerAdmission:
        self.steps.append("acquire")
        return super().acquire(name, rules, now)

    def record(
        self,
        name: str,
        rules: BreakerRules,
        now: float,
        generation: int,
        *,
        failed: bool,
        slow: bool,
    ) -> CircuitView:
        self.steps.append(f"record failed={failed} slow={slow}")
        return super().record(name, rules, now, generation, failed=failed, slow=slow)

    def release(self, name: str, rules: BreakerRules, generation: int) -> None:
        self.steps.append("release")
        super().release(name, rules, generation)


async def test_a_synchronous_store_of_your_own_sees_every_step(
    virtual_clock: VirtualClock,
) -> None:
    store = RecordingStore()
    breaker = CircuitBreaker("own", window_calls=2, store=store, open_for=1)
    assert (breaker.name, breaker.store) == ("own", store)
    await run_calls(breaker, "ox")
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    await asyncio.sleep(1)
    probe = asyncio.create_task(breaker.call(asyncio.sleep, 10))
    await wait_all_tasks_blocked()
    assert repr(breaker) == "<CircuitBreaker 'own' half-open, 0/1 probes succeeded>"
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert store.steps == [
        "acquire",
        "record failed=False slow=False",
        "acquire",
        "record failed=True slow=False",
        "acquire",
        "acquire",
        "release",
    ]


async def test_breakers_sharing_a_memory_store_see_each_others_changes(
    virtual_clock: VirtualClock,
) -> None:
    store = MemoryBreakerStore()
    first = CircuitBreaker("shared", window_calls=1, open_for=1, store=store)
    second = CircuitBreaker("shared", window_calls=1, open_for=1, store=store)
    await run_calls(second, "x")
    with pytest.raises(CircuitOpenError):
        await first.call(ok)
    await asyncio.sleep(1)
    await run_calls(second, "x")  # a failed probe: open again, a new generation
    with pytest.raises(CircuitOpenError):
        await first.call(ok)
    assert first.statistics().state_changes == 1  # open, then open again: one change
    await asyncio.sleep(1)
    assert await first.call(ok, 9) == 9  # the probe, through the first breaker
    assert second.state is OPEN  # as it last saw it...
    assert await second.call(ok, 8) == 8  # ...until its next call
    assert second.state is CLOSED


async def test_a_timed_breaker_keeps_counting_once_its_window_is_full(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(window_calls=2, slow_after=1, failure_rate=1.0)
    await run_calls(breaker, "oooxox")
    stats = breaker.statistics()
    assert (stats.state, stats.window_calls, stats.failure_rate) == (CLOSED, 2, 0.5)
    await run_calls(breaker, "x")
    assert breaker.state is OPEN
