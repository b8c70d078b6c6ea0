"""The counted ends of a :class:`~corral.channels._channel.Channel`.

A channel closes for sending when its last :class:`SendEnd` closes, and breaks (senders
get ``BrokenResourceError``) when its last :class:`ReceiveEnd` closes. Imported by
``_channel`` once ``Channel`` exists; import these names from there (or from corral).
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, NoReturn, Self

from .._core._faults import FAULTS
from ..errors import (
    ArgumentTypeError,
    ClosedResourceError,
    EndOfChannel,
)
from ._channel import (
    _EMPTY,
    _END_CLOSED,
    Channel,
    ChannelStatistics,
    T,
    _describe,
    _signal,
)
from ._channel_cases import ReceiveCase, SendCase

__all__ = ("ReceiveEnd", "SendEnd")


class _End(Generic[T]):
    """What both ends share: closing as a (sync or async) context manager, state, repr."""

    __slots__ = ("_channel", "_closed")

    _channel: Channel[T]
    _closed: bool

    def __init__(self, channel: Channel[T]) -> None:
        self._channel = channel
        self._closed = False

    def close(self) -> None:
        raise NotImplementedError

    def clone(self) -> Self:
        """Another counted end of the same kind on the same channel.

        Raises:
            ClosedResourceError: this end is closed.
        """
        if self._closed:
            raise ClosedResourceError(f"cannot clone a closed {type(self).__name__}")
        return type(self)(self._channel)

    @property
    def closed(self) -> bool:
        """Whether this end is closed."""
        return self._closed

    def statistics(self) -> ChannelStatistics:
        """The channel's statistics."""
        return self._channel.statistics()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {state} of channel: {_describe(self._channel)}>"


class SendEnd(_End[T]):
    """The sending side of a :class:`Channel`, counted: close it when done sending.

    Get one from :meth:`Channel.split` or :meth:`Channel.send_end`; :meth:`clone` it for
    each producer. The channel closes for sending (receivers drain, then end) when every
    send end is closed. Use it as a context manager (``async with tx:`` or ``with tx:``)
    to close it on the way out.

    Cancellation: as :meth:`Channel.send`.
    """

    __slots__ = ()

    def __init__(self, channel: Channel[T]) -> None:
        super().__init__(channel)
        channel._send_ends += 1

    async def send(self, item: T) -> None:
        """Send ``item`` (see :meth:`Channel.send`).

        Raises:
            ClosedResourceError: this end is closed (also if closed while waiting), or
                the channel is.
            BrokenResourceError: every receive end is closed.
        """
        if FAULTS.active:
            await FAULTS.hit("channel.send", self._channel)
        if self._closed:
            raise ClosedResourceError("this send end is closed")
        channel = self._channel
        if not channel._try_send(item):
            await channel._send_wait(item, self)

    def send_nowait(self, item: T) -> None:
        """Send ``item`` if that needs no waiting (see :meth:`Channel.send_nowait`).

        Raises:
            WouldBlock: the buffer is full and no receiver is waiting.
            ClosedResourceError: this end or the channel is closed.
            BrokenResourceError: every receive end is closed.
        """
        if self._closed:
            raise ClosedResourceError("this send end is closed")
        self._channel.send_nowait(item)

    def send_case(self, item: T) -> SendCase[T]:
        """A :func:`corral.select` case that sends ``item`` through this end."""
        return SendCase(self._channel, self, item)

    def close(self) -> None:
        """Close this end (idempotent). Tasks blocked sending through it get
        :class:`~corral.errors.ClosedResourceError`; when it was the last open send end,
        the channel closes for sending."""
        if self._closed:
            return
        self._closed = True
        channel = self._channel
        _wake_end(channel._senders, self)
        channel._send_ends -= 1
        if channel._send_ends == 0:
            channel.close()

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> NoReturn:
            if name in _RECEIVE_NAMES:
                raise ArgumentTypeError(
                    f"{name}() is not available on a SendEnd: receive through the "
                    "ReceiveEnd of the channel (Channel.split() gives both)"
                )
            raise AttributeError(name)

        def __aiter__(self) -> NoReturn:
            raise ArgumentTypeError(
                "cannot iterate a SendEnd: iterate the channel's ReceiveEnd instead"
            )


class ReceiveEnd(_End[T]):
    """The receiving side of a :class:`Channel`, counted: close it when done receiving.

    Get one from :meth:`Channel.split` or :meth:`Channel.receive_end`; :meth:`clone` it
    for each consumer. When every receive end is closed the channel breaks: senders get
    :class:`~corral.errors.BrokenResourceError`. ``async for item in rx`` receives until
    the channel ends. Use it as a context manager to close it on the way out.

    Cancellation: as :meth:`Channel.receive`.
    """

    __slots__ = ()

    def __init__(self, channel: Channel[T]) -> None:
        super().__init__(channel)
        channel._receive_ends += 1

    async def receive(self) -> T:
        """Receive the next item (see :meth:`Channel.receive`).

        Raises:
            EndOfChannel: the channel is closed and drained.
            ClosedResourceError: this end is closed (also if closed while waiting).
        """
        if FAULTS.active:
            await FAULTS.hit("channel.receive", self._channel)
        if self._closed:
            raise ClosedResourceError("this receive end is closed")
        channel = self._channel
        item = channel._try_receive()
        if item is _EMPTY:
            return await channel._receive_wait(self)
        return item  # type: ignore[no-any-return]

    def receive_nowait(self) -> T:
        """Receive the next item if one is there (see :meth:`Channel.receive_nowait`).

        Raises:
            WouldBlock: nothing is buffered and no sender is waiting.
            EndOfChannel: the channel is closed and drained.
            ClosedResourceError: this end is closed.
        """
        if self._closed:
            raise ClosedResourceError("this receive end is closed")
        return self._channel.receive_nowait()

    def receive_case(self) -> ReceiveCase[T]:
        """A :func:`corral.select` case that receives through this end."""
        return ReceiveCase(self._channel, self)

    def close(self) -> None:
        """Close this end (idempotent). Tasks blocked receiving through it get
        :class:`~corral.errors.ClosedResourceError`; when it was the last open receive
        end, the channel breaks (buffered items are dropped, senders fail)."""
        if self._closed:
            return
        self._closed = True
        channel = self._channel
        _wake_end(channel._receivers, self)
        channel._receive_ends -= 1
        if channel._receive_ends == 0:
            channel._break()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> NoReturn:
            if name in _SEND_NAMES:
                raise ArgumentTypeError(
                    f"{name}() is not available on a ReceiveEnd: send through the "
                    "SendEnd of the channel (Channel.split() gives both)"
                )
            raise AttributeError(name)


_RECEIVE_NAMES: Final = frozenset({"receive", "receive_nowait", "receive_case"})
_SEND_NAMES: Final = frozenset({"send", "send_nowait", "send_case"})


def _wake_end(entries: deque[Any], end: object) -> None:
    """Fail every waiter that waits through ``end``, which was just closed."""
    for entry in [e for e in entries if (e[-1] if type(e) is tuple else e.end) is end]:
        entries.remove(entry)
        _signal(entry, _END_CLOSED)
