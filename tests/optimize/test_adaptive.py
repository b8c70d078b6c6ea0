"""AdaptiveLimiter: convergence against a simulated server, signals, cancellation, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
from corral import (
    AIMD,
    AdaptiveLimiter,
    AdaptiveLimiterStatistics,
    AdaptiveToken,
    Gradient,
    LimitAlgorithm,
)
from corral.errors import (
    ArgumentTypeError,
    DeadlineExceeded,
    InvalidArgumentError,
    UsageError,
    WouldBlock,
)
from corral.testing import VirtualClock, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")

BASE_LATENCY = 0.1


class Overloaded(Exception):
    """The simulated server shed a request."""


class Server:
    """Serves ``capacity`` requests at once at base latency; beyond that, work queues.

    A request's latency is ``base * max(1, in_flight / capacity)`` (fixed when it
    arrives). With ``fail_above``, a request arriving while more than that many are in
    flight fails fast with :class:`Overloaded`.
    """

    def __init__(self, capacity: int, *, fail_above: int | None = None) -> None:
        self.capacity = capacity
        self.base = BASE_LATENCY
        self.fail_above = fail_above
        self.broken = False
        self.in_flight = 0
        self.latencies: list[float] = []
        self.errors = 0

    async def handle(self) -> None:
        self.in_flight += 1
        try:
            if self.broken or (self.fail_above is not None and self.in_flight > self.fail_above):
                await asyncio.sleep(self.base / 10)
                self.errors += 1
                raise Overloaded
            latency = self.base * max(1.0, self.in_flight / self.capacity)
            await asyncio.sleep(latency)
            self.latencies.append(latency)
        finally:
            self.in_flight -= 1

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(len(ordered) * 0.99)]


async def hammer(
    server: Server,
    limiter: AdaptiveLimiter | None,
    *,
    clients: int,
    seconds: float,
    every: float = 1.0,
) -> list[int]:
    """Run ``clients`` loops of requests for ``seconds``; return the limit every ``every``."""
    trace: list[int] = []

    async def client() -> None:
        while True:
            try:
                if limiter is None:
                    await server.handle()
                else:
                    async with limiter:
                        await server.handle()
            except Overloaded:
                await asyncio.sleep(BASE_LATENCY / 10)

    async def watch() -> None:
        while True:
            await asyncio.sleep(every)
            trace.append(server.in_flight if limiter is None else limiter.limit)

    with corral.move_on_after(seconds):
        async with corral.TaskGroup() as tg:
            for _ in range(clients):
                tg.start_soon(client)
            tg.start_soon(watch)
    return trace


def aimd() -> AIMD:
    return AIMD(latency_threshold=1.3 * BASE_LATENCY)


ALGORITHMS: dict[str, Callable[[], LimitAlgorithm]] = {"aimd": aimd, "gradient": Gradient}


def settled_band(name: str, capacity: int) -> tuple[float, float]:
    """Where each algorithm's limit must stay once it has converged."""
    if name == "aimd":  # saw-tooth below 1.3 x capacity, the latency threshold
        return 0.9 * 1.1 * capacity, 1.3 * capacity + 1
    # 1.2 x capacity (tolerance) plus the sqrt(limit) queue allowance; the periodic
    # re-measurement of the no-load RTT dips to about the capacity
    return 0.95 * capacity, 1.2 * capacity + math.sqrt(1.5 * capacity) + 1


# -- convergence -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALGORITHMS)
async def test_converges_near_the_capacity_of_a_server_that_queues(name: str) -> None:
    server = Server(capacity=50)
    limiter = AdaptiveLimiter(ALGORITHMS[name](), initial=10, max_limit=1000)
    trace = await hammer(server, limiter, clients=500, seconds=60)
    low, high = settled_band(name, 50)
    settled = trace[15:]  # after 15 s: ramped up from 10
    assert trace[0] < low
    assert all(low <= limit <= high for limit in settled), (low, high, trace)
    adaptive_p99 = server.p99()
    assert adaptive_p99 <= 1.4 * BASE_LATENCY

    unbounded = Server(capacity=50)
    await hammer(unbounded, None, clients=500, seconds=10)
    assert unbounded.p99() == 10 * BASE_LATENCY  # 500 in flight on a capacity of 50
    assert adaptive_p99 < unbounded.p99() / 5


@settings(max_examples=8, deadline=None)
@given(capacity=st.integers(5, 80), name=st.sampled_from(sorted(ALGORITHMS)))
def test_converges_for_any_capacity(capacity: int, name: str) -> None:
    async def main() -> tuple[list[int], float]:
        server = Server(capacity)
        limiter = AdaptiveLimiter(ALGORITHMS[name](), initial=capacity // 4 + 1)
        trace = await hammer(server, limiter, clients=4 * capacity, seconds=40)
        return trace, server.p99()

    trace, p99 = corral.testing.run(main)
    low, high = settled_band(name, capacity)
    assert all(low <= limit <= high for limit in trace[25:]), (low, high, trace)
    assert p99 <= BASE_LATENCY * high / capacity


@pytest.mark.parametrize("name", ALGORITHMS)
def test_the_same_run_gives_the_same_limits_on_virtual_time(name: str) -> None:
    async def main() -> list[int]:
        limiter = AdaptiveLimiter(ALGORITHMS[name](), initial=5)
        return await hammer(Server(20), limiter, clients=100, seconds=15, every=0.25)

    first = corral.testing.run(main)
    assert corral.testing.run(main) == first
    assert len(set(first)) > 5  # it did move


@pytest.mark.parametrize("name", ALGORITHMS)
async def test_errors_cut_the_limit_and_it_recovers_when_the_server_heals(name: str) -> None:
    server = Server(capacity=30)
    limiter = AdaptiveLimiter(ALGORITHMS[name](), initial=10)
    before = await hammer(server, limiter, clients=200, seconds=20)
    assert before[-1] >= 30
    server.broken = True
    broken = await hammer(server, limiter, clients=200, seconds=10)
    assert broken[-1] == 1  # every request fails: down to min_limit
    stats = limiter.statistics()
    assert stats.drops == server.errors > 0
    server.broken = False
    healed = await hammer(server, limiter, clients=200, seconds=40)
    low, high = settled_band(name, 30)
    assert all(low <= limit <= high for limit in healed[-10:]), healed


@pytest.mark.parametrize("name", ALGORITHMS)
async def test_errors_from_an_overloaded_server_keep_the_limit_below_the_failure_point(
    name: str,
) -> None:
    # no latency signal at all: the server fails beyond 40 in flight, at base latency
    server = Server(capacity=1000, fail_above=40)
    limiter = AdaptiveLimiter(ALGORITHMS[name](), initial=10)
    trace = await hammer(server, limiter, clients=300, seconds=60)
    assert all(25 <= limit <= 45 for limit in trace[20:]), trace
    assert limiter.statistics().drops < limiter.statistics().samples / 20


@pytest.mark.parametrize("name", ALGORITHMS)
async def test_the_limit_stays_within_its_bounds(name: str) -> None:
    server = Server(capacity=50)
    capped = AdaptiveLimiter(ALGORITHMS[name](), initial=5, min_limit=3, max_limit=20)
    trace = await hammer(server, capped, clients=200, seconds=20)
    assert max(trace) == 20
    assert all(3 <= limit <= 20 for limit in trace)
    assert capped.statistics().in_flight == 0
    server.broken = True
    floored = AdaptiveLimiter(ALGORITHMS[name](), initial=20, min_limit=3, max_limit=20)
    trace = await hammer(server, floored, clients=200, seconds=20)
    assert trace[-1] == 3
    assert min(trace) == 3


async def test_gradient_relearns_the_no_load_latency_of_a_server_that_got_slower() -> None:
    server = Server(capacity=40)
    limiter = AdaptiveLimiter(Gradient(probe_interval=10), initial=10)
    await hammer(server, limiter, clients=300, seconds=20)
    assert limiter.statistics().no_load_rtt == pytest.approx(BASE_LATENCY)
    server.base = 3 * BASE_LATENCY  # for good: queueing is not the cause
    trace = await hammer(server, limiter, clients=300, seconds=60)
    assert min(trace) < 20  # it first took the slowdown for queueing...
    assert limiter.statistics().no_load_rtt == pytest.approx(3 * BASE_LATENCY)
    low, high = settled_band("gradient", 40)
    assert all(low <= limit <= high for limit in trace[-20:]), trace  # ...then relearned


async def test_aimd_grows_one_per_round_trip_only_while_busy(virtual_clock: VirtualClock) -> None:
    limiter = AdaptiveLimiter(AIMD(), initial=10)
    for _ in range(50):  # one at a time: never busy, never grows
        async with limiter:
            await asyncio.sleep(BASE_LATENCY)
    assert limiter.limit == 10
    trace = await hammer(Server(1000), limiter, clients=100, seconds=1.05)
    assert trace in ([19], [20])  # ten round trips of 0.1 s, about one more token each


async def test_aimd_cuts_once_per_round_trip_for_a_wave_of_failures() -> None:
    limiter = AdaptiveLimiter(AIMD(backoff=0.5), initial=16)

    async def fail() -> None:
        async with limiter:
            await asyncio.sleep(BASE_LATENCY)
            raise Overloaded

    async with corral.TaskGroup() as tg:
        for _ in range(16):
            tg.start_soon(_swallow, fail)
    assert limiter.limit == 8  # 16 failures of one wave: one cut
    await asyncio.sleep(0.01)
    await _swallow(fail)
    assert limiter.limit == 4  # work started after the cut cuts again
    assert limiter.statistics().drops == 17


async def _swallow(fn: Callable[[], Any]) -> None:
    with contextlib.suppress(Overloaded):
        await fn()


# -- the limiter surface ---------------------------------------------------------------


class Recorder:
    """An instrument that keeps the adaptive limiter's events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, AdaptiveLimiter):
            self.events.append((name, dict(fields)))


class Scripted(LimitAlgorithm):
    """Returns the limits it is given, one per sample, and records what it saw."""

    def __init__(self, *limits: float) -> None:
        self.limits = list(limits)
        self.seen: list[tuple[float, float, float, int, bool]] = []

    def update(
        self, limit: float, started: float, rtt: float, in_flight: int, dropped: bool
    ) -> float:
        self.seen.append((limit, started, rtt, in_flight, dropped))
        return self.limits.pop(0)


async def test_times_the_block_and_reports_what_the_algorithm_sees(
    virtual_clock: VirtualClock,
) -> None:
    algorithm = Scripted(2, 2)
    limiter = AdaptiveLimiter(algorithm, initial=2)
    await asyncio.sleep(3)
    async with limiter as token:
        assert isinstance(token, AdaptiveToken)
        assert token.started == 3
        async with limiter:
            assert limiter.statistics().in_flight == 2
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
    assert algorithm.seen == [(2.0, 3.0, 0.5, 2, False), (2.0, 3.0, 1.5, 1, False)]
    assert limiter.statistics() == AdaptiveLimiterStatistics(
        limit=2,
        min_limit=1,
        max_limit=1000,
        in_flight=0,
        waiting=0,
        samples=2,
        drops=0,
        ignored=0,
        adjustments=0,
        last_rtt=1.5,
        no_load_rtt=None,
    )


async def test_an_escaping_error_is_a_drop_and_cancellation_is_not_measured() -> None:
    algorithm = Scripted(4)
    limiter = AdaptiveLimiter(algorithm, initial=4)
    with pytest.raises(Overloaded):
        async with limiter:
            raise Overloaded
    assert algorithm.seen[-1][-1] is True

    async def hold() -> None:
        async with limiter:
            await asyncio.sleep(10)

    task = asyncio.create_task(hold())
    await wait_all_tasks_blocked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = limiter.statistics()
    assert (stats.samples, stats.drops, stats.ignored, stats.in_flight) == (1, 1, 1, 0)
    assert len(algorithm.seen) == 1


@pytest.mark.parametrize(
    "on", [Overloaded, (TimeoutError, Overloaded), lambda error: isinstance(error, Overloaded)]
)
async def test_only_errors_matching_on_are_drops(on: Any) -> None:
    algorithm = Scripted(4)
    limiter = AdaptiveLimiter(algorithm, initial=4, on=on)
    with pytest.raises(KeyError):
        async with limiter:
            raise KeyError("not found: says nothing about overload")
    with pytest.raises(Overloaded):
        async with limiter:
            raise Overloaded
    assert [sample[-1] for sample in algorithm.seen] == [True]
    stats = limiter.statistics()
    assert (stats.samples, stats.drops, stats.ignored, stats.in_flight) == (1, 1, 1, 0)


async def test_a_failing_on_predicate_propagates_and_gives_the_token_back() -> None:
    def broken(error: Exception) -> bool:
        raise RuntimeError("predicate bug")

    limiter = AdaptiveLimiter(AIMD(), initial=1, on=broken)
    with pytest.raises(RuntimeError, match="predicate bug") as caught:
        async with limiter:
            raise Overloaded
    assert isinstance(caught.value.__context__, Overloaded)
    stats = limiter.statistics()
    assert (stats.in_flight, stats.samples, stats.ignored) == (0, 0, 1)


async def test_tokens_carry_explicit_drop_and_ignore_signals(virtual_clock: VirtualClock) -> None:
    algorithm = Scripted(3, 3)
    limiter = AdaptiveLimiter(algorithm, initial=3)
    async with limiter as token:
        token.dropped()  # e.g. an HTTP 503: nothing raised
    assert algorithm.seen[-1][-1] is True
    with pytest.raises(KeyError):
        async with limiter as token:
            token.ignore()  # e.g. a refused request that never reached the server
            raise KeyError("bad request")
    await asyncio.sleep(2)
    token = await limiter.acquire()
    assert repr(token) == "<AdaptiveToken held, succeeding, lent at 2>"
    token.dropped()
    assert repr(token) == "<AdaptiveToken held, dropped, lent at 2>"
    token.ignore()
    assert repr(token) == "<AdaptiveToken held, ignored, lent at 2>"
    limiter.release(token)
    assert repr(token) == "<AdaptiveToken given back, lent at 2>"
    with pytest.raises(UsageError, match="too late to say how the work went"):
        token.dropped()
    with pytest.raises(UsageError, match="was given back already"):
        async with limiter as token:
            limiter.release(token)
    assert limiter.in_flight == 0
    assert [sample[-1] for sample in algorithm.seen] == [True, False]
    stats = limiter.statistics()
    assert (stats.samples, stats.drops, stats.ignored) == (2, 1, 2)


async def test_acquire_nowait_release_and_misuse() -> None:
    limiter = AdaptiveLimiter(AIMD(), initial=1)
    other = AdaptiveLimiter(AIMD(), initial=1)
    token = limiter.acquire_nowait()
    with pytest.raises(WouldBlock, match="no token to lend"):
        limiter.acquire_nowait()
    with pytest.raises(UsageError, match="is not a token of this limiter"):
        other.release(token)
    with pytest.raises(UsageError, match="is not a token of this limiter"):
        limiter.release("token")  # type: ignore[arg-type]
    limiter.release(token)
    with pytest.raises(UsageError, match="was given back already"):
        limiter.release(token)
    with pytest.raises(UsageError, match="exited without a matching entry"):
        await limiter.__aexit__(None, None, None)
    assert limiter.in_flight == 0
    async with limiter, other:  # nested blocks of two limiters unwind in order
        assert (limiter.in_flight, other.in_flight) == (1, 1)
    assert (limiter.in_flight, other.in_flight) == (0, 0)


async def test_waiters_are_served_first_come_first_served() -> None:
    limiter = AdaptiveLimiter(Scripted(*[1] * 5), initial=1, max_limit=5)
    first = await limiter.acquire()
    order: list[int] = []

    async def wait_turn(i: int) -> None:
        async with limiter:
            order.append(i)
            await asyncio.sleep(0)

    async with corral.TaskGroup() as tg:
        for i in range(4):
            tg.start_soon(wait_turn, i)
        await wait_all_tasks_blocked()
        assert limiter.waiting == 4
        assert repr(limiter) == "<AdaptiveLimiter 1/1 in flight, 4 waiting, Scripted in [1, 5]>"
        limiter.release(first)
    assert order == [0, 1, 2, 3]


async def test_a_raised_limit_lets_waiters_in_and_is_reported() -> None:
    changes: list[tuple[int, int]] = []
    limiter = AdaptiveLimiter(
        Scripted(3.4, 0.2, 2.6), initial=1, max_limit=5, on_change=lambda *c: changes.append(c)
    )
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        held = await limiter.acquire()
        waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
        await wait_all_tasks_blocked()
        limiter.release(held)  # limit 1 -> 3: all three waiters get in
        tokens = [await waiter for waiter in waiters]
        assert (limiter.limit, limiter.in_flight, limiter.waiting) == (3, 3, 0)
        limiter.release(tokens[0])  # 0.2 is below min_limit: 1
        limiter.release(tokens[1])  # 2.6 rounds to 3
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert changes == [(1, 3), (3, 1), (1, 3)]
    assert [(fields["old"], fields["limit"]) for _, fields in recorder.events] == changes
    assert {name for name, _ in recorder.events} == {"limit_changed"}
    assert limiter.statistics().adjustments == 3


async def test_a_failing_hook_or_algorithm_still_gives_the_token_back() -> None:
    def boom(old: int, new: int) -> None:
        raise RuntimeError(f"hook saw {old} -> {new}")

    limiter = AdaptiveLimiter(Scripted(2, math.nan), initial=1, on_change=boom)
    with pytest.raises(RuntimeError, match="hook saw 1 -> 2"):
        async with limiter:
            pass
    assert (limiter.limit, limiter.in_flight) == (2, 0)
    with pytest.raises(UsageError, match="returned NaN as the new limit"):
        async with limiter:
            pass
    assert (limiter.limit, limiter.in_flight) == (2, 0)


async def test_a_cancelled_waiter_holds_nothing_and_waits_obey_deadlines(
    virtual_clock: VirtualClock,
) -> None:
    limiter = AdaptiveLimiter(AIMD(), initial=1, max_limit=1)
    held = limiter.acquire_nowait()
    waiter = asyncio.create_task(limiter.acquire())
    await wait_all_tasks_blocked()
    limiter.release(held)  # handed to the waiter...
    waiter.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (limiter.in_flight, limiter.waiting) == (0, 0)
    held = limiter.acquire_nowait()
    with corral.move_on_after(5) as scope:
        await limiter.acquire()
    assert scope.cancelled_caught
    assert virtual_clock.time() == 5
    with pytest.raises(DeadlineExceeded):
        with corral.fail_after(2):
            async with limiter:
                pass
    assert (limiter.in_flight, limiter.waiting) == (1, 0)
    limiter.release(held)


async def test_child_tasks_entering_inside_a_block_keep_their_own_tokens() -> None:
    limiter = AdaptiveLimiter(AIMD(), initial=5)

    async def child() -> None:
        async with limiter:
            await asyncio.sleep(0.1)

    async with limiter:
        async with corral.TaskGroup() as tg:
            for _ in range(3):
                tg.start_soon(child)
        assert limiter.in_flight == 1
    stats = limiter.statistics()
    assert (stats.in_flight, stats.samples) == (0, 4)


async def test_default_algorithm_initial_limit_and_gradient_estimate() -> None:
    limiter = AdaptiveLimiter()
    assert isinstance(limiter.algorithm, Gradient)
    assert limiter.limit == 10
    assert AdaptiveLimiter(min_limit=20, max_limit=30).limit == 20
    assert AdaptiveLimiter(max_limit=4).limit == 4
    assert limiter.statistics().no_load_rtt is None
    async with limiter:
        await asyncio.sleep(0.25)
    assert limiter.statistics().no_load_rtt == pytest.approx(0.25)
    assert repr(Gradient()) == (
        "Gradient(tolerance=1.2, smoothing=0.2, backoff=0.9, probe_interval=10)"
    )
    assert repr(AIMD()) == "AIMD(latency_threshold=None, backoff=0.9, increase=1)"
    assert repr(AIMD(latency_threshold=timedelta(milliseconds=250))).startswith(
        "AIMD(latency_threshold=0.25,"
    )


# -- random interleavings on the virtual loop ------------------------------------------

plans = st.lists(
    st.tuples(
        st.sampled_from(["ok", "raise", "drop", "ignore"]),
        st.integers(0, 4),  # tenths of a second the work takes
        st.none() | st.integers(0, 6),  # twentieths of a second until it is cancelled
    ),
    min_size=1,
    max_size=12,
)


async def run_plan(plan: list[tuple[str, int, int | None]]) -> None:
    limiter = AdaptiveLimiter(AIMD(latency_threshold=0.25), initial=2, max_limit=3)
    entered: list[int] = []
    expected = {"samples": 0, "drops": 0, "ignored": 0}
    running = peak = 0

    async def work(i: int, kind: str, tenths: int) -> None:
        nonlocal running, peak
        async with limiter as token:
            entered.append(i)
            running += 1
            peak = max(peak, running)
            outcome = {"drop": "drops", "ignore": "ignored"}.get(kind, "ignored")
            try:
                if kind == "drop":
                    token.dropped()
                elif kind == "ignore":
                    token.ignore()
                await asyncio.sleep(tenths / 10)
                outcome = {"ok": "samples", "raise": "drops"}.get(kind, outcome)
                if kind == "raise":
                    raise Overloaded
            finally:
                running -= 1
                expected[outcome] += 1

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(work(i, kind, tenths)) for i, (kind, tenths, _) in enumerate(plan)]
    for task, (_, _, cancel_at) in zip(tasks, plan, strict=True):
        if cancel_at is not None:
            loop.call_later(cancel_at / 20, task.cancel)
    with corral.fail_after(60):  # a leaked token would leave waiters stuck forever
        await asyncio.gather(*tasks, return_exceptions=True)
    stats = limiter.statistics()
    assert (stats.in_flight, stats.waiting) == (0, 0)  # no token leaked, nobody stuck
    assert entered == sorted(entered)  # first come, first served
    assert peak <= 3
    assert stats.samples == expected["samples"] + expected["drops"]
    assert (stats.drops, stats.ignored) == (expected["drops"], expected["ignored"])
    assert 1 <= stats.limit <= 3
    async with limiter:  # still usable
        pass


@settings(max_examples=150, deadline=None)
@given(plan=plans)
def test_interleavings_with_errors_and_cancellation_keep_order_and_every_token(
    plan: list[tuple[str, int, int | None]],
) -> None:
    corral.testing.run(run_plan, plan)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"min_limit": 5, "max_limit": 4}, InvalidArgumentError, "min_limit must not exceed"),
        ({"initial": 0}, InvalidArgumentError, "initial must be at least 1, got 0"),
        ({"initial": 50, "max_limit": 20}, InvalidArgumentError, r"initial must be within"),
        ({"initial": 2, "min_limit": 3}, InvalidArgumentError, r"\[3, 1000\], got 2"),
        ({"min_limit": 0}, InvalidArgumentError, "min_limit must be at least 1, got 0"),
        ({"max_limit": -1}, InvalidArgumentError, "max_limit must be at least 1, got -1"),
        ({"max_limit": math.nan}, InvalidArgumentError, "max_limit must be a whole number"),
        ({"initial": 2.5}, ArgumentTypeError, r"initial must be an int, not float \(2.5\)"),
        ({"min_limit": True}, ArgumentTypeError, "min_limit must be an int, not bool"),
        ({"algorithm": "aimd"}, ArgumentTypeError, "algorithm must be a corral.LimitAlgorithm"),
        ({"algorithm": AIMD}, ArgumentTypeError, "not ABCMeta"),
        ({"on_change": 3}, ArgumentTypeError, "on_change must be callable or None, not 3"),
        ({"on": ()}, InvalidArgumentError, "on must name at least one exception type"),
        ({"on": KeyboardInterrupt}, InvalidArgumentError, "on must name Exception subclasses"),
        ({"on": (ValueError, 3)}, ArgumentTypeError, "on must be an exception type"),
    ],
)
def test_bad_limiter_arguments_are_refused(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AdaptiveLimiter(**kwargs)


def test_an_algorithm_tunes_one_limiter_only() -> None:
    algorithm = AIMD()
    AdaptiveLimiter(algorithm)
    with pytest.raises(UsageError, match="already tunes <AdaptiveLimiter"):
        AdaptiveLimiter(algorithm)


@pytest.mark.parametrize(
    ("algorithm", "kwargs", "error", "message"),
    [
        (AIMD, {"latency_threshold": 0}, InvalidArgumentError, "latency_threshold must be"),
        (AIMD, {"latency_threshold": -1}, InvalidArgumentError, "must not be negative"),
        (AIMD, {"latency_threshold": math.nan}, InvalidArgumentError, "not NaN"),
        (AIMD, {"latency_threshold": "1s"}, ArgumentTypeError, "latency_threshold must be"),
        (AIMD, {"backoff": 1}, InvalidArgumentError, "backoff must be above 0 and below 1"),
        (AIMD, {"backoff": 0}, InvalidArgumentError, "backoff must be above 0 and below 1"),
        (AIMD, {"backoff": math.nan}, InvalidArgumentError, "backoff must be a number, not NaN"),
        (AIMD, {"backoff": "half"}, ArgumentTypeError, "backoff must be a number, not str"),
        (AIMD, {"increase": 0}, InvalidArgumentError, "increase must be a finite number above"),
        (AIMD, {"increase": math.inf}, InvalidArgumentError, "increase must be a finite"),
        (Gradient, {"tolerance": 0.9}, InvalidArgumentError, "tolerance must be a finite"),
        (Gradient, {"tolerance": math.nan}, InvalidArgumentError, "tolerance must be a number"),
        (Gradient, {"smoothing": 0}, InvalidArgumentError, "smoothing must be above 0 and at"),
        (Gradient, {"smoothing": 1.5}, InvalidArgumentError, "got 1.5"),
        (Gradient, {"smoothing": None}, ArgumentTypeError, "smoothing must be a number"),
        (Gradient, {"probe_interval": 0}, InvalidArgumentError, "probe_interval must be"),
        (Gradient, {"probe_interval": math.inf}, InvalidArgumentError, "finite duration"),
    ],
)
def test_bad_algorithm_arguments_are_refused(
    algorithm: type[LimitAlgorithm], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        algorithm(**kwargs)
