"""BridgeChannel: one FIFO shared by synchronous threads and async tasks on any loop.

Threads block in ``put`` / ``get``; tasks await ``send`` / ``receive``; both sides may be
many, on any threads and any event loops. State lives behind one ``threading.Lock``
held only to move an item and pick a waiter to wake.

Waking is "retry", not hand-over: a sender that buffered an item wakes the oldest
waiting receiver (if any), which takes the next item when it runs. A thread is woken by
releasing its private lock; a task by resolving its future, directly when the waker is
on the task's loop thread and through ``call_soon_threadsafe`` otherwise, so a busy
consumer that never waits costs the producers no loop wake-ups at all. A woken waiter
that gives up (cancelled, timed out) passes its wake-up on, so no item is stranded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Final, Generic, Self, TypeVar

from .._core._faults import FAULTS
from .._core._hooks import INSTRUMENTS
from .._core._scope import current_task
from .._core._time import Seconds, seconds_arg
from ..errors import (
    ArgumentTypeError,
    ClosedResourceError,
    DeadlineExceeded,
    EndOfChannel,
    InvalidArgumentError,
    UsageError,
    WouldBlock,
)

__all__ = ("BridgeChannel", "BridgeChannelStatistics")

T = TypeVar("T")

_running_loop = asyncio._get_running_loop


@dataclasses.dataclass(frozen=True, slots=True)
class BridgeChannelStatistics:
    """A snapshot of a :class:`BridgeChannel`."""

    capacity: float
    buffered: int
    closed: bool
    waiting_receivers: int
    waiting_senders: int
    sent: int
    received: int


_FULL: Final = object()  # _offer_locked: no room for the item
_EMPTY: Final = object()  # _take_locked: nothing to take yet


class _TaskWaiter:
    __slots__ = ("future", "loop", "woken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.woken = False

    def wake(self) -> None:
        self.woken = True
        loop = self.loop
        if _running_loop() is loop:
            if not self.future.done():
                self.future.set_result(None)
            return
        try:
            loop.call_soon_threadsafe(_set_if_pending, self.future)
        except RuntimeError:  # its loop is closed: nobody is left to wake
            return


class _ThreadWaiter:
    __slots__ = ("lock", "woken")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.woken = False

    def wake(self) -> None:
        self.woken = True
        self.lock.release()


_Waiter = _TaskWaiter | _ThreadWaiter


def _set_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class BridgeChannel(Generic[T]):
    """A FIFO channel between synchronous threads and async tasks, in any mix.

    ::

        channel = corral.BridgeChannel[int](capacity=100)
        # in a thread:            # in a task, on any loop:
        channel.put(1)            item = await channel.receive()
        channel.close()           async for item in channel: ...

    Threads use the blocking ``put(item, timeout=None)`` / ``get(timeout=None)``;
    tasks use ``await send(item)`` / ``await receive()`` and ``async for``; anyone may
    use ``put_nowait`` / ``get_nowait``. Items come out in the order they went in (so
    each producer's items stay in order), and each item is received exactly once.

    Closing: :meth:`close` (from any thread) stops further sends, which raise
    :class:`~corral.errors.ClosedResourceError`, and wakes every waiter; receivers
    drain what is buffered, then get :class:`~corral.errors.EndOfChannel` (iteration
    simply stops).

    Blocking ``put`` / ``get`` refuse to run on a thread that runs an event loop (they
    would freeze it) when they would have to wait; use ``await send`` / ``receive``
    there.

    Args:
        capacity: how many items the buffer holds before senders wait; ``math.inf``
            (the default) for unbounded. At least 1.

    Raises:
        ArgumentTypeError: ``capacity`` is not a number.
        InvalidArgumentError: ``capacity`` is smaller than 1 or NaN.
    """

    __slots__ = (
        "__weakref__",
        "_buffer",
        "_capacity",
        "_closed",
        "_lock",
        "_received",
        "_receivers",
        "_senders",
        "_sent",
    )

    def __init__(self, capacity: float = math.inf) -> None:
        self._capacity = _capacity_arg(capacity)
        self._buffer: deque[T] = deque()
        self._lock = threading.Lock()
        self._receivers: deque[_Waiter] = deque()
        self._senders: deque[_Waiter] = deque()
        self._closed = False
        self._sent = 0
        self._received = 0

    # -- non-blocking ---------------------------------------------------------------------

    def put_nowait(self, item: T) -> None:
        """Buffer ``item`` without waiting; callable from any thread or task.

        Raises:
            WouldBlock: the buffer is full.
            ClosedResourceError: the channel is closed.
        """
        with self._lock:
            waiter = self._offer_locked(item)
        if waiter is _FULL:
            raise WouldBlock(f"{self!r} is full")
        if waiter is not None:
            waiter.wake()

    def get_nowait(self) -> T:
        """Take the oldest item without waiting; callable from any thread or task.

        Raises:
            WouldBlock: the buffer is empty and the channel is open.
            EndOfChannel: the channel is closed and drained.
        """
        with self._lock:
            taken = self._take_locked()
        if taken is _EMPTY:
            raise WouldBlock(f"{self!r} is empty")
        item, waiter = taken
        if waiter is not None:
            waiter.wake()
        return item  # type: ignore[no-any-return]

    # -- the two steps every operation takes, under the lock ------------------------------

    def _offer_locked(self, item: T) -> Any:
        """Buffer ``item`` if there is room: return the receiver to wake (or ``None``), or
        ``_FULL`` if there is no room. Call with the lock held.

        Raises:
            ClosedResourceError: the channel is closed.
        """
        if self._closed:
            raise ClosedResourceError(f"{self!r}: cannot send on a closed channel")
        if len(self._buffer) >= self._capacity:
            return _FULL
        self._buffer.append(item)
        self._sent += 1
        return self._receivers.popleft() if self._receivers else None

    def _take_locked(self) -> Any:
        """Take the oldest item: return ``(item, sender to wake or None)``, or ``_EMPTY``
        if there is none yet. Call with the lock held.

        Raises:
            EndOfChannel: the channel is closed and drained.
        """
        if self._buffer:
            item = self._buffer.popleft()
            self._received += 1
            return item, (self._senders.popleft() if self._senders else None)
        if self._closed:
            raise EndOfChannel(f"{self!r} is closed and drained")
        return _EMPTY

    # -- async ------------------------------------------------------------------------------

    async def send(self, item: T) -> None:
        """Buffer ``item``, waiting (FIFO among waiting senders) while the buffer is full.

        Cancellation: a cancelled send did not send; its place in line is passed on.

        Raises:
            ClosedResourceError: the channel is closed (before or while waiting).
        """
        if FAULTS.active:
            await FAULTS.hit("bridge.send", self)
        while True:
            with self._lock:
                waiter = self._offer_locked(item)
                if waiter is not _FULL:
                    break
                me = _TaskWaiter(asyncio.get_running_loop())
                self._senders.append(me)
            await self._wait(me, self._senders)
        if waiter is not None:
            waiter.wake()

    async def receive(self) -> T:
        """Take the oldest item, waiting (FIFO among waiting receivers) while none is there.

        Cancellation: a cancelled receive took nothing; the item it would have taken
        stays for the next receiver.

        Raises:
            EndOfChannel: the channel is closed and drained.
        """
        if FAULTS.active:
            await FAULTS.hit("bridge.receive", self)
        while True:
            with self._lock:
                taken = self._take_locked()
                if taken is not _EMPTY:
                    break
                me = _TaskWaiter(asyncio.get_running_loop())
                self._receivers.append(me)
            await self._wait(me, self._receivers)
        item, waiter = taken
        if waiter is not None:
            waiter.wake()
        return item  # type: ignore[no-any-return]

    async def _wait(self, me: _TaskWaiter, line: deque[_Waiter]) -> None:
        task = current_task()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(task, self)
        try:
            await me.future
        except BaseException:
            self._leave(me, line)
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(task, self)

    def _leave(self, me: _Waiter, line: deque[_Waiter]) -> None:
        """``me`` gives up waiting: leave the line, or pass on a wake-up it already got."""
        with self._lock:
            if not me.woken:
                line.remove(me)
                return
            successor = line.popleft() if line else None
        if successor is not None:
            successor.wake()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        """The next item; iteration ends once the channel is closed and drained."""
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None

    # -- blocking (threads) ----------------------------------------------------------------

    def put(self, item: T, timeout: Seconds | None = None) -> None:
        """Buffer ``item``, blocking this thread while the buffer is full.

        Args:
            item: what to send.
            timeout: seconds to wait at most (``timedelta`` accepted); ``None``: no limit.

        Raises:
            DeadlineExceeded: ``timeout`` passed with the buffer still full (a
                ``TimeoutError``; nothing was sent).
            ClosedResourceError: the channel is closed (before or while waiting).
            InvalidArgumentError: ``timeout`` is negative or NaN.
            UsageError: it would block a thread that runs an event loop.
        """
        deadline = _deadline(timeout)
        while True:
            with self._lock:
                waiter = self._offer_locked(item)
                if waiter is not _FULL:
                    break
                me = self._thread_waiter("put", self._senders)
            self._block(me, self._senders, deadline, "put")
        if waiter is not None:
            waiter.wake()

    def get(self, timeout: Seconds | None = None) -> T:
        """Take the oldest item, blocking this thread while none is there.

        Args:
            timeout: seconds to wait at most (``timedelta`` accepted); ``None``: no limit.

        Raises:
            DeadlineExceeded: ``timeout`` passed with nothing to take (a ``TimeoutError``).
            EndOfChannel: the channel is closed and drained.
            InvalidArgumentError: ``timeout`` is negative or NaN.
            UsageError: it would block a thread that runs an event loop.
        """
        deadline = _deadline(timeout)
        while True:
            with self._lock:
                taken = self._take_locked()
                if taken is not _EMPTY:
                    break
                me = self._thread_waiter("get", self._receivers)
            self._block(me, self._receivers, deadline, "get")
        item, waiter = taken
        if waiter is not None:
            waiter.wake()
        return item  # type: ignore[no-any-return]

    def _thread_waiter(self, what: str, line: deque[_Waiter]) -> _ThreadWaiter:
        """Queue a waiter for this thread (called with the lock held)."""
        if _running_loop() is not None:
            raise UsageError(
                f"BridgeChannel.{what}() would block a thread that runs an event loop; "
                f"use await {'send' if what == 'put' else 'receive'}() there"
            )
        me = _ThreadWaiter()
        line.append(me)
        return me

    def _block(self, me: _ThreadWaiter, line: deque[_Waiter], deadline: float, what: str) -> None:
        """Wait until ``me`` is woken or ``deadline`` (monotonic; ``inf``: none) passes."""
        timeout = -1.0 if deadline == math.inf else max(0.0, deadline - time.monotonic())
        try:
            if me.lock.acquire(timeout=timeout):
                return
        except BaseException:  # KeyboardInterrupt while blocked
            self._leave(me, line)
            raise
        with self._lock:
            if me.woken:  # woken just as the wait timed out: take the chance
                return
            line.remove(me)
        raise DeadlineExceeded(f"{self!r}: {what}() timed out")

    def __iter__(self) -> Iterator[T]:
        """Blocking iteration for threads: ``get()`` until the channel is closed and drained."""
        while True:
            try:
                yield self.get()
            except EndOfChannel:
                return

    # -- closing and state ---------------------------------------------------------------

    def close(self) -> None:
        """Close the channel from any thread; closing again does nothing.

        Waiting senders raise :class:`~corral.errors.ClosedResourceError`; receivers
        drain the buffer, then get :class:`~corral.errors.EndOfChannel`.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiters = [*self._receivers, *self._senders]
            self._receivers.clear()
            self._senders.clear()
        for waiter in waiters:
            waiter.wake()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def capacity(self) -> float:
        """How many items the buffer holds (``inf``: unbounded)."""
        return self._capacity

    def __len__(self) -> int:
        return len(self._buffer)

    def statistics(self) -> BridgeChannelStatistics:
        """A snapshot: capacity, buffered items, closed, waiters, and items sent/received."""
        with self._lock:
            return BridgeChannelStatistics(
                capacity=self._capacity,
                buffered=len(self._buffer),
                closed=self._closed,
                waiting_receivers=len(self._receivers),
                waiting_senders=len(self._senders),
                sent=self._sent,
                received=self._received,
            )

    def __repr__(self) -> str:
        capacity = "unbounded" if self._capacity == math.inf else f"{self._capacity:g}"
        state = "closed" if self._closed else "open"
        return (
            f"<BridgeChannel {len(self._buffer)}/{capacity} buffered, "
            f"{len(self._receivers)} receiving, {len(self._senders)} sending, {state}>"
        )


def _deadline(timeout: Seconds | None) -> float:
    if timeout is None:
        return math.inf
    return time.monotonic() + seconds_arg(timeout, "timeout")


def _capacity_arg(value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArgumentTypeError(
            f"capacity must be a number of items (or math.inf), not {type(value).__name__} "
            f"({value!r})"
        )
    if math.isnan(value) or value < 1:
        raise InvalidArgumentError(
            f"capacity must be at least 1 (or math.inf for unbounded), got {value!r}"
        )
    if value != math.inf and value != int(value):
        raise InvalidArgumentError(f"capacity must be a whole number of items, got {value!r}")
    return value
