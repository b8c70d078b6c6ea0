"""Hedged calls: when a call is slow, start another attempt; the first success wins.

A hedge trades a little extra load for a shorter tail: most calls finish before the
delay and cost one attempt, and the slow few get a second chance that usually finishes
quickly (see Dean and Barroso, "The Tail at Scale"). :class:`LatencyPercentile` sets the
delay from the latencies the hedge has seen, so only the slowest few percent are hedged.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._core._hooks import INSTRUMENTS
from .._core._scope import move_on_after
from .._core._taskgroup import TaskGroup
from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError
from ._breaker import callable_arg
from ._limiter import size_arg
from ._stage import CallPolicy

__all__ = ("Hedge", "HedgeStatistics", "LatencyPercentile", "LatencyPercentileStatistics", "hedge")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class LatencyPercentileStatistics:
    """A snapshot of a :class:`LatencyPercentile`.

    Attributes:
        percentile: which percentile it follows.
        delay: the delay it gives now, in seconds.
        latencies: how many latencies it keeps now.
        window: how many it keeps at most.
        observed: how many it has been given in all.
    """

    percentile: float
    delay: float
    latencies: int
    window: int
    observed: int


class LatencyPercentile:
    """A hedge delay that follows a percentile of recent latencies.

    ::

        p95 = corral.LatencyPercentile(95, initial=0.05)
        result = await corral.hedge(fetch, url, delay=p95)   # share p95 across calls

    It keeps the last ``window`` latencies that hedges using it have observed and
    answers the ``percentile``-th of them (nearest rank); until it holds
    ``min(window, 10)`` of them it answers ``initial``. A hedge records the time its
    winning attempt took, and the time the first attempt had run when a later one won
    (a lower bound of its latency), so hedging does not drag the percentile down.

    Adding a latency costs ``O(log window)`` comparisons and one list insertion; reading
    the delay is a list index. Not thread-safe: use it from one event loop.

    Args:
        percentile: which percentile, in ``(0, 100]``.
        initial: seconds to use until enough latencies are known.
        window: how many recent latencies to keep (at least 1).

    Raises:
        InvalidArgumentError: ``percentile`` outside ``(0, 100]`` or NaN; ``initial``
            negative or NaN; ``window`` below 1.
        ArgumentTypeError: an argument has the wrong type.
    """

    __slots__ = (
        "_initial",
        "_minimum",
        "_observed",
        "_percentile",
        "_recent",
        "_sorted",
        "_window",
    )

    def __init__(self, percentile: float, *, initial: Seconds = 0.1, window: int = 1000) -> None:
        if not isinstance(percentile, (int, float)) or isinstance(percentile, bool):
            raise ArgumentTypeError(
                f"percentile must be a number in (0, 100], not {type(percentile).__name__} "
                f"({percentile!r})"
            )
        if not 0 < percentile <= 100:  # NaN fails both comparisons
            raise InvalidArgumentError(f"percentile must be in (0, 100], got {percentile!r}")
        self._percentile = float(percentile)
        self._initial = seconds_arg(initial, "initial")
        self._window = size_arg(window, "window")
        self._minimum = min(self._window, 10)
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []
        self._observed = 0

    @property
    def percentile(self) -> float:
        """Which percentile this delay follows."""
        return self._percentile

    def observe(self, latency: float) -> None:
        """Add one latency, in seconds; the oldest leaves once ``window`` are kept."""
        recent = self._recent
        ordered = self._sorted
        if len(recent) == self._window:
            del ordered[bisect.bisect_left(ordered, recent.popleft())]
        recent.append(latency)
        bisect.insort(ordered, latency)
        self._observed += 1

    def delay(self) -> float:
        """The current delay: the percentile of the kept latencies, or ``initial``."""
        ordered = self._sorted
        count = len(ordered)
        if count < self._minimum:
            return self._initial
        rank = -(-self._percentile * count // 100)  # nearest rank: ceil(p * n / 100)
        return ordered[max(int(rank), 1) - 1]

    def statistics(self) -> LatencyPercentileStatistics:
        """A snapshot: the percentile, the delay it gives now, the latencies kept."""
        return LatencyPercentileStatistics(
            percentile=self._percentile,
            delay=self.delay(),
            latencies=len(self._sorted),
            window=self._window,
            observed=self._observed,
        )

    def __repr__(self) -> str:
        return (
            f"<LatencyPercentile p{self._percentile:g} = {self.delay():g}s "
            f"over {len(self._sorted)}/{self._window} latencies>"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class HedgeStatistics:
    """A snapshot of a :class:`Hedge`'s counters.

    Attributes:
        calls: calls made through the hedge.
        attempts: attempts started, over all calls.
        hedged: calls that started more than one attempt.
        won_by_hedge: calls that a later attempt won.
        failed: calls whose every attempt failed.
    """

    calls: int
    attempts: int
    hedged: int
    won_by_hedge: int
    failed: int


class _Race:
    """The shared state of one hedged call's attempts."""

    __slots__ = ("errors", "failed", "result", "winner")

    def __init__(self) -> None:
        self.winner = 0  # the number of the winning attempt, from 1; 0 while none won
        self.result: Any = None
        self.errors: dict[int, Exception] = {}
        self.failed = asyncio.Event()  # set when an attempt fails; cleared by the launcher


def _delay_arg(delay: object) -> float | LatencyPercentile:
    if isinstance(delay, LatencyPercentile):
        return delay
    return seconds_arg(delay, "delay")


class Hedge(CallPolicy):
    """A hedging policy: start another attempt after ``delay``; the first success wins.

    Make one with ``corral.Hedge(delay=..., max_attempts=...)``; call it on an async
    function to decorate it, or ``await hedge.run(fn, *args)``. See :func:`hedge` for
    the rules. A policy keeps no per-call state, so concurrent calls share it; its
    counters add up over all calls. Not thread-safe: use it from one event loop.

    Args:
        delay: seconds (or ``timedelta``) to wait before each further attempt, or a
            :class:`LatencyPercentile` that sets the delay from observed latencies.
        max_attempts: the most attempts per call, at least 1 (1 turns hedging off).

    Raises:
        InvalidArgumentError: ``delay`` negative or NaN; ``max_attempts`` below 1.
        ArgumentTypeError: an argument has the wrong type.
    """

    __slots__ = ("_attempts", "_calls", "_delay", "_failed", "_hedged", "_max_attempts", "_won")

    def __init__(self, *, delay: Seconds | LatencyPercentile, max_attempts: int = 2) -> None:
        self._delay = _delay_arg(delay)
        self._max_attempts = size_arg(max_attempts, "max_attempts")
        self._calls = 0
        self._attempts = 0
        self._hedged = 0
        self._won = 0
        self._failed = 0

    async def _run(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        self._calls += 1
        delay = self._delay
        if isinstance(delay, LatencyPercentile):
            percentile: LatencyPercentile | None = delay
            wait = delay.delay()
        else:
            percentile = None
            wait = delay
        loop = asyncio.get_running_loop()
        race = _Race()
        started: list[float] = []

        async def attempt(number: int) -> None:
            try:
                result = await fn(*args, **kwargs)
            except Exception as error:
                race.errors[number] = error
                race.failed.set()
                return
            if race.winner:
                return
            race.winner = number
            race.result = result
            if percentile is not None:
                now = loop.time()
                percentile.observe(now - started[number - 1])
                if number > 1:
                    percentile.observe(now - started[0])
            group.cancel("another attempt of the hedged call succeeded")

        async with TaskGroup() as group:
            for number in range(1, self._max_attempts + 1):
                if number > 1:
                    # wait for the delay, or less if a running attempt fails meanwhile;
                    # if every attempt so far has failed, start the next one at once
                    race.failed.clear()
                    if len(race.errors) < number - 1:
                        with move_on_after(wait):
                            await race.failed.wait()
                    if race.winner:
                        break
                    self._hedged += number == 2
                    if INSTRUMENTS.active:
                        INSTRUMENTS.event(self, "hedged", {"attempt": number, "delay": wait})
                self._attempts += 1
                started.append(loop.time())
                group.start_soon(attempt, number)
                if race.winner:  # an eager task factory ran it to completion already
                    break
        if race.winner:
            self._won += race.winner > 1
            return race.result  # type: ignore[no-any-return]
        self._failed += 1
        errors = [race.errors[number] for number in sorted(race.errors)]
        first = errors[0]
        if len(errors) > 1:
            others = ", ".join(f"{type(error).__name__}({error})" for error in errors[1:])
            first.add_note(f"corral.hedge: all {len(errors)} attempts failed; the others: {others}")
        raise first

    def statistics(self) -> HedgeStatistics:
        """A snapshot of the policy's counters."""
        return HedgeStatistics(
            calls=self._calls,
            attempts=self._attempts,
            hedged=self._hedged,
            won_by_hedge=self._won,
            failed=self._failed,
        )

    def __repr__(self) -> str:
        delay = self._delay
        after = f"{delay:g}s" if isinstance(delay, float) else f"p{delay.percentile:g}"
        return (
            f"<Hedge after {after}, up to {self._max_attempts} attempts; {self._calls} calls, "
            f"{self._hedged} hedged, {self._won} won by a hedge>"
        )


async def hedge(
    fn: Callable[..., Awaitable[T]],
    /,
    *args: Any,
    delay: Seconds | LatencyPercentile,
    max_attempts: int = 2,
) -> T:
    """Call ``fn(*args)``; if it is slow, start another attempt; return the first success.

    ::

        page = await corral.hedge(fetch, url, delay=0.05)
        page = await corral.hedge(fetch, url, delay=p95)  # a shared LatencyPercentile

    The first attempt starts at once. Each further attempt, up to ``max_attempts`` in
    all, starts ``delay`` seconds after the previous one, or at once when an attempt
    fails (a failure of one attempt never ends the call while another may succeed). The
    first attempt to succeed wins: the others are cancelled and awaited before the call
    returns, so no attempt outlives it.

    When every attempt fails, the call raises the first attempt's error (the error the
    caller would have seen without hedging, so ``except``, ``retry(on=...)`` and a
    breaker's ``on=`` treat it as usual), with a note naming the others' errors.

    Cancellation and deadlines: the attempts run in a task group inside the caller's
    cancel scopes, so the enclosing deadline bounds every attempt and cancelling the
    caller cancels them all (and waits for them). Cancellation is never treated as a
    failed attempt.

    Use :class:`Hedge` to keep statistics or to decorate a function.

    Raises:
        InvalidArgumentError: ``delay`` negative or NaN; ``max_attempts`` below 1.
        ArgumentTypeError: ``fn`` is a coroutine object or not callable; a wrong type.
        Exception: the first attempt's error, when every attempt failed.
    """
    callable_arg(fn, "corral.hedge()")
    return await Hedge(delay=delay, max_attempts=max_attempts)._run(fn, args, {})
