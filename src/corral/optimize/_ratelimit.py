"""RateLimiter: the generic cell rate algorithm (GCRA), with FIFO waiters.

GCRA keeps one number per limit, the *theoretical arrival time* (TAT): the time at which
the limit would be back to empty if nothing else arrived. Each unit moves the TAT forward
by the *emission interval* ``T = per / rate``. A request of ``cost`` units at time ``now``
is admitted when ``max(TAT, now) + cost * T - now <= burst * T`` (the *burst tolerance*:
how far ahead of the clock the TAT may run); admitting it sets
``TAT = max(TAT, now) + cost * T``. Otherwise it may proceed exactly
``max(TAT, now) + cost * T - burst * T - now`` seconds later. Over any window of ``w``
seconds at most ``burst + w / T`` units are admitted.

The state lives behind :class:`RateLimitStore`, so one limit can later be kept elsewhere
than in the process; :class:`MemoryRateLimitStore` keeps it in memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import deque
from datetime import timedelta
from typing import Protocol, runtime_checkable

from .._core._hooks import INSTRUMENTS
from .._core._scope import current_effective_deadline
from .._core._time import seconds_arg
from ..errors import ArgumentTypeError, DeadlineExceeded, InvalidArgumentError

__all__ = ("MemoryRateLimitStore", "RateLimitStore", "RateLimiter", "RateLimiterStatistics")

# Waits shorter than this (in seconds) count as none: admission times are exact to a
# nanosecond, which keeps float rounding from re-arming a timer for 1e-17 s.
_EPSILON = 1e-9
# The default cost; ``cost is _ONE`` is the fast path's whole argument check.
_ONE = 1


@runtime_checkable
class RateLimitStore(Protocol):
    """Where a :class:`RateLimiter` keeps its GCRA state (the theoretical arrival time).

    Each method is one atomic step on that state. ``interval`` is the emission interval
    (seconds per unit), ``burst`` the burst tolerance in units, ``now`` the caller's clock.
    """

    def try_take(self, cost: float, now: float, interval: float, burst: float) -> float:
        """Admit ``cost`` units at ``now`` if the limit allows it.

        Returns:
            ``0.0`` if admitted (the state moved on), else the seconds until ``cost`` units
            could be admitted (the state is unchanged).
        """
        ...

    def delay(self, cost: float, now: float, interval: float, burst: float) -> float:
        """Seconds from ``now`` until ``cost`` units could be admitted (``0.0``: at once).

        ``cost`` may exceed ``burst`` (the total of a queue); nothing changes.
        """
        ...

    def give_back(self, cost: float, interval: float) -> None:
        """Return ``cost`` admitted units that were never used."""
        ...


class MemoryRateLimitStore:
    """A :class:`RateLimitStore` in process memory (the default). Not thread-safe."""

    __slots__ = ("_tat",)

    def __init__(self) -> None:
        self._tat = -math.inf

    def try_take(self, cost: float, now: float, interval: float, burst: float) -> float:
        """Admit ``cost`` units at ``now`` or return the seconds to wait (see the protocol)."""
        tat = self._tat
        if tat < now:
            tat = now
        tat += cost * interval
        wait = tat - burst * interval - now
        if wait > _EPSILON:
            return wait
        self._tat = tat
        return 0.0

    def delay(self, cost: float, now: float, interval: float, burst: float) -> float:
        """Seconds until ``cost`` units could be admitted; changes nothing."""
        wait = max(self._tat, now) + (cost - burst) * interval - now
        return wait if wait > _EPSILON else 0.0

    def give_back(self, cost: float, interval: float) -> None:
        """Move the theoretical arrival time back by ``cost`` units."""
        self._tat -= cost * interval

    def __repr__(self) -> str:
        return f"<MemoryRateLimitStore tat={self._tat!r}>"


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    """A snapshot of a :class:`RateLimiter`.

    Attributes:
        rate: units admitted per ``per`` seconds.
        per: the period of ``rate``, in seconds.
        burst: units that may be admitted at once.
        waiting: tasks queued in :meth:`RateLimiter.acquire`.
        admitted: acquisitions admitted so far (at once or after waiting).
        delayed: of those, the ones that had to wait.
    """

    rate: float
    per: float
    burst: float
    waiting: int
    admitted: int
    delayed: int


class _Waiter:
    __slots__ = ("cost", "future")

    def __init__(self, cost: float, future: asyncio.Future[None]) -> None:
        self.cost = cost
        self.future = future


class RateLimiter:
    """Admit at most ``rate`` units per ``per`` seconds, with bursts of up to ``burst``.

    The algorithm is GCRA (see the module docs): a theoretical arrival time that each
    admitted unit moves forward by ``per / rate`` seconds, and a burst tolerance of
    ``burst`` units. ``RateLimiter(10)`` admits ten units at once, then one every 0.1 s;
    ``RateLimiter(10, burst=1)`` admits at t = 0, 0.1, 0.2, ... Over any window of ``w``
    seconds at most ``burst + rate * w / per`` units are admitted.

    Waiters are served first come, first served; a request never overtakes a queued one.
    One timer is armed, for the head of the queue, at the time it can proceed; when it
    fires, exactly the waiters that can proceed then are woken.

    Time is read from the running loop, so a virtual clock drives it in tests. Not
    thread-safe: use one limiter from one event loop (from other threads, go through
    ``corral.from_thread``).

    Args:
        rate: units per ``per`` seconds; a positive finite number.
        per: the period, in seconds (float or ``timedelta``); positive.
        burst: units admitted at once from idle, at least 1; ``None`` means
            ``max(rate, 1)``, the units of one period.
        store: where the GCRA state lives; a fresh :class:`MemoryRateLimitStore` if
            ``None``.

    Raises:
        ArgumentTypeError: an argument has the wrong type.
        InvalidArgumentError: ``rate`` or ``per`` is zero, negative, NaN or infinite, or
            ``burst`` is below 1, NaN or infinite.
    """

    __slots__ = (
        "_admitted",
        "_burst",
        "_delayed",
        "_interval",
        "_per",
        "_queued",
        "_rate",
        "_store",
        "_take",
        "_timer",
        "_waiters",
    )

    def __init__(
        self,
        rate: float,
        per: float | timedelta = 1.0,
        burst: float | None = None,
        *,
        store: RateLimitStore | None = None,
    ) -> None:
        self._rate = _positive(rate, "rate")
        self._per = seconds_arg(per, "per")
        if self._per == 0 or math.isinf(self._per):
            raise InvalidArgumentError(f"per must be a positive finite duration, got {per!r}")
        if burst is None:
            self._burst = max(self._rate, 1.0)
        else:
            self._burst = _positive(burst, "burst")
            if self._burst < 1:
                raise InvalidArgumentError(f"burst must be at least 1, got {burst!r}")
        if store is None:
            store = MemoryRateLimitStore()
        elif not isinstance(store, RateLimitStore):
            raise ArgumentTypeError(
                f"store must be a RateLimitStore, not {type(store).__name__} ({store!r})"
            )
        self._store = store
        self._take = store.try_take  # bound once: the hot path's only call
        self._interval = self._per / self._rate
        self._waiters: deque[_Waiter] = deque()
        self._queued = 0.0  # total cost of the queue
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = 0
        self._delayed = 0

    def try_acquire(self, cost: float = 1) -> bool:
        """Take ``cost`` units now if the limit allows it and nobody is queued.

        Returns:
            Whether the units were taken. ``False`` also while tasks wait in
            :meth:`acquire`: they are served first.

        Raises:
            ArgumentTypeError: ``cost`` is not a number.
            InvalidArgumentError: ``cost`` is not positive, or exceeds ``burst``.
            RuntimeError: no event loop is running in this thread.
        """
        if cost is not _ONE:
            cost = self._cost_arg(cost)
        if self._waiters:
            return False
        if self._take(cost, asyncio.get_running_loop().time(), self._interval, self._burst):
            return False
        self._admitted += 1
        return True

    async def acquire(self, cost: float = 1) -> None:
        """Take ``cost`` units, waiting in FIFO order until the limit allows it.

        Returns at once (without yielding to the loop) when the units are available and
        nobody is queued.

        Deadline: if the wait would end after the enclosing deadline
        (:func:`corral.current_effective_deadline`), nothing is taken and
        :class:`~corral.errors.DeadlineExceeded` is raised at once instead of sleeping.

        Cancellation: a cancelled waiter takes nothing; it leaves the queue (or gives its
        units back if it was admitted in the same instant) and the waiters behind it move
        up, proceeding at once if that frees enough.

        Raises:
            ArgumentTypeError: ``cost`` is not a number.
            InvalidArgumentError: ``cost`` is not positive, or exceeds ``burst``.
            DeadlineExceeded: the wait would end past the enclosing deadline.
            asyncio.CancelledError: the waiting task was cancelled.
        """
        if cost is not _ONE:
            cost = self._cost_arg(cost)
        if not self._waiters and not self._take(
            cost, asyncio.get_running_loop().time(), self._interval, self._burst
        ):
            self._admitted += 1
            return
        await self._wait(cost)

    async def _wait(self, cost: float) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = self._store.delay(self._queued + cost, now, self._interval, self._burst)
        deadline = current_effective_deadline()
        if now + wait > deadline > -math.inf:
            raise DeadlineExceeded(
                f"rate limiter would admit cost {cost!r} in {wait:.6g} s, "
                f"after the enclosing deadline ({deadline - now:.6g} s from now)"
            )
        future: asyncio.Future[None] = loop.create_future()
        waiter = _Waiter(cost, future)
        self._waiters.append(waiter)
        self._queued += cost
        if len(self._waiters) == 1:
            self._timer = loop.call_at(now + wait, self._serve)
        task = asyncio.current_task()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(task, self)
        try:
            await future
        except BaseException:
            if future.cancelled() or not future.done():
                self._leave(waiter)
            else:  # admitted, but cancelled before it could resume: give the units back
                self._store.give_back(cost, self._interval)
                self._admitted -= 1
                self._delayed -= 1
                self._serve()  # the units may let the next waiters proceed now
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(task, self)

    def _leave(self, waiter: _Waiter) -> None:
        was_head = self._waiters[0] is waiter if self._waiters else False
        try:
            self._waiters.remove(waiter)
        except ValueError:  # already dropped by _serve
            return
        self._queued -= waiter.cost
        if was_head:
            self._serve()

    def _serve(self) -> None:
        """Admit every waiter at the head that can proceed now; arm a timer for the next."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        while waiters:
            head = waiters[0]
            if head.future.done():  # cancelled; its task has not resumed yet
                waiters.popleft()
                self._queued -= head.cost
                continue
            loop = head.future.get_loop()
            now = loop.time()
            wait = self._take(head.cost, now, self._interval, self._burst)
            if wait:
                self._timer = loop.call_at(now + wait, self._serve)
                return
            waiters.popleft()
            self._queued -= head.cost
            self._admitted += 1
            self._delayed += 1
            head.future.set_result(None)
            if INSTRUMENTS.active:
                INSTRUMENTS.event(self, "rate_limiter.admitted", {"cost": head.cost})
        self._queued = 0.0  # drop float residue once the queue is empty

    def _cost_arg(self, cost: object) -> float:
        value = _positive(cost, "cost")
        if value > self._burst:
            raise InvalidArgumentError(
                f"cost {cost!r} exceeds the burst of {self._burst!r}: it could never be admitted"
            )
        return value

    async def __aenter__(self) -> None:
        """``async with limiter:`` is ``await limiter.acquire()``; leaving gives nothing back."""
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def statistics(self) -> RateLimiterStatistics:
        """A snapshot: the configuration, the queue length and the admission counts."""
        return RateLimiterStatistics(
            rate=self._rate,
            per=self._per,
            burst=self._burst,
            waiting=len(self._waiters),
            admitted=self._admitted,
            delayed=self._delayed,
        )

    def __repr__(self) -> str:
        return (
            f"<RateLimiter {self._rate:g}/{self._per:g}s burst {self._burst:g}, "
            f"{len(self._waiters)} waiting, {self._admitted} admitted>"
        )


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(f"{name} must be a number, not {type(value).__name__} ({value!r})")
    number = float(value)
    if not number > 0 or math.isinf(number):
        raise InvalidArgumentError(f"{name} must be a positive finite number, got {value!r}")
    return number
