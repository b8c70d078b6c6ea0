"""hedge / Hedge / LatencyPercentile: delays, first success wins, losers cancelled."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral import Hedge, HedgeStatistics, LatencyPercentile, LatencyPercentileStatistics
from corral.errors import ArgumentTypeError, InvalidArgumentError
from corral.testing import VirtualClock

pytestmark = pytest.mark.usefixtures("virtual_clock")


class Server:
    """Answers attempt ``i`` after ``latencies[i]`` seconds, or fails if it is negative."""

    def __init__(self, *latencies: float) -> None:
        self.latencies = list(latencies)
        self.started: list[float] = []
        self.cancelled: list[int] = []
        self.running = 0

    async def __call__(self, tag: str) -> str:
        loop = asyncio.get_running_loop()
        number = len(self.started)
        self.started.append(loop.time())
        latency = self.latencies[number]
        self.running += 1
        try:
            await asyncio.sleep(abs(latency))
        except asyncio.CancelledError:
            self.cancelled.append(number)
            raise
        finally:
            self.running -= 1
        if latency < 0:
            raise ConnectionError(f"attempt {number} failed")
        return f"{tag} from attempt {number}"


async def test_a_fast_first_attempt_is_never_hedged(virtual_clock: VirtualClock) -> None:
    server = Server(0.5)
    assert await corral.hedge(server, "page", delay=1) == "page from attempt 0"
    assert server.started == [0.0]
    assert virtual_clock.time() == 0.5


async def test_a_slow_first_attempt_is_hedged_and_the_loser_cancelled(
    virtual_clock: VirtualClock,
) -> None:
    server = Server(10, 0.5)
    policy = Hedge(delay=1)
    assert await policy.run(server, "page") == "page from attempt 1"
    assert server.started == [0.0, 1.0]
    assert virtual_clock.time() == 1.5
    assert server.cancelled == [0]
    assert server.running == 0  # the loser was awaited before the call returned
    assert policy.statistics() == HedgeStatistics(
        calls=1, attempts=2, hedged=1, won_by_hedge=1, failed=0
    )
    assert repr(policy) == "<Hedge after 1s, up to 2 attempts; 1 calls, 1 hedged, 1 won by a hedge>"


async def test_the_first_attempt_can_still_win_after_the_hedge_started(
    virtual_clock: VirtualClock,
) -> None:
    server = Server(1.5, 5)
    assert await corral.hedge(server, "x", delay=1) == "x from attempt 0"
    assert server.cancelled == [1]
    assert virtual_clock.time() == 1.5


async def test_a_failed_attempt_starts_the_next_one_at_once(virtual_clock: VirtualClock) -> None:
    server = Server(-0.2, 0.3)
    assert await corral.hedge(server, "x", delay=5) == "x from attempt 1"
    assert server.started == [0.0, 0.2]


async def test_a_failure_lets_the_other_attempts_continue(virtual_clock: VirtualClock) -> None:
    server = Server(3, -0.5, 4)
    assert await corral.hedge(server, "x", delay=1, max_attempts=3) == "x from attempt 0"
    # attempt 1 started at 1 and failed at 1.5, which started attempt 2 at once
    assert server.started == [0.0, 1.0, 1.5]
    assert server.cancelled == [2]


async def test_attempts_start_a_delay_apart(virtual_clock: VirtualClock) -> None:
    server = Server(10, 10, 0.1)
    assert await corral.hedge(server, "x", delay=2, max_attempts=3) == "x from attempt 2"
    assert server.started == [0.0, 2.0, 4.0]
    assert sorted(server.cancelled) == [0, 1]


async def test_when_every_attempt_fails_the_first_error_is_raised_with_a_note(
    virtual_clock: VirtualClock,
) -> None:
    server = Server(-5, -1)
    policy = Hedge(delay=1)
    with pytest.raises(ConnectionError, match="attempt 0 failed") as caught:
        await policy.run(server, "x")
    assert caught.value.__notes__ == [
        "corral.hedge: all 2 attempts failed; the others: ConnectionError(attempt 1 failed)"
    ]
    assert virtual_clock.time() == 5
    assert policy.statistics().failed == 1
    single = Server(-1)
    with pytest.raises(ConnectionError) as caught:
        await corral.hedge(single, "x", delay=1, max_attempts=1)
    assert not hasattr(caught.value, "__notes__")


async def test_cancelling_the_caller_cancels_and_awaits_every_attempt(
    virtual_clock: VirtualClock,
) -> None:
    server = Server(10, 10)
    task = asyncio.create_task(corral.hedge(server, "x", delay=1))
    await asyncio.sleep(2)
    assert server.running == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server.running == 0
    assert sorted(server.cancelled) == [0, 1]


async def test_the_enclosing_deadline_bounds_every_attempt(virtual_clock: VirtualClock) -> None:
    server = Server(10, 10, 10)
    with corral.move_on_after(2.5) as scope:
        await corral.hedge(server, "x", delay=1, max_attempts=3)
    assert scope.cancelled_caught
    assert virtual_clock.time() == 2.5
    assert server.running == 0
    assert server.started == [0.0, 1.0, 2.0]


async def test_the_decorator_keeps_the_function_and_its_arguments() -> None:
    policy = Hedge(delay=0.1)

    @policy
    async def greet(name: str, *, punctuation: str = "!") -> str:
        """Say hello."""
        return f"hello {name}{punctuation}"

    assert await greet("ana", punctuation="?") == "hello ana?"
    assert greet.__name__ == "greet"
    assert greet.__doc__ == "Say hello."
    assert policy.statistics() == HedgeStatistics(
        calls=1, attempts=1, hedged=0, won_by_hedge=0, failed=0
    )


async def test_a_function_that_never_awaits_wins_at_once() -> None:
    async def instant(value: int) -> int:
        return value

    assert await corral.hedge(instant, 4, delay=0) == 4
    assert await Hedge(delay=0, max_attempts=3).run(instant, 5) == 5


async def test_a_latency_percentile_sets_the_delay(virtual_clock: VirtualClock) -> None:
    p50 = LatencyPercentile(50, initial=3, window=10)
    assert p50.delay() == 3  # too few latencies yet
    for latency in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]:
        await corral.hedge(Server(latency), "x", delay=p50)
    assert p50.delay() == 5
    assert repr(p50) == "<LatencyPercentile p50 = 5s over 10/10 latencies>"
    server = Server(60, 1)
    assert await corral.hedge(server, "x", delay=p50) == "x from attempt 1"
    assert server.started[1] - server.started[0] == 5
    # the winner took 1 s and the first attempt had run 6 s: both are recorded, and
    # the two oldest latencies (1 and 2) leave: 1 3 4 5 6 6 7 8 9 10
    assert p50.delay() == 6
    assert p50.statistics() == LatencyPercentileStatistics(
        percentile=50, delay=6, latencies=10, window=10, observed=12
    )


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, Hedge):
            self.seen.append((name, fields))


async def test_instruments_see_each_hedged_attempt(virtual_clock: VirtualClock) -> None:
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        await Hedge(delay=1, max_attempts=3).run(Server(10, 10, 1), "x")
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.seen == [
        ("hedged", {"attempt": 2, "delay": 1.0}),
        ("hedged", {"attempt": 3, "delay": 1.0}),
    ]


async def test_a_coroutine_object_is_refused() -> None:
    server = Server(1)
    coroutine = server("x")
    with pytest.raises(ArgumentTypeError, match="not a coroutine object"):
        await corral.hedge(coroutine, delay=1)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="coroutine object"):
        Hedge(delay=1).run(server("y"))  # type: ignore[arg-type, unused-coroutine]
    with pytest.raises(ArgumentTypeError, match="coroutine object"):
        Hedge(delay=1)(server("z"))  # type: ignore[arg-type]
    assert server.started == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"delay": -1}, InvalidArgumentError, "delay must not be negative"),
        ({"delay": math.nan}, InvalidArgumentError, "delay"),
        ({"delay": "1s"}, ArgumentTypeError, "delay"),
        ({"delay": 1, "max_attempts": 0}, InvalidArgumentError, "max_attempts"),
        ({"delay": 1, "max_attempts": 1.5}, ArgumentTypeError, "max_attempts"),
    ],
)
def test_bad_hedge_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Hedge(**kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0,), {}, InvalidArgumentError, "percentile must be in"),
        ((101,), {}, InvalidArgumentError, "percentile"),
        ((math.nan,), {}, InvalidArgumentError, "percentile"),
        (("95",), {}, ArgumentTypeError, "percentile"),
        ((95,), {"window": 0}, InvalidArgumentError, "window"),
        ((95,), {"initial": -1}, InvalidArgumentError, "initial"),
    ],
)
def test_bad_percentile_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        LatencyPercentile(*args, **kwargs)


@given(
    latencies=st.lists(st.floats(min_value=0, max_value=100), max_size=60),
    percentile=st.floats(min_value=0.5, max_value=100),
    window=st.integers(min_value=1, max_value=20),
)
def test_the_percentile_is_the_nearest_rank_of_the_last_latencies(
    latencies: list[float], percentile: float, window: int
) -> None:
    delay = LatencyPercentile(percentile, initial=42, window=window)
    for latency in latencies:
        delay.observe(latency)
    kept = sorted(latencies[-window:])
    if len(kept) < min(window, 10):
        assert delay.delay() == 42
    else:
        rank = max(1, math.ceil(percentile * len(kept) / 100))
        assert delay.delay() == kept[rank - 1]
