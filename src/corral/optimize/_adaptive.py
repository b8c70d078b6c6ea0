"""corral.AdaptiveLimiter: a concurrency limit tuned by the latency and errors of the work."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import math
from collections.abc import Callable
from types import TracebackType
from typing import Final

from .._core._hooks import INSTRUMENTS
from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError, WouldBlock
from ._adaptive_algorithms import Gradient, LimitAlgorithm
from ._limiter import Limiter, size_arg
from ._retry import RetryOn, _on_arg

__all__ = ("AdaptiveLimiter", "AdaptiveLimiterStatistics", "AdaptiveToken")

# What a token's outcome is when its work ends.
_SUCCEEDED: Final = 0
_DROPPED: Final = 1
_IGNORED: Final = 2
_RELEASED: Final = 3

_DEFAULT_INITIAL: Final = 10

#: The innermost token taken with ``async with`` in this context (tokens chain outward).
_ENTERED: contextvars.ContextVar[AdaptiveToken | None] = contextvars.ContextVar(
    "corral_adaptive_entered", default=None
)


@dataclasses.dataclass(frozen=True, slots=True)
class AdaptiveLimiterStatistics:
    """A snapshot of an :class:`AdaptiveLimiter`.

    Attributes:
        limit: how many tokens the limiter lends at most now.
        min_limit: the lowest the limit may go.
        max_limit: the highest the limit may go.
        in_flight: how many tokens are lent out now.
        waiting: how many callers wait in line for a token.
        samples: how many finished pieces of work were measured.
        drops: how many of those were dropped (an error escaped, or marked dropped).
        ignored: how many finished pieces of work were not measured (cancelled, or
            marked ignored).
        adjustments: how many times the limit changed.
        last_rtt: how long the last measured work held its token, in seconds (``None``
            before the first sample).
        no_load_rtt: the algorithm's estimate of the round-trip time without queueing
            (``None`` when it keeps none).
    """

    limit: int
    min_limit: int
    max_limit: int
    in_flight: int
    waiting: int
    samples: int
    drops: int
    ignored: int
    adjustments: int
    last_rtt: float | None
    no_load_rtt: float | None


class AdaptiveToken:
    """One token of an :class:`AdaptiveLimiter`, lent for one piece of work.

    ``async with limiter as token:`` and :meth:`AdaptiveLimiter.acquire` hand one out.
    The limiter measures how long the token is held. By default the work counts as a
    success; when an exception escapes its ``async with`` block, as dropped if the
    limiter's ``on`` matches it and as unmeasured otherwise (a cancellation is never
    measured). Call :meth:`dropped` or :meth:`ignore` before the token goes back to say
    otherwise; the last call wins, and it wins over the exception.

    Thread-safety: not thread-safe; use it from the task that holds it.
    """

    __slots__ = ("_clock", "_in_flight", "_limiter", "_outcome", "_outer", "_started")

    def __init__(
        self,
        limiter: AdaptiveLimiter,
        clock: Callable[[], float],
        in_flight: int,
        outer: AdaptiveToken | None,
    ) -> None:
        self._limiter = limiter
        self._clock = clock
        self._started = clock()
        self._in_flight = in_flight
        self._outcome = _SUCCEEDED
        self._outer = outer

    @property
    def started(self) -> float:
        """The loop time at which the token was lent."""
        return self._started

    def dropped(self) -> None:
        """Count this work as dropped (the server shed it, timed out, said "overloaded").

        A drop tells the algorithm the limit is too high. Use it for failures that do not
        raise out of the ``async with`` block, such as an HTTP 503 response.

        Raises:
            UsageError: the token was given back already.
        """
        self._mark(_DROPPED)

    def ignore(self) -> None:
        """Leave this work out of the measurements: its latency and outcome say nothing.

        Use it for work that never reached the limited resource (a cache hit, a request
        refused by validation), including when it raises.

        Raises:
            UsageError: the token was given back already.
        """
        self._mark(_IGNORED)

    def _mark(self, outcome: int) -> None:
        if self._outcome == _RELEASED:
            raise UsageError(f"{self!r}: too late to say how the work went")
        self._outcome = outcome

    def __repr__(self) -> str:
        state = ("held, succeeding", "held, dropped", "held, ignored", "given back")
        return f"<AdaptiveToken {state[self._outcome]}, lent at {self._started:g}>"


class AdaptiveLimiter:
    """A concurrency limiter whose limit tunes itself from the latency and errors of the work.

    Use it as ``async with limiter:`` (or ``async with limiter as token:``) around calls
    to a resource whose best concurrency you do not know, such as a remote service. The
    block is timed on the loop clock; when it ends, the ``algorithm`` turns the sample
    into a new limit, kept within ``[min_limit, max_limit]``. An exception escaping the
    block counts as a drop (a sign of overload) when it matches ``on``; any other
    exception, and a cancellation, leaves the work unmeasured. Waiting
    works as for :class:`corral.Limiter`: first come, first served, and a raised limit
    lets waiting callers in at once. :meth:`acquire` / :meth:`release` do the same with
    the :class:`AdaptiveToken` passed explicitly.

    Two algorithms come with corral: :class:`corral.AIMD` (grow slowly, cut on errors or
    latency above a threshold) and :class:`corral.Gradient` (the default: shrink as
    latency rises above its no-load value). Each change of the limit emits a
    ``limit_changed`` instrumentation event and calls ``on_change``.

    Cancellation: a caller cancelled while waiting leaves the line and holds nothing (a
    token handed over at that moment is passed on, as in :class:`corral.Limiter`); work
    cancelled while holding a token gives it back without being measured. A wait is
    bounded by the enclosing cancel scope's deadline like any other await. Taking a free
    token does not yield to the event loop.

    Thread-safety: not thread-safe. Use a limiter from the tasks of one event loop.

    Args:
        algorithm: the :class:`corral.LimitAlgorithm` that tunes the limit; one instance
            per limiter (default: a new :class:`corral.Gradient`).
        initial: the limit to start with, within the bounds (default: 10, moved into
            the bounds if it is outside them).
        min_limit: the lowest the limit may go (``>= 1``).
        max_limit: the highest the limit may go (``>= min_limit``).
        on: the exceptions that count as drops when they escape the block: exception
            types, or a predicate ``on(error) -> bool`` (default: every ``Exception``).
            An exception the predicate raises propagates; the token is given back.
        on_change: called as ``on_change(old, new)`` after every change of the limit; an
            exception it raises propagates out of the block whose end changed the limit.

    Raises:
        ArgumentTypeError: a limit is not an ``int``, ``algorithm`` is not a
            :class:`corral.LimitAlgorithm`, ``on`` is neither exception types nor a
            predicate, or ``on_change`` is not callable.
        InvalidArgumentError: a limit is NaN or smaller than 1, ``min_limit`` exceeds
            ``max_limit``, ``initial`` is outside the bounds, or ``on`` names no type or
            a ``BaseException`` that is not an ``Exception``.
        UsageError: ``algorithm`` already tunes another limiter.
    """

    __slots__ = (
        "_adjustments",
        "_algorithm",
        "_drops",
        "_estimate",
        "_ignored",
        "_last_rtt",
        "_limit",
        "_limiter",
        "_max_limit",
        "_min_limit",
        "_on",
        "_on_change",
        "_samples",
    )

    def __init__(
        self,
        algorithm: LimitAlgorithm | None = None,
        *,
        initial: int | None = None,
        min_limit: int = 1,
        max_limit: int = 1000,
        on: RetryOn = Exception,
        on_change: Callable[[int, int], object] | None = None,
    ) -> None:
        min_limit = size_arg(min_limit, "min_limit")
        max_limit = size_arg(max_limit, "max_limit")
        if min_limit > max_limit:
            raise InvalidArgumentError(
                f"min_limit must not exceed max_limit, got min_limit={min_limit!r} "
                f"and max_limit={max_limit!r}"
            )
        if initial is None:
            initial = min(max(_DEFAULT_INITIAL, min_limit), max_limit)
        elif not min_limit <= size_arg(initial, "initial") <= max_limit:
            raise InvalidArgumentError(
                f"initial must be within [min_limit, max_limit] = [{min_limit}, {max_limit}], "
                f"got {initial!r}"
            )
        if algorithm is None:
            algorithm = Gradient()
        elif not isinstance(algorithm, LimitAlgorithm):
            raise ArgumentTypeError(
                "algorithm must be a corral.LimitAlgorithm such as corral.AIMD() or "
                f"corral.Gradient(), not {type(algorithm).__name__} ({algorithm!r})"
            )
        self._on = _on_arg(on)
        if on_change is not None and not callable(on_change):
            raise ArgumentTypeError(f"on_change must be callable or None, not {on_change!r}")
        if algorithm._limiter is not None:
            raise UsageError(
                f"{algorithm!r} already tunes {algorithm._limiter!r}; "
                "give each limiter its own algorithm instance"
            )
        algorithm._limiter = self
        self._algorithm = algorithm
        self._min_limit = min_limit
        self._max_limit = max_limit
        self._on_change = on_change
        self._limiter = Limiter(initial)
        self._limit = initial  # the limiter's total, kept here for the hot path
        self._estimate = float(initial)
        self._samples = 0
        self._drops = 0
        self._ignored = 0
        self._adjustments = 0
        self._last_rtt: float | None = None

    @property
    def algorithm(self) -> LimitAlgorithm:
        """The algorithm that tunes the limit."""
        return self._algorithm

    @property
    def limit(self) -> int:
        """How many tokens the limiter lends at most now."""
        return self._limiter.total

    @property
    def in_flight(self) -> int:
        """How many tokens are lent out now."""
        return self._limiter.borrowed

    @property
    def waiting(self) -> int:
        """How many callers wait in line for a token now."""
        return self._limiter.waiting

    def acquire_nowait(self) -> AdaptiveToken:
        """Take a token without waiting; give it back with :meth:`release`.

        Raises:
            WouldBlock: every token is lent out, or other callers are already waiting.
        """
        limiter = self._limiter
        limiter.acquire_nowait()
        return AdaptiveToken(self, asyncio.get_running_loop().time, limiter.borrowed, None)

    async def acquire(self) -> AdaptiveToken:
        """Take a token, waiting in line (FIFO) while none is free; give it back with
        :meth:`release`.

        The work is timed from the moment the token is lent, not from the call.

        Returns:
            The token: mark it with :meth:`AdaptiveToken.dropped` or
            :meth:`AdaptiveToken.ignore` if need be, and give it to :meth:`release`.

        Cancellation: a cancelled wait leaves the line without a token; a token handed
        over at the moment of cancellation is passed on to the next caller in line.
        """
        limiter = self._limiter
        await limiter.acquire()
        return AdaptiveToken(self, asyncio.get_running_loop().time, limiter.borrowed, None)

    def release(self, token: AdaptiveToken) -> None:
        """Give ``token`` back, measure its work and adjust the limit.

        The work counts as a success unless :meth:`AdaptiveToken.dropped` or
        :meth:`AdaptiveToken.ignore` was called. The longest-waiting caller gets the
        token, unless the limit just dropped below the tokens lent out.

        Raises:
            UsageError: ``token`` is not a token of this limiter, or was given back
                already; or the algorithm returned NaN (the token is given back anyway).
            Exception: whatever ``on_change`` raises, after the token is given back.
        """
        if not isinstance(token, AdaptiveToken) or token._limiter is not self:
            raise UsageError(f"{self!r}: {token!r} is not a token of this limiter")
        self._give_back(token)

    def _give_back(self, token: AdaptiveToken) -> None:
        outcome = token._outcome
        if outcome == _RELEASED:
            raise UsageError(f"{self!r}: {token!r} was given back already")
        token._outcome = _RELEASED
        limiter = self._limiter
        if outcome == _IGNORED:
            self._ignored += 1
            limiter.release()
            return
        rtt = token._clock() - token._started
        dropped = outcome == _DROPPED
        self._samples += 1
        if dropped:
            self._drops += 1
        self._last_rtt = rtt
        old = self._limit
        try:
            estimate = self._algorithm.update(
                self._estimate, token._started, rtt, token._in_flight, dropped
            )
            if not self._min_limit <= estimate <= self._max_limit:
                estimate = self._bounded(estimate)
            self._estimate = estimate
            new = round(estimate)
            if new != old:
                self._limit = limiter.total = new
                self._adjustments += 1
                if INSTRUMENTS.active:
                    INSTRUMENTS.event(
                        self,
                        "limit_changed",
                        {"old": old, "limit": new, "rtt": rtt, "dropped": dropped},
                    )
        finally:
            limiter.release()
        if new != old and self._on_change is not None:
            self._on_change(old, new)

    def _bounded(self, estimate: float) -> float:
        if math.isnan(estimate):
            raise UsageError(f"{self._algorithm!r} returned NaN as the new limit")
        return float(min(max(estimate, self._min_limit), self._max_limit))

    async def __aenter__(self) -> AdaptiveToken:
        limiter = self._limiter
        try:  # a free token without the coroutine frame of limiter.acquire()
            limiter.acquire_nowait()
        except WouldBlock:
            await limiter.acquire()
        token = AdaptiveToken(
            self, asyncio.get_running_loop().time, limiter.borrowed, _ENTERED.get()
        )
        _ENTERED.set(token)
        return token

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = _ENTERED.get()
        if token is None or token._limiter is not self:
            raise UsageError(f"{self!r}: exited without a matching entry in this task")
        _ENTERED.set(token._outer)
        if exc_type is None or token._outcome != _SUCCEEDED:
            self._give_back(token)
            return
        token._outcome = _IGNORED
        try:
            if isinstance(exc, Exception) and self._on(exc):
                token._outcome = _DROPPED
        finally:
            self._give_back(token)

    def statistics(self) -> AdaptiveLimiterStatistics:
        """A snapshot: the limit and its bounds, work in flight and waiting, the counts
        of samples, drops, ignored work and adjustments, the last and the no-load RTT."""
        limiter = self._limiter
        return AdaptiveLimiterStatistics(
            limit=limiter.total,
            min_limit=self._min_limit,
            max_limit=self._max_limit,
            in_flight=limiter.borrowed,
            waiting=limiter.waiting,
            samples=self._samples,
            drops=self._drops,
            ignored=self._ignored,
            adjustments=self._adjustments,
            last_rtt=self._last_rtt,
            no_load_rtt=self._algorithm.no_load_rtt,
        )

    def __repr__(self) -> str:
        limiter = self._limiter
        return (
            f"<AdaptiveLimiter {limiter.borrowed}/{limiter.total} in flight, "
            f"{limiter.waiting} waiting, {type(self._algorithm).__name__} "
            f"in [{self._min_limit}, {self._max_limit}]>"
        )
