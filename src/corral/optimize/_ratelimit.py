"""RateLimiter: the generic cell rate algorithm (GCRA), with FIFO waiters.

GCRA keeps one number per limit, the *theoretical arrival time* (TAT): the time at which
the limit would be back to empty if nothing else arrived. Each unit moves the TAT forward
by the *emission interval* ``T = per / rate``. A request of ``cost`` units at time ``now``
is admitted when ``max(TAT, now) + cost * T - now <= burst * T`` (the *burst tolerance*:
how far ahead of the clock the TAT may run); admitting it sets
``TAT = max(TAT, now) + cost * T``. Otherwise it may proceed exactly
``max(TAT, now) + cost * T - burst * T - now`` seconds later. Over any window of ``w``
seconds at most ``burst + w / T`` units are admitted.

The state lives behind a store. A :class:`RateLimitStore` answers synchronously and reads
the caller's clock: :class:`MemoryRateLimitStore` keeps the TAT in process memory. An
:class:`AsyncRateLimitStore` answers after a round trip and reads its own clock, so that
several processes (on several machines) can share one limit: each process's loop clock
has its own origin, so only the store's clock can order their requests on one time line.
``corral.backends.redis.RedisRateLimitStore`` is one, kept in Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
from collections import deque
from datetime import timedelta
from typing import Protocol, runtime_checkable

from .._core._hooks import INSTRUMENTS
from .._core._scope import current_effective_deadline
from .._core._time import seconds_arg
from ..errors import ArgumentTypeError, DeadlineExceeded, InvalidArgumentError, UsageError

__all__ = (
    "AsyncRateLimitStore",
    "MemoryRateLimitStore",
    "RateLimitStore",
    "RateLimiter",
    "RateLimiterStatistics",
)

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


@runtime_checkable
class AsyncRateLimitStore(Protocol):
    """Where a :class:`RateLimiter` shared by several processes keeps its GCRA state.

    Each method is one atomic step on that state, answered after a round trip (one, for
    :meth:`try_take`). Unlike :class:`RateLimitStore`, the caller passes no clock: the store
    reads its own (a server's), the one time line that every process sharing the limit
    agrees on. ``interval`` is the emission interval (seconds per unit), ``burst`` the
    burst tolerance in units.
    """

    async def try_take(self, cost: float, interval: float, burst: float) -> float:
        """Admit ``cost`` units now if the limit allows it.

        Returns:
            ``0.0`` if admitted (the state moved on), else the seconds until ``cost`` units
            could be admitted (the state is unchanged).
        """
        ...

    async def give_back(self, cost: float, interval: float) -> None:
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

    A shared limit: with an :class:`AsyncRateLimitStore` (such as
    ``corral.backends.redis.RedisRateLimitStore``) the state lives outside the process
    and every process whose limiter uses the same store shares the one limit. Each
    :meth:`acquire` then costs one round trip to the store, which reads its own clock for
    the GCRA state (the processes' loop clocks do not agree); only the local wait until a
    refused request may retry runs on the loop clock. Waiters of one limiter still queue
    first come, first served, and one background task, running only while the queue is
    not empty, asks the store for the head of the queue (no task per waiter); across
    processes the store decides who comes first. :meth:`try_acquire`, which cannot wait
    for a round trip, is refused. A shared store is real time: on a virtual clock, test
    with the memory store.

    Args:
        rate: units per ``per`` seconds; a positive finite number.
        per: the period, in seconds (float or ``timedelta``); positive.
        burst: units admitted at once from idle, at least 1; ``None`` means
            ``max(rate, 1)``, the units of one period.
        store: where the GCRA state lives: a :class:`RateLimitStore`, or an
            :class:`AsyncRateLimitStore` to share the limit; a fresh
            :class:`MemoryRateLimitStore` if ``None``.

    Raises:
        ArgumentTypeError: an argument has the wrong type.
        InvalidArgumentError: ``rate`` or ``per`` is zero, negative, NaN or infinite, or
            ``burst`` is below 1, NaN or infinite.
    """

    __slots__ = (
        "_admitted",
        "_burst",
        "_delayed",
        "_inline",
        "_interval",
        "_per",
        "_queued",
        "_rate",
        "_ready_at",
        "_returned",
        "_server",
        "_shared",
        "_store",
        "_take",
        "_timer",
        "_waiters",
        "_wakeup",
    )

    def __init__(
        self,
        rate: float,
        per: float | timedelta = 1.0,
        burst: float | None = None,
        *,
        store: RateLimitStore | AsyncRateLimitStore | None = None,
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
        self._store: RateLimitStore | None = None
        self._shared: AsyncRateLimitStore | None = None
        if isinstance(store, RateLimitStore):
            self._store = store
            self._take = store.try_take  # bound once: the hot path's only call
        elif _is_async_store(store):
            self._shared = store
            self._take = _ask_the_store
        else:
            raise ArgumentTypeError(
                "store must be a RateLimitStore or an AsyncRateLimitStore, "
                f"not {type(store).__name__} ({store!r})"
            )
        self._interval = self._per / self._rate
        #: The default store, whose GCRA step acquire() runs inline (one call less on the
        #: hot path: about 85 ns of 480 measured); None for any other store.
        self._inline = store if type(store) is MemoryRateLimitStore else None
        self._waiters: deque[_Waiter] = deque()
        self._queued = 0.0  # total cost of the queue
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = 0
        self._delayed = 0
        # The shared path: the serving task, its wake-up, the loop time at which the head
        # may retry, and units to give back to the store.
        self._server: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._ready_at = -math.inf
        self._returned = 0.0

    def try_acquire(self, cost: float = 1) -> bool:
        """Take ``cost`` units now if the limit allows it and nobody is queued.

        Returns:
            Whether the units were taken. ``False`` also while tasks wait in
            :meth:`acquire`: they are served first.

        Raises:
            ArgumentTypeError: ``cost`` is not a number.
            InvalidArgumentError: ``cost`` is not positive, or exceeds ``burst``.
            UsageError: the store is an :class:`AsyncRateLimitStore`, which answers only
                after a round trip: use :meth:`acquire`, bounded by a deadline.
            RuntimeError: no event loop is running in this thread.
        """
        if cost is not _ONE:
            cost = self._cost_arg(cost)
        if self._waiters or self._take(
            cost, asyncio.get_running_loop().time(), self._interval, self._burst
        ):
            if self._shared is not None:
                raise UsageError(
                    f"{self!r}: try_acquire() cannot ask a shared store, which answers after "
                    "a round trip; await acquire() under a deadline instead"
                )
            return False
        self._admitted += 1
        return True

    async def acquire(self, cost: float = 1) -> None:
        """Take ``cost`` units, waiting in FIFO order until the limit allows it.

        Returns at once (without yielding to the loop) when the units are available and
        nobody is queued; with a shared store, after the one round trip that takes them.

        Deadline: if the wait would end after the enclosing deadline
        (:func:`corral.current_effective_deadline`), nothing is taken and
        :class:`~corral.errors.DeadlineExceeded` is raised at once instead of sleeping.

        Cancellation: a cancelled waiter takes nothing; it leaves the queue (or gives its
        units back if it was admitted in the same instant) and the waiters behind it move
        up, proceeding at once if that frees enough. With a shared store, the deadline
        check uses the store's answer for this request (and the units queued ahead), and
        units are given back by the background task. One case cannot be undone: a task
        cancelled during its first round trip, which the store may or may not have
        answered by taking the units; they stay taken, so the limit errs on the side of
        admitting less, never more.

        Raises:
            ArgumentTypeError: ``cost`` is not a number.
            InvalidArgumentError: ``cost`` is not positive, or exceeds ``burst``.
            DeadlineExceeded: the wait would end past the enclosing deadline.
            BackendUnavailable: a shared store could not be reached (what a store raises
                comes through unchanged; corral's stores raise corral errors).
            asyncio.CancelledError: the waiting task was cancelled.
        """
        if cost is not _ONE:
            cost = self._cost_arg(cost)
        if not self._waiters:
            memory = self._inline
            if memory is not None:  # MemoryRateLimitStore.try_take, inline
                now = asyncio.get_running_loop().time()
                interval = self._interval
                tat = memory._tat
                if tat < now:
                    tat = now
                tat += cost * interval
                if tat - self._burst * interval - now <= _EPSILON:
                    memory._tat = tat
                    self._admitted += 1
                    return
            elif not self._take(
                cost, asyncio.get_running_loop().time(), self._interval, self._burst
            ):
                self._admitted += 1
                return
        await self._wait(cost)

    async def _wait(self, cost: float) -> None:
        store = self._store
        if store is None:
            await self._wait_shared(cost)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = store.delay(self._queued + cost, now, self._interval, self._burst)
        self._refuse_past_deadline(cost, now, wait)
        waiter = self._enqueue(cost, loop)
        if len(self._waiters) == 1:
            self._timer = loop.call_at(now + wait, self._serve)
        await self._park(waiter)

    async def _wait_shared(self, cost: float) -> None:
        """``acquire`` with an :class:`AsyncRateLimitStore`: ask it, or join the queue."""
        shared = self._shared
        assert shared is not None  # only limiters built on an async store get here
        loop = asyncio.get_running_loop()
        if not self._waiters:
            wait = await shared.try_take(cost, self._interval, self._burst)
            if not wait:
                self._admitted += 1
                return
            now = loop.time()
            if not self._waiters:
                self._ready_at = now + wait
            wait += self._queued * self._interval  # answers that overtook this one queued
        else:
            now = loop.time()
            head = self._waiters[0]
            behind_head = self._queued - head.cost + cost
            wait = max(self._ready_at - now, 0.0) + behind_head * self._interval
        self._refuse_past_deadline(cost, now, wait)
        waiter = self._enqueue(cost, loop)
        if self._server is None:
            self._start_server(shared, loop)
        await self._park(waiter)

    async def _park(self, waiter: _Waiter) -> None:
        """Wait in the queue until admitted; on cancellation, take nothing."""
        task = asyncio.current_task()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(task, self)
        try:
            await waiter.future
        except BaseException:
            future = waiter.future
            if future.cancelled() or not future.done():
                self._leave(waiter)
            elif future.exception() is None:  # admitted, but cancelled before it resumed
                self._admitted -= 1
                self._delayed -= 1
                self._give_back(waiter.cost)
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(task, self)

    def _refuse_past_deadline(self, cost: float, now: float, wait: float) -> None:
        deadline = current_effective_deadline()
        if now + wait > deadline > -math.inf:
            raise DeadlineExceeded(
                f"rate limiter would admit cost {cost!r} in {wait:.6g} s, "
                f"after the enclosing deadline ({deadline - now:.6g} s from now)"
            )

    def _enqueue(self, cost: float, loop: asyncio.AbstractEventLoop) -> _Waiter:
        waiter = _Waiter(cost, loop.create_future())
        self._waiters.append(waiter)
        self._queued += cost
        return waiter

    def _leave(self, waiter: _Waiter) -> None:
        was_head = self._waiters[0] is waiter if self._waiters else False
        try:
            self._waiters.remove(waiter)
        except ValueError:  # already dropped by _serve
            return
        self._queued -= waiter.cost
        if was_head:
            if self._shared is None:
                self._serve()
            else:  # the next head may need less than the one that left: ask again now
                self._ready_at = -math.inf
                self._wake_server()

    def _start_server(self, shared: AsyncRateLimitStore, loop: asyncio.AbstractEventLoop) -> None:
        server = loop.create_task(self._serve_shared(shared))
        if not server.done():  # an eager task factory may run it to the end at once
            self._server = server

    def _wake_server(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _give_back(self, cost: float) -> None:
        if self._store is not None:
            self._store.give_back(cost, self._interval)
            self._serve()  # the units may let the next waiters proceed now
            return
        assert self._shared is not None  # a limiter has one store or the other
        self._returned += cost  # the server gives them back: that takes a round trip
        if self._server is None:
            self._start_server(self._shared, asyncio.get_running_loop())
        else:
            self._wake_server()

    async def _serve_shared(self, shared: AsyncRateLimitStore) -> None:
        """The shared path's server: ask the store for the head of the queue, in turn.

        Runs while there are waiters or units to give back. It gives units back first,
        then takes the head's units, once the store's last answer says the head may
        proceed (sooner if the head leaves or units come back). An error from the store
        fails the head's wait with that error, and the next waiter is tried.
        """
        loop = asyncio.get_running_loop()
        waiters = self._waiters
        try:
            while True:
                if self._returned:
                    returned, self._returned = self._returned, 0.0
                    await self._give_back_now(shared, returned)
                    self._ready_at = -math.inf  # the head may proceed sooner now
                    continue
                if not waiters:
                    return
                head = waiters[0]
                if head.future.done():  # cancelled; its task has not resumed yet
                    self._drop(head)
                    continue
                if self._ready_at > loop.time():
                    await self._sleep_until_ready(loop)
                    continue
                try:
                    wait = await shared.try_take(head.cost, self._interval, self._burst)
                except Exception as error:
                    self._drop(head)
                    if not head.future.done():
                        head.future.set_exception(error)
                    continue
                if wait:
                    self._ready_at = loop.time() + wait
                    continue
                self._drop(head)
                if head.future.done():  # cancelled during the round trip that took them
                    self._returned += head.cost
                    continue
                self._admitted += 1
                self._delayed += 1
                head.future.set_result(None)
                if INSTRUMENTS.active:
                    INSTRUMENTS.event(self, "rate_limiter.admitted", {"cost": head.cost})
        finally:
            self._server = None
            if not waiters:
                self._queued = 0.0  # drop float residue once the queue is empty

    def _drop(self, head: _Waiter) -> None:
        if self._waiters and self._waiters[0] is head:
            self._waiters.popleft()
            self._queued -= head.cost

    async def _sleep_until_ready(self, loop: asyncio.AbstractEventLoop) -> None:
        wakeup: asyncio.Future[None] = loop.create_future()
        self._wakeup = wakeup
        timer = loop.call_at(self._ready_at, self._wake_server)
        try:
            await wakeup
        finally:
            timer.cancel()
            self._wakeup = None

    async def _give_back_now(self, shared: AsyncRateLimitStore, cost: float) -> None:
        try:
            await shared.give_back(cost, self._interval)
        except Exception as error:  # the units stay taken: the limit admits less, not more
            if INSTRUMENTS.active:
                INSTRUMENTS.event(
                    self, "rate_limiter.give_back_failed", {"cost": cost, "error": error}
                )

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


def _ask_the_store(cost: float, now: float, interval: float, burst: float) -> float:
    """The synchronous fast path's answer for an async store: ask it, after a round trip."""
    return math.inf


def _is_async_store(store: object) -> bool:
    return isinstance(store, AsyncRateLimitStore) and all(
        inspect.iscoroutinefunction(method) for method in (store.try_take, store.give_back)
    )


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(f"{name} must be a number, not {type(value).__name__} ({value!r})")
    number = float(value)
    if not number > 0 or math.isinf(number):
        raise InvalidArgumentError(f"{name} must be a positive finite number, got {value!r}")
    return number
