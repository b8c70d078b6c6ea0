"""The combining and concurrent stages of a :class:`corral.Stream`: buffer, merge, zip,
and ``map`` with a limit above 1 (run by :func:`corral.amap`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._amap import AsyncMap, amap
from ._stream_base import Pump, PumpStage, Stage, aclose_all

__all__ = ("Buffer", "ConcurrentMap", "Merge", "Zip")

T = TypeVar("T")


class Buffer(PumpStage[T]):
    """The same items, read ahead by a feeder task that holds up to ``size`` of them."""

    __slots__ = ()

    def __init__(self, upstream: Stage[T], size: int, label: str) -> None:
        super().__init__(Pump([upstream], size, label))


class Merge(PumpStage[T]):
    """The items of every upstream, in the order they arrive; one feeder task each.

    Ends when every upstream has ended; the first error of any upstream is raised, and
    closing the stage cancels the other feeders.
    """

    __slots__ = ()

    def __init__(self, upstreams: list[Stage[T]], label: str) -> None:
        super().__init__(Pump(upstreams, 1, label))


class Zip(Stage[tuple[Any, ...]]):
    """Tuples of one item from each upstream, pulled in turn; ends with the shortest."""

    __slots__ = ("_upstreams",)

    def __init__(self, upstreams: list[Stage[Any]]) -> None:
        super().__init__(upstreams[0])
        self._upstreams = upstreams

    async def __anext__(self) -> tuple[Any, ...]:
        return tuple([await upstream.__anext__() for upstream in self._upstreams])

    async def aclose(self) -> None:
        await aclose_all(self._upstreams)

    def close_now(self) -> None:
        for upstream in self._upstreams:
            upstream.close_now()

    def tasks(self) -> int:
        return sum(upstream.tasks() for upstream in self._upstreams)


class ConcurrentMap(Stage[T]):
    """``await fn(item)`` for each item, up to ``limit`` calls at once (:func:`corral.amap`).

    The mapping pulls the upstream from its worker tasks, at most ``2 * limit`` items
    ahead of the consumer, and closes it when it ends. Dropping the stage drops the
    mapping, which cancels its workers.
    """

    __slots__ = ("_results",)

    def __init__(
        self,
        upstream: Stage[Any],
        fn: Callable[[Any], Awaitable[T]],
        limit: int,
        ordered: bool,
    ) -> None:
        super().__init__(upstream)
        self._results: AsyncMap[T] | None = amap(fn, upstream, limit=limit, ordered=ordered)

    async def __anext__(self) -> T:
        results = self._results
        if results is None:
            raise StopAsyncIteration
        return await results.__anext__()

    async def aclose(self) -> None:
        results, self._results = self._results, None
        if results is not None:
            await results.aclose()  # closes the upstream when its workers are done
        await self.upstream.aclose()

    def close_now(self) -> None:
        self._results = None  # its workers are cancelled as it goes
        self.upstream.close_now()

    def tasks(self) -> int:
        results = self._results
        workers = 0 if results is None else results.statistics().workers
        return workers + self.upstream.tasks()
