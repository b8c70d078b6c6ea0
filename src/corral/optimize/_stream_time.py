"""The time-based stages of a :class:`corral.Stream`: chunk windows, throttle, debounce
and the per-item timeout.

Every one of them reads the running loop's clock (through cancel scopes and
:class:`corral.RateLimiter`), so corral's virtual clock drives them in tests. The waits
happen in the consumer's task and are bounded by its cancel scopes and deadlines.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from .._core._scope import move_on_after, move_on_at
from ..errors import DeadlineExceeded
from ._ratelimit import RateLimiter
from ._stream_base import Pump, PumpStage, Stage

__all__ = ("ChunkWindow", "Debounce", "ItemTimeout", "Throttle")

T = TypeVar("T")


class ChunkWindow(PumpStage[Any]):
    """Lists of up to ``size`` items, cut short ``timeout`` seconds after their first.

    The upstream is read by a feeder task holding up to ``size`` items, so the window
    runs while the consumer waits. An upstream error is raised at once; the items of the
    unfinished chunk are dropped with it.
    """

    __slots__ = ("_ended", "_size", "_timeout")

    def __init__(self, upstream: Stage[T], size: int, timeout: float, label: str) -> None:
        super().__init__(Pump([upstream], size, label))
        self._size = size
        self._timeout = timeout
        self._ended = False

    async def __anext__(self) -> list[Any]:
        if self._ended:
            raise StopAsyncIteration
        get = self.pump.get
        chunk = [await get()]
        size = self._size
        with move_on_at(asyncio.get_running_loop().time() + self._timeout):
            while len(chunk) < size:
                try:
                    chunk.append(await get())
                except StopAsyncIteration:
                    self._ended = True
                    break
        return chunk


class Debounce(PumpStage[T]):
    """Each item that was followed by ``seconds`` of quiet; the last one at the end.

    An item that a newer one replaces within ``seconds`` is dropped. The upstream is
    read by a feeder task, so the quiet period is timed while the consumer waits.
    """

    __slots__ = ("_ended", "_seconds")

    def __init__(self, upstream: Stage[T], seconds: float, label: str) -> None:
        super().__init__(Pump([upstream], 1, label))
        self._seconds = seconds
        self._ended = False

    async def __anext__(self) -> T:
        if self._ended:
            raise StopAsyncIteration
        get = self.pump.get
        latest = await get()
        while True:
            with move_on_after(self._seconds) as quiet:
                try:
                    latest = await get()
                except StopAsyncIteration:
                    self._ended = True
                    return latest
            if quiet.cancelled_caught:
                return latest


class Throttle(Stage[T]):
    """Passes items on no faster than ``limiter`` admits them (one unit each)."""

    __slots__ = ("_limiter",)

    def __init__(self, upstream: Stage[T], limiter: RateLimiter) -> None:
        super().__init__(upstream)
        self._limiter = limiter

    async def __anext__(self) -> T:
        item: T = await self.upstream.__anext__()
        await self._limiter.acquire()
        return item


class ItemTimeout(Stage[T]):
    """Raises :class:`~corral.errors.DeadlineExceeded` when an item takes too long.

    The wait for each item starts when the consumer asks for it. When it runs out, the
    pull from upstream is cancelled and the stream ends with the error.
    """

    __slots__ = ("_count", "_seconds")

    def __init__(self, upstream: Stage[T], seconds: float) -> None:
        super().__init__(upstream)
        self._seconds = seconds
        self._count = 0

    async def __anext__(self) -> T:
        with move_on_after(self._seconds):
            item: T = await self.upstream.__anext__()
            self._count += 1
            return item
        raise DeadlineExceeded(
            f"stream item {self._count + 1} did not arrive within {self._seconds:g} s "
            f"(timeout({self._seconds:g}))"
        )
