"""Go-style channels: rendezvous, buffered or unbounded, with per-end reference counts.

State lives in :class:`Channel`. Waiting tasks queue in two deques, ``_receivers`` and
``_senders``. A plain waiter is a tuple, ``(future, end)`` for a receiver and
``(future, item, end)`` for a sender; a blocked ``select`` queues a
:class:`~corral.channels._cases.Registration` instead. A waiter whose future is already
done (cancelled, or a select that another case won) is dead: whoever meets it at the head
of a deque drops it, and its owner removes it when it resumes.

Handing over is direct: a sender that finds a live receiver sets that receiver's future to
the item; a receiver that finds a live sender takes the item and sets the sender's future.
Nothing is allocated unless a task must wait.

A :class:`~corral.Selector` over the channel may watch it: ``_watchers`` then lists
``(set, index)`` pairs, and every change that may make a receive ready (the buffer
becoming non-empty, an item put back, a sender starting to wait, closing, breaking) adds
``index`` to each set. Unwatched channels pay one ``None`` check on those paths.

Cancellation safety. A cancelled ``receive`` whose future already holds an item puts the
item back at the head of the channel (to the next waiting receiver, else the front of the
buffer), so nothing is consumed. A ``send`` whose item a receiver already took *has*
happened: it returns normally and the cancellation is re-armed for the task's next wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections import deque
from typing import Any, Final, Generic, NoReturn, Self, TypeVar

from .._core._faults import FAULTS
from .._core._hooks import INSTRUMENTS
from .._core._scope import current_task
from ..errors import (
    ArgumentTypeError,
    BrokenResourceError,
    ClosedResourceError,
    EndOfChannel,
    InvalidArgumentError,
    WouldBlock,
)

__all__ = (
    "Channel",
    "ChannelStatistics",
    "ReceiveCase",
    "ReceiveEnd",
    "SendCase",
    "SendEnd",
    "receive_case",
    "send_case",
)

T = TypeVar("T")


class _Signal:
    """A private marker put in a waiter's future instead of an item."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: ``_try_receive`` found nothing.
_EMPTY: Final = _Signal("EMPTY")
#: The channel was closed for sending: receivers end, senders fail.
_CLOSED: Final = _Signal("CLOSED")
#: Every receive end was closed: senders fail with BrokenResourceError.
_BROKEN: Final = _Signal("BROKEN")
#: The end the task was waiting on was closed under it.
_END_CLOSED: Final = _Signal("END_CLOSED")


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """A snapshot of a :class:`Channel`.

    Attributes:
        capacity: the buffer size (``0``: rendezvous, ``math.inf``: unbounded).
        buffered: items in the buffer now.
        peak: the most items the buffer ever held.
        waiting_senders: tasks (and selects) blocked in a send.
        waiting_receivers: tasks (and selects) blocked in a receive.
        open_send_ends: :class:`SendEnd` objects not yet closed.
        open_receive_ends: :class:`ReceiveEnd` objects not yet closed.
        closed: no more items can be sent (``close()`` or every send end closed).
        broken: every receive end was closed; sends fail.
    """

    capacity: float
    buffered: int
    peak: int
    waiting_senders: int
    waiting_receivers: int
    open_send_ends: int
    open_receive_ends: int
    closed: bool
    broken: bool


def _capacity_arg(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(
            f"capacity must be an int or math.inf, not {type(value).__name__} ({value!r})"
        )
    if math.isnan(value) or value < 0:
        raise InvalidArgumentError(
            f"capacity must be 0 (rendezvous), a positive int or math.inf, got {value!r}"
        )
    if value == math.inf:
        return math.inf
    if isinstance(value, float) and not value.is_integer():
        raise InvalidArgumentError(f"capacity must be a whole number of items, got {value!r}")
    return int(value)


def _live(entries: deque[Any]) -> int:
    return sum(not (entry[0] if type(entry) is tuple else entry.waiter).done() for entry in entries)


def _wake_all(entries: deque[Any], signal: _Signal) -> None:
    while entries:
        _signal(entries.popleft(), signal)


def _signal(entry: Any, signal: _Signal) -> None:
    if type(entry) is tuple:
        if not entry[0].done():
            entry[0].set_result(signal)
    elif not entry.waiter.done():
        entry.waiter.set_result((entry.index, signal))


def _notify(watchers: list[tuple[set[int], int]]) -> None:
    """A receive on the channel may have become ready: tell every selector watching it."""
    for ready, index in watchers:
        ready.add(index)


def _discard(entries: deque[Any], entry: object) -> None:
    with contextlib.suppress(ValueError):  # a passer-by may have dropped it as dead
        entries.remove(entry)


def _defer_cancellation(exc: BaseException) -> None:
    """The operation completed although a cancellation arrived: let the cancellation
    strike at the task's next wait instead of here (the count in ``cancelling()`` is kept)."""
    task = current_task()
    if task is not None:
        if task.cancelling():
            task.uncancel()
        task.cancel(exc.args[0] if exc.args else None)


class Channel(Generic[T]):
    """A Go-style channel: tasks send items in, other tasks receive them in FIFO order.

    ``Channel(0)`` (the default) is a rendezvous: a send completes only when a receiver
    takes the item. ``Channel(n)`` buffers up to ``n`` items; ``Channel(math.inf)`` never
    makes a sender wait. Use the channel directly, or split it into counted ends with
    :meth:`split` (or :meth:`send_end` / :meth:`receive_end`) and close each end when its
    owner is done: receivers see the end of the channel once every send end is closed,
    senders fail once every receive end is closed.

    Closing (:meth:`close`, or the last send end): receivers drain what is buffered, then
    get :class:`~corral.errors.EndOfChannel` (``async for`` stops); a send raises
    :class:`~corral.errors.ClosedResourceError`, and so do senders blocked at the time.
    Closing the last receive end *breaks* the channel: buffered items are dropped and
    every send, blocked or new, raises :class:`~corral.errors.BrokenResourceError`.

    Cancellation: a cancelled :meth:`send` never delivers its item and a cancelled
    :meth:`receive` never consumes one; neither leaves a waiter behind. If the cancellation
    arrives after a receiver already took a blocked sender's item, the send has happened:
    it returns normally and the task is cancelled at its next wait. ``send`` and
    ``receive`` yield to the event loop only when they must wait.

    Not thread-safe: use a channel from the thread of its event loop.

    Args:
        capacity: ``0`` for a rendezvous, a positive int, or ``math.inf``.

    Raises:
        InvalidArgumentError: ``capacity`` is negative, NaN or fractional.
        ArgumentTypeError: ``capacity`` is not a number.
    """

    __slots__ = (
        "__weakref__",
        "_broken",
        "_buffer",
        "_capacity",
        "_closed",
        "_open",
        "_peak",
        "_receive_case",
        "_receive_ends",
        "_receivers",
        "_send_ends",
        "_senders",
        "_watchers",
    )

    def __init__(self, capacity: float = 0) -> None:
        self._capacity = _capacity_arg(capacity)
        self._buffer: deque[T] = deque()
        self._receivers: deque[Any] = deque()
        self._senders: deque[Any] = deque()
        self._open = True  # neither closed nor broken: the fast paths check only this
        self._closed = False
        self._broken = False
        self._peak = 0
        self._send_ends = 0
        self._receive_ends = 0
        self._receive_case: ReceiveCase[T] | None = None
        #: Selectors to tell when a receive may have become ready: (their set, index).
        self._watchers: list[tuple[set[int], int]] | None = None

    # -- the fast paths: complete without waiting, or report that they cannot --------

    def _try_send(self, item: T) -> bool:
        if self._open:
            receivers = self._receivers
            while receivers:
                entry = receivers.popleft()
                if type(entry) is tuple:
                    future = entry[0]
                    if not future.done():
                        future.set_result(item)
                        return True
                elif not entry.waiter.done():
                    entry.waiter.set_result((entry.index, item))
                    return True
            buffer = self._buffer
            if len(buffer) < self._capacity:
                buffer.append(item)
                if len(buffer) > self._peak:
                    self._peak = len(buffer)
                if self._watchers is not None and len(buffer) == 1:
                    _notify(self._watchers)
                return True
        return False

    def _take_sender(self) -> Any:
        senders = self._senders
        while senders:
            entry = senders.popleft()
            if type(entry) is tuple:
                future = entry[0]
                if not future.done():
                    future.set_result(None)
                    return entry[1]
            elif not entry.waiter.done():
                entry.waiter.set_result((entry.index, None))
                return entry.item
        return _EMPTY

    def _try_receive(self) -> Any:
        buffer = self._buffer
        if buffer:
            item = buffer.popleft()
            if self._senders and len(buffer) < self._capacity:
                moved = self._take_sender()
                if moved is not _EMPTY:
                    buffer.append(moved)
            return item
        if self._senders:
            return self._take_sender()
        return _EMPTY

    def _send_ready(self) -> bool:
        """Whether a send would complete (or fail) now, without waiting."""
        if not self._open or len(self._buffer) < self._capacity:
            return True
        receivers = self._receivers
        while receivers:
            entry = receivers[0]
            if not (entry[0] if type(entry) is tuple else entry.waiter).done():
                return True
            receivers.popleft()
        return False

    def _receive_ready(self) -> bool:
        """Whether a receive would complete (or end) now, without waiting."""
        if self._buffer or not self._open:
            return True
        senders = self._senders
        while senders:
            entry = senders[0]
            if not (entry[0] if type(entry) is tuple else entry.waiter).done():
                return True
            senders.popleft()
        return False

    def _unreceive(self, item: T) -> None:
        """Put back an item whose receiver was cancelled before it could take it."""
        if self._broken:
            return
        receivers = self._receivers
        while receivers:
            entry = receivers.popleft()
            if type(entry) is tuple:
                if not entry[0].done():
                    entry[0].set_result(item)
                    return
            elif not entry.waiter.done():
                entry.waiter.set_result((entry.index, item))
                return
        self._buffer.appendleft(item)
        if self._watchers is not None:
            _notify(self._watchers)

    # -- the slow paths ------------------------------------------------------------------

    def _send_failure(self) -> ClosedResourceError | BrokenResourceError:
        if self._broken:
            return BrokenResourceError("every receive end of the channel is closed")
        return ClosedResourceError("the channel is closed for sending")

    async def _send_wait(self, item: T, end: SendEnd[T] | None) -> None:
        if not self._open:
            raise self._send_failure()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (future, item, end)
        self._senders.append(entry)
        if self._watchers is not None:
            _notify(self._watchers)
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(current_task(), self)
        try:
            result = await future
        except BaseException as exc:
            if future.done() and not future.cancelled():
                if future.result() is None and isinstance(exc, asyncio.CancelledError):
                    _defer_cancellation(exc)  # a receiver took the item: the send happened
                    return
            else:
                future.cancel()
                _discard(self._senders, entry)
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(current_task(), self)
        if result is not None:
            self._raise_for(result, sending=True)

    async def _receive_wait(self, end: ReceiveEnd[T] | None) -> T:
        if not self._open:
            self._raise_for(_BROKEN if self._broken else _CLOSED, sending=False)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (future, end)
        self._receivers.append(entry)
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(current_task(), self)
        try:
            item = await future
        except BaseException:
            if future.done() and not future.cancelled():
                if type(future.result()) is not _Signal:
                    self._unreceive(future.result())
            else:
                future.cancel()
                _discard(self._receivers, entry)
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(current_task(), self)
        if type(item) is _Signal:
            self._raise_for(item, sending=False)
        return item  # type: ignore[no-any-return]

    def _raise_for(self, signal: object, *, sending: bool) -> NoReturn:
        if signal is _END_CLOSED:
            raise ClosedResourceError(
                f"the {'send' if sending else 'receive'} end was closed while this task waited"
            )
        if sending:
            raise self._send_failure()
        if signal is _CLOSED:
            raise EndOfChannel
        raise ClosedResourceError("every receive end of the channel is closed")

    # -- public operations -------------------------------------------------------------

    async def send(self, item: T) -> None:
        """Send ``item``, waiting while the buffer is full (or, for a rendezvous, until a
        receiver takes it).

        Cancellation: if cancelled while waiting, the item is not sent. If a receiver took
        the item just before the cancellation arrived, the send completed: it returns
        and the task is cancelled at its next wait.

        Raises:
            ClosedResourceError: the channel is closed, or was closed while waiting.
            BrokenResourceError: every receive end is closed.
        """
        if FAULTS.active:
            await FAULTS.hit("channel.send", self)
        if not self._try_send(item):
            await self._send_wait(item, None)

    def send_nowait(self, item: T) -> None:
        """Send ``item`` if that needs no waiting.

        Raises:
            WouldBlock: the buffer is full and no receiver is waiting.
            ClosedResourceError: the channel is closed.
            BrokenResourceError: every receive end is closed.
        """
        if not self._try_send(item):
            if not self._open:
                raise self._send_failure()
            raise WouldBlock

    async def receive(self) -> T:
        """Receive the next item, waiting until one is sent.

        Cancellation: if cancelled while waiting, nothing is consumed: an item handed to
        this task just before the cancellation goes back to the head of the channel.

        Raises:
            EndOfChannel: the channel is closed and drained.
            ClosedResourceError: every receive end is closed.
        """
        if FAULTS.active:
            await FAULTS.hit("channel.receive", self)
        item = self._try_receive()
        if item is _EMPTY:
            return await self._receive_wait(None)
        return item  # type: ignore[no-any-return]

    def receive_nowait(self) -> T:
        """Receive the next item if one is there without waiting.

        Raises:
            WouldBlock: nothing is buffered and no sender is waiting.
            EndOfChannel: the channel is closed and drained.
            ClosedResourceError: every receive end is closed.
        """
        item = self._try_receive()
        if item is _EMPTY:
            if not self._open:
                self._raise_for(_BROKEN if self._broken else _CLOSED, sending=False)
            raise WouldBlock
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the channel for sending, for every end (Go's ``close``). Idempotent.

        Receivers get what is buffered, then :class:`~corral.errors.EndOfChannel`;
        blocked and later senders get :class:`~corral.errors.ClosedResourceError`.
        """
        if self._closed:
            return
        self._closed = True
        self._open = False
        _wake_all(self._senders, _CLOSED)
        if self._watchers is not None:
            _notify(self._watchers)
        _wake_all(self._receivers, _CLOSED)
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "channel.closed", {"buffered": len(self._buffer)})

    def _break(self) -> None:
        self._broken = True
        self._open = False
        self._buffer.clear()
        _wake_all(self._senders, _BROKEN)
        if self._watchers is not None:
            _notify(self._watchers)
        _wake_all(self._receivers, _BROKEN)
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "channel.broken", {})

    def receive_case(self) -> ReceiveCase[T]:
        """A :func:`corral.select` case that receives from this channel (reusable)."""
        case = self._receive_case
        if case is None:
            case = self._receive_case = ReceiveCase(self, None)
        return case

    def send_case(self, item: T) -> SendCase[T]:
        """A :func:`corral.select` case that sends ``item`` to this channel."""
        return SendCase(self, None, item)

    def send_end(self) -> SendEnd[T]:
        """A new counted send end; the channel closes when every send end is closed.

        Raises:
            ClosedResourceError: the channel is already closed.
        """
        if self._closed:
            raise ClosedResourceError("the channel is closed; it cannot get a new send end")
        return SendEnd(self)

    def receive_end(self) -> ReceiveEnd[T]:
        """A new counted receive end; the channel breaks when every one is closed.

        Raises:
            ClosedResourceError: every receive end was already closed.
        """
        if self._broken:
            raise ClosedResourceError("every receive end of the channel is closed")
        return ReceiveEnd(self)

    def split(self) -> tuple[SendEnd[T], ReceiveEnd[T]]:
        """A new send end and a new receive end: ``tx, rx = Channel[int](8).split()``.

        Raises:
            ClosedResourceError: the channel is closed or broken.
        """
        return self.send_end(), self.receive_end()

    def statistics(self) -> ChannelStatistics:
        """A snapshot: buffer use and peak, waiting tasks, open ends, closed or broken."""
        return ChannelStatistics(
            capacity=self._capacity,
            buffered=len(self._buffer),
            peak=self._peak,
            waiting_senders=_live(self._senders),
            waiting_receivers=_live(self._receivers),
            open_send_ends=self._send_ends,
            open_receive_ends=self._receive_ends,
            closed=self._closed,
            broken=self._broken,
        )

    @property
    def capacity(self) -> float:
        """The buffer size: ``0`` (rendezvous), a positive int, or ``math.inf``."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """Whether the channel is closed for sending."""
        return self._closed

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<Channel {_describe(self)}>"


def _describe(channel: Channel[Any]) -> str:
    stats = channel.statistics()
    capacity = "unbounded" if stats.capacity == math.inf else f"{stats.buffered}/{stats.capacity}"
    parts = [
        "rendezvous" if stats.capacity == 0 else f"{capacity} buffered",
        f"{stats.waiting_senders} waiting to send",
        f"{stats.waiting_receivers} waiting to receive",
    ]
    if stats.open_send_ends or stats.open_receive_ends:
        parts.append(f"ends {stats.open_send_ends} send/{stats.open_receive_ends} receive")
    if stats.broken:
        parts.append("broken")
    elif stats.closed:
        parts.append("closed")
    return ", ".join(parts)


# The select cases and the ends live in modules of their own; they are imported here,
# once Channel exists, because Channel hands them out. Cases first: the ends use them.
from ._channel_cases import ReceiveCase, SendCase, receive_case, send_case  # noqa: E402
from ._ends import ReceiveEnd, SendEnd  # noqa: E402
