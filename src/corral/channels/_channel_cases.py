""":func:`corral.select` cases on channels: receive from one, or send an item to one.

Imported by ``_channel`` once ``Channel`` exists; import these names from there (or from
corral).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Generic

from ..errors import (
    ArgumentTypeError,
    ClosedResourceError,
)
from ._cases import Registration, SelectCase, Selected, selected
from ._channel import (
    _BROKEN,
    _CLOSED,
    _EMPTY,
    Channel,
    T,
    _discard,
    _notify,
    _Signal,
)

if TYPE_CHECKING:
    from ._ends import ReceiveEnd, SendEnd

__all__ = ("ReceiveCase", "SendCase", "receive_case", "send_case")


class ReceiveCase(SelectCase, Generic[T]):
    """A :func:`corral.select` case that receives one item from a channel.

    Fires with the item as ``value``, or with ``closed=True`` once the channel is closed
    and drained. On a ``None`` channel it never fires (Go's nil channel).
    """

    __slots__ = ("_direct", "channel", "end")

    def __init__(self, channel: Channel[T] | None, end: ReceiveEnd[T] | None) -> None:
        self.channel = channel
        self.end = end
        self._direct = channel if end is None else None

    def _ready(self) -> bool:
        channel = self.channel
        if channel is None:
            return False
        end = self.end
        if end is not None and end._closed:
            raise ClosedResourceError("select on a closed receive end")
        if channel._buffer or not channel._open:
            return True
        return bool(channel._senders) and channel._receive_ready()

    def _commit(self, index: int) -> Selected:
        channel = self.channel
        assert channel is not None
        item = channel._try_receive()
        if item is _EMPTY:
            if channel._broken:
                channel._raise_for(_BROKEN, sending=False)
            return selected(index, self, None, True)
        return selected(index, self, item)

    def _register(self, waiter: asyncio.Future[tuple[int, Any]], index: int) -> object:
        channel = self.channel
        if channel is None:
            return None
        registration = Registration(waiter, index, None, self.end)
        channel._receivers.append(registration)
        return registration

    def _unregister(self, handle: object) -> None:
        if handle is not None:
            assert self.channel is not None
            _discard(self.channel._receivers, handle)

    def _resolve(self, index: int, raw: Any) -> Selected:
        if raw is _CLOSED:
            return selected(index, self, None, True)
        if type(raw) is _Signal:
            assert self.channel is not None
            self.channel._raise_for(raw, sending=False)
        return selected(index, self, raw)

    def _undo(self, raw: Any) -> bool:
        if type(raw) is not _Signal:
            assert self.channel is not None
            self.channel._unreceive(raw)
        return False

    def __repr__(self) -> str:
        return f"<ReceiveCase on {self.channel!r}>"


class SendCase(SelectCase, Generic[T]):
    """A :func:`corral.select` case that sends ``item`` to a channel.

    Fires (``value`` is ``None``) once the item is sent. If it is chosen while the
    channel is closed or broken, ``select`` raises as ``send`` would. On a ``None``
    channel it never fires.
    """

    __slots__ = ("channel", "end", "item")

    def __init__(self, channel: Channel[T] | None, end: SendEnd[T] | None, item: T) -> None:
        self.channel = channel
        self.end = end
        self.item = item

    def _ready(self) -> bool:
        channel = self.channel
        if channel is None:
            return False
        end = self.end
        if end is not None and end._closed:
            raise ClosedResourceError("select on a closed send end")
        return channel._send_ready()

    def _commit(self, index: int) -> Selected:
        channel = self.channel
        assert channel is not None
        if not channel._try_send(self.item):
            raise channel._send_failure()
        return selected(index, self, None)

    def _register(self, waiter: asyncio.Future[tuple[int, Any]], index: int) -> object:
        channel = self.channel
        if channel is None:
            return None
        registration = Registration(waiter, index, self.item, self.end)
        channel._senders.append(registration)
        if channel._watchers is not None:
            _notify(channel._watchers)
        return registration

    def _unregister(self, handle: object) -> None:
        if handle is not None:
            assert self.channel is not None
            _discard(self.channel._senders, handle)

    def _resolve(self, index: int, raw: Any) -> Selected:
        if raw is not None:
            assert self.channel is not None
            self.channel._raise_for(raw, sending=True)
        return selected(index, self, None)

    def _undo(self, raw: Any) -> bool:
        return raw is None  # a receiver took the item: the send happened

    def __repr__(self) -> str:
        return f"<SendCase {self.item!r} on {self.channel!r}>"


def receive_case(channel: Channel[T] | ReceiveEnd[T] | None) -> ReceiveCase[T]:
    """A :func:`corral.select` case receiving from ``channel`` (a channel or receive end).

    ``None`` gives a case that never fires, as a nil channel in Go: set a variable to
    ``None`` to switch its case off.

    Raises:
        ArgumentTypeError: ``channel`` is neither a channel, a receive end nor ``None``.
    """
    if channel is None:
        return ReceiveCase(None, None)
    from ._ends import ReceiveEnd  # not at the top: _ends imports this module

    if isinstance(channel, (Channel, ReceiveEnd)):
        return channel.receive_case()
    raise _wrong_channel("receive_case", "ReceiveEnd", channel)


def send_case(channel: Channel[T] | SendEnd[T] | None, item: T) -> SendCase[T]:
    """A :func:`corral.select` case sending ``item`` to ``channel`` (a channel or send end).

    ``None`` gives a case that never fires, as a nil channel in Go.

    Raises:
        ArgumentTypeError: ``channel`` is neither a channel, a send end nor ``None``.
    """
    if channel is None:
        return SendCase(None, None, item)
    from ._ends import SendEnd  # not at the top: _ends imports this module

    if isinstance(channel, (Channel, SendEnd)):
        return channel.send_case(item)
    raise _wrong_channel("send_case", "SendEnd", channel)


def _wrong_channel(function: str, wanted: str, channel: object) -> ArgumentTypeError:
    return ArgumentTypeError(
        f"{function}() takes a Channel, a {wanted} or None, not {type(channel).__name__}"
    )
