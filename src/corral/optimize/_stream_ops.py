"""The sequential stages of a :class:`corral.Stream`: one item in, at most one step out.

Each stage here also has a *fused* form used while the stream's source is a plain
iterable and every stage so far is synchronous: the stages then become one chain of
builtin iterators (``map``, ``filter``, ``itertools.islice``...) that a single loop
pulls from, with no await per item and per stage. After an async stage, consecutive
synchronous ``map`` and ``filter`` steps still share one stage (:class:`Steps`): one
await per item for all of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from ._stream_base import Stage, source_stage

__all__ = (
    "Chunk",
    "Enumerate",
    "Filter",
    "FlatMap",
    "Map",
    "Scan",
    "Skip",
    "Steps",
    "Take",
    "TakeWhile",
    "chunks",
)

T = TypeVar("T")
U = TypeVar("U")


def chunks(iterator: Iterator[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items from ``iterator``; the last one may be shorter."""
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class Steps(Stage[Any]):
    """Consecutive synchronous ``map`` and ``filter`` steps, run in one loop per item.

    Each step is ``(fn, keeps)``: ``keeps`` false maps the item to ``fn(item)``; true
    drops the item unless ``fn(item)`` is true.
    """

    __slots__ = ("_steps",)

    def __init__(
        self, upstream: Stage[Any], steps: tuple[tuple[Callable[[Any], Any], bool], ...]
    ) -> None:
        super().__init__(upstream)
        self._steps = steps

    @staticmethod
    def after(upstream: Stage[Any], fn: Callable[[Any], Any], keeps: bool) -> Steps:
        """A stage running ``(fn, keeps)`` after ``upstream``, joined to it if it is
        itself a :class:`Steps` (built for the same iteration, so it is replaced)."""
        if isinstance(upstream, Steps):
            return Steps(upstream.upstream, (*upstream._steps, (fn, keeps)))
        return Steps(upstream, ((fn, keeps),))

    async def __anext__(self) -> Any:
        pull = self.upstream.__anext__
        steps = self._steps
        while True:
            item = await pull()
            for fn, keeps in steps:
                if not keeps:
                    item = fn(item)
                elif not fn(item):
                    break
            else:
                return item


class Map(Stage[U]):
    """``await fn(item)`` for each item."""

    __slots__ = ("_fn",)

    def __init__(self, upstream: Stage[Any], fn: Callable[[Any], Awaitable[U]]) -> None:
        super().__init__(upstream)
        self._fn = fn

    async def __anext__(self) -> U:
        return await self._fn(await self.upstream.__anext__())


class Filter(Stage[T]):
    """The items for which ``await predicate(item)`` is true."""

    __slots__ = ("_predicate",)

    def __init__(self, upstream: Stage[T], predicate: Callable[[T], Any]) -> None:
        super().__init__(upstream)
        self._predicate = predicate

    async def __anext__(self) -> T:
        pull = self.upstream.__anext__
        predicate = self._predicate
        while True:
            item: T = await pull()
            if await predicate(item):
                return item


class FlatMap(Stage[U]):
    """The items of ``fn(item)`` (an iterable or async iterable) for each item, in turn.

    The inner iterable being read is closed with the stage.
    """

    __slots__ = ("_fn", "_inner", "_is_async")

    def __init__(self, upstream: Stage[Any], fn: Callable[[Any], Any], is_async: bool) -> None:
        super().__init__(upstream)
        self._fn = fn
        self._is_async = is_async
        self._inner: Stage[U] | None = None

    async def __anext__(self) -> U:
        while True:
            inner = self._inner
            if inner is not None:
                try:
                    return await inner.__anext__()
                except StopAsyncIteration:
                    self._inner = None
                    await inner.aclose()
            produced = self._fn(await self.upstream.__anext__())
            if self._is_async:
                produced = await produced
            self._inner = source_stage(produced, "the result of flat_map's fn")

    async def aclose(self) -> None:
        inner, self._inner = self._inner, None
        try:
            if inner is not None:
                await inner.aclose()
        finally:
            await self.upstream.aclose()

    def close_now(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.close_now()
        self.upstream.close_now()


class Chunk(Stage[list[T]]):
    """Lists of ``size`` items; the last one may be shorter."""

    __slots__ = ("_ended", "_size")

    def __init__(self, upstream: Stage[T], size: int) -> None:
        super().__init__(upstream)
        self._size = size
        self._ended = False

    async def __anext__(self) -> list[T]:
        if self._ended:
            raise StopAsyncIteration
        pull = self.upstream.__anext__
        chunk: list[T] = []
        size = self._size
        while len(chunk) < size:
            try:
                chunk.append(await pull())
            except StopAsyncIteration:
                self._ended = True
                if not chunk:
                    raise
                break
        return chunk


class Take(Stage[T]):
    """The first ``count`` items; the upstream is closed as soon as the last is pulled."""

    __slots__ = ("_left",)

    def __init__(self, upstream: Stage[T], count: int) -> None:
        super().__init__(upstream)
        self._left = count

    async def __anext__(self) -> T:
        if self._left <= 0:
            raise StopAsyncIteration
        item: T = await self.upstream.__anext__()
        self._left -= 1
        if self._left == 0:
            await self.upstream.aclose()
        return item


class Skip(Stage[T]):
    """Every item after the first ``count``."""

    __slots__ = ("_left",)

    def __init__(self, upstream: Stage[T], count: int) -> None:
        super().__init__(upstream)
        self._left = count

    async def __anext__(self) -> T:
        pull = self.upstream.__anext__
        while self._left > 0:
            await pull()
            self._left -= 1
        item: T = await pull()
        return item


class TakeWhile(Stage[T]):
    """Items while ``predicate(item)`` is true; ends at the first false one."""

    __slots__ = ("_ended", "_is_async", "_predicate")

    def __init__(self, upstream: Stage[T], predicate: Callable[[T], Any], is_async: bool) -> None:
        super().__init__(upstream)
        self._predicate = predicate
        self._is_async = is_async
        self._ended = False

    async def __anext__(self) -> T:
        if self._ended:
            raise StopAsyncIteration
        item: T = await self.upstream.__anext__()
        keep = self._predicate(item)
        if self._is_async:
            keep = await keep
        if keep:
            return item
        self._ended = True
        await self.upstream.aclose()
        raise StopAsyncIteration


class Enumerate(Stage[tuple[int, T]]):
    """``(index, item)`` pairs, counting from ``start``."""

    __slots__ = ("_index",)

    def __init__(self, upstream: Stage[T], start: int) -> None:
        super().__init__(upstream)
        self._index = start

    async def __anext__(self) -> tuple[int, T]:
        item = await self.upstream.__anext__()
        index = self._index
        self._index = index + 1
        return index, item


class Scan(Stage[U]):
    """``initial``, then each running value ``fn(previous, item)`` (awaited when async)."""

    __slots__ = ("_fn", "_is_async", "_started", "_value")

    def __init__(
        self,
        upstream: Stage[Any],
        fn: Callable[[U, Any], U | Awaitable[U]],
        initial: U,
        is_async: bool,
    ) -> None:
        super().__init__(upstream)
        self._fn = fn
        self._value = initial
        self._is_async = is_async
        self._started = False

    async def __anext__(self) -> U:
        if not self._started:
            self._started = True
            return self._value
        value = self._fn(self._value, await self.upstream.__anext__())
        if self._is_async:
            value = await value  # type: ignore[misc]
        self._value = value  # type: ignore[assignment]
        return value  # type: ignore[return-value]
