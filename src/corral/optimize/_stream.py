"""corral.Stream: composable pipelines over iterables and async iterables.

A :class:`Stream` is an immutable description: a source and a chain of operators. Each
iteration builds the running chain anew (see ``_stream_base``), and closes it when the
iteration stops, however it stops.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import functools
import itertools
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, overload

from .._core._hooks import INSTRUMENTS
from ..errors import ArgumentTypeError
from ._limiter import size_arg
from ._ratelimit import RateLimiter
from ._stream_base import (
    AsyncSource,
    Stage,
    SyncSource,
    describe_source,
    function_arg,
    iterable_error,
    positive_seconds,
    source_stage,
)
from ._stream_combine import Buffer, ConcurrentMap, Merge, Zip
from ._stream_ops import (
    Chunk,
    Enumerate,
    Filter,
    FlatMap,
    Map,
    Scan,
    Skip,
    Steps,
    Take,
    TakeWhile,
    chunks,
)
from ._stream_time import ChunkWindow, Debounce, ItemTimeout, Throttle

__all__ = ("Stream", "StreamIterator", "StreamStatistics")

T = TypeVar("T")
U = TypeVar("U")

# What a closed iterator pulls from: always exhausted.
_EXHAUSTED: Final[Callable[[], Any]] = iter(()).__next__


class _Op:
    """One operator of a stream: how to run it as a stage, and as a fused iterator when
    it is synchronous (``fuse`` is None otherwise)."""

    __slots__ = ("build", "fuse", "label")

    def __init__(
        self,
        label: str,
        build: Callable[[Stage[Any]], Stage[Any]],
        fuse: Callable[[Iterator[Any]], Iterator[Any]] | None = None,
    ) -> None:
        self.label = label
        self.build = build
        self.fuse = fuse


@dataclasses.dataclass(frozen=True, slots=True)
class StreamStatistics:
    """A snapshot of a :class:`StreamIterator`.

    Attributes:
        emitted: items handed to the consumer so far.
        tasks: background tasks of the chain still running (buffer, merge, windows).
        closed: whether the iteration has stopped and its chain is closed.
    """

    emitted: int
    tasks: int
    closed: bool


class Stream(Generic[T]):
    """A pipeline over an iterable or async iterable, built from chainable operators.

    ::

        async for chunk in corral.Stream(urls).map(fetch, limit=10).filter(ok).chunk(100):
            await store(chunk)

    A stream is an immutable description: every operator returns a new stream, and
    nothing runs until the stream is iterated (``async for``, :meth:`iterate`,
    :meth:`list`). Each iteration runs the chain anew from the source; a source that can
    be read only once (an async generator) gives its items to the first iteration only.

    Functions given to operators may be sync or ``async def``. While the source is a
    plain iterable and the operators so far are synchronous, they run fused, as one loop
    over builtin iterators with no await per item; such a stream does not yield to the
    event loop between items, exactly like a ``for`` loop.

    Closing: an iteration closes its whole chain when it stops, in the task that
    iterates it: when the items run out, when an operator or the source raises, when the
    consumer is cancelled, and when the consumer leaves ``async with stream.iterate()``.
    Closing calls ``aclose()`` on the source (an async generator runs its ``finally``),
    cancels the background tasks of ``buffer``, ``merge``, ``debounce``, timed
    ``chunk`` and ``map`` with a limit, and waits until they have closed what they
    read. A plain ``async for`` left with ``break`` drops its iterator, which then
    closes the chain at once, in that task, as far as that is possible without
    awaiting: an async generator whose ``finally`` awaits finishes closing in a task of
    its own. Use :meth:`iterate` to close strictly in place.

    Cancellation: cancelling the consumer cancels the wait for the next item, which
    cancels the stage being pulled and closes the rest of the chain. Waits are bounded
    by the consumer's cancel scopes and deadlines.

    Errors: an error raised by the source or by a function given to an operator is
    raised to the consumer as it is, after the chain has been closed.

    Thread-safety: a stream (a description) may be shared freely; one iteration of it
    is used by one task at a time, on one event loop.

    Args:
        source: an iterable or an async iterable (a ``Stream`` too).

    Raises:
        ArgumentTypeError: ``source`` is neither (a coroutine object is named as such).
    """

    __slots__ = ("_ops", "_source")

    _source: Iterable[Any] | AsyncIterable[Any]
    _ops: tuple[_Op, ...]

    def __init__(self, source: Iterable[T] | AsyncIterable[T]) -> None:
        if isinstance(source, Stream):
            self._source, self._ops = source._source, source._ops
            return
        if not isinstance(source, Iterable | AsyncIterable):
            raise iterable_error(source, "source")
        self._source = source
        self._ops = ()

    def _then(self, op: _Op) -> Stream[Any]:
        stream: Stream[Any] = Stream.__new__(Stream)
        stream._source = self._source
        stream._ops = (*self._ops, op)
        return stream

    # ----------------------------------------------------------------- operators

    @overload
    def map(
        self, fn: Callable[[T], Awaitable[U]], *, limit: int = 1, ordered: bool = True
    ) -> Stream[U]: ...

    @overload
    def map(self, fn: Callable[[T], U], *, limit: int = 1, ordered: bool = True) -> Stream[U]: ...

    def map(self, fn: Callable[[T], Any], *, limit: int = 1, ordered: bool = True) -> Stream[Any]:
        """``fn(item)`` for each item; ``fn`` may be sync or async.

        ``fn`` counts as async when it is an ``async def`` function (also behind
        ``functools.partial``, as a method, or as an object's ``async def __call__``);
        the result of any other function is the item as it is.

        With ``limit`` above 1, up to ``limit`` calls run at once, in worker tasks of
        :func:`corral.amap`, and ``fn`` must return an awaitable. The results come in
        input order, or as they complete with ``ordered=False``. The upstream is read
        at most ``2 * limit`` items ahead of the consumer. The first error of a call
        cancels the other calls and is raised. The calls are bounded by the deadline
        enclosing the consumer when the first item is asked for, and are cancelled
        when the iteration stops.

        Raises:
            ArgumentTypeError: ``fn`` is not callable or is a coroutine object;
                ``limit`` is not an int; ``ordered`` is not a bool. While iterating with
                ``limit`` above 1, ``fn`` returned something that is not awaitable.
            InvalidArgumentError: ``limit`` is below 1.
        """
        is_async = function_arg(fn, "fn")
        limit = size_arg(limit, "limit")
        if not isinstance(ordered, bool):
            raise ArgumentTypeError(
                f"ordered must be True or False, not {type(ordered).__name__} ({ordered!r})"
            )
        if limit > 1:
            label = f"map(limit={limit})" if ordered else f"map(limit={limit}, unordered)"
            return self._then(_Op(label, lambda up: ConcurrentMap(up, fn, limit, ordered)))
        return self._then(
            _Op(
                "map",
                (lambda up: Map(up, fn)) if is_async else (lambda up: Steps.after(up, fn, False)),
                None if is_async else functools.partial(builtins.map, fn),
            )
        )

    def filter(self, predicate: Callable[[T], object]) -> Stream[T]:
        """The items for which ``predicate(item)`` is true; it may be sync or async.

        Raises:
            ArgumentTypeError: ``predicate`` is not callable, or is a coroutine object.
        """
        is_async = function_arg(predicate, "predicate")
        return self._then(
            _Op(
                "filter",
                (lambda up: Filter(up, predicate))
                if is_async
                else (lambda up: Steps.after(up, predicate, True)),
                None if is_async else functools.partial(builtins.filter, predicate),
            )
        )

    @overload
    def flat_map(
        self, fn: Callable[[T], Awaitable[Iterable[U] | AsyncIterable[U]]]
    ) -> Stream[U]: ...

    @overload
    def flat_map(self, fn: Callable[[T], Iterable[U] | AsyncIterable[U]]) -> Stream[U]: ...

    def flat_map(self, fn: Callable[[T], Any]) -> Stream[Any]:
        """The items of ``fn(item)`` for each item, one inner iterable after the other.

        ``fn`` (sync or async) returns an iterable or an async iterable (a ``Stream``
        too). The inner iterable being read is closed with the stream.

        Raises:
            ArgumentTypeError: ``fn`` is not callable or is a coroutine object; while
                iterating, ``fn`` returned something that is not iterable.
        """
        is_async = function_arg(fn, "fn")
        return self._then(_Op("flat_map", lambda up: FlatMap(up, fn, is_async)))

    def chunk(self, size: int, timeout: float | timedelta | None = None) -> Stream[list[T]]:
        """Lists of ``size`` items, the last one possibly shorter.

        With ``timeout``, a chunk is also handed on, however short, ``timeout`` seconds
        after its first item arrived (read from the loop clock); the upstream is then
        read by a background task holding up to ``size`` items. An upstream error is
        raised at once and the unfinished chunk is dropped.

        Raises:
            ArgumentTypeError: ``size`` is not an int, or ``timeout`` not seconds.
            InvalidArgumentError: ``size`` is below 1, or ``timeout`` is not positive.
        """
        size = size_arg(size, "size")
        if timeout is None:
            return self._then(
                _Op(f"chunk({size})", lambda up: Chunk(up, size), lambda it: chunks(it, size))
            )
        seconds = positive_seconds(timeout, "timeout")
        label = f"chunk({size}, timeout={seconds:g})"
        return self._then(_Op(label, lambda up: ChunkWindow(up, size, seconds, label)))

    def buffer(self, size: int) -> Stream[T]:
        """The same items, read ahead of the consumer by a background task.

        The task pulls the upstream while the consumer is busy, until ``size`` items
        wait for the consumer; the next item it pulls then waits for room.

        Raises:
            ArgumentTypeError: ``size`` is not an int.
            InvalidArgumentError: ``size`` is below 1.
        """
        size = size_arg(size, "size")
        label = f"buffer({size})"
        return self._then(_Op(label, lambda up: Buffer(up, size, label)))

    def merge(self, *others: Iterable[T] | AsyncIterable[T]) -> Stream[T]:
        """The items of this stream and of ``others``, in the order they arrive.

        Each input is read by a background task of its own. The merged stream ends when
        every input has ended; the first error of any input is raised, and the other
        inputs are then closed.

        Raises:
            ArgumentTypeError: one of ``others`` is not an (async) iterable.
        """
        for index, other in enumerate(others):
            _check_iterable(other, f"others[{index}]")
        label = f"merge({len(others)})"
        return self._then(
            _Op(
                label,
                lambda up: Merge([up, *(source_stage(other, "other") for other in others)], label),
            )
        )

    def zip(self, *others: Iterable[Any] | AsyncIterable[Any]) -> Stream[tuple[Any, ...]]:
        """Tuples of one item of this stream and one of each of ``others``.

        The inputs are pulled in turn, without background tasks; the zipped stream ends
        with its shortest input, and every input is then closed.

        Raises:
            ArgumentTypeError: one of ``others`` is not an (async) iterable.
        """
        for index, other in enumerate(others):
            _check_iterable(other, f"others[{index}]")
        return self._then(
            _Op(
                f"zip({len(others)})",
                lambda up: Zip([up, *(source_stage(other, "other") for other in others)]),
            )
        )

    def take(self, count: int) -> Stream[T]:
        """The first ``count`` items; the source is closed as soon as the last is read.

        Raises:
            ArgumentTypeError: ``count`` is not an int.
            InvalidArgumentError: ``count`` is negative.
        """
        count = size_arg(count, "count", minimum=0)
        return self._then(
            _Op(
                f"take({count})",
                lambda up: Take(up, count),
                lambda it: itertools.islice(it, count),
            )
        )

    def skip(self, count: int) -> Stream[T]:
        """Every item after the first ``count``.

        Raises:
            ArgumentTypeError: ``count`` is not an int.
            InvalidArgumentError: ``count`` is negative.
        """
        count = size_arg(count, "count", minimum=0)
        return self._then(
            _Op(
                f"skip({count})",
                lambda up: Skip(up, count),
                lambda it: itertools.islice(it, count, None),
            )
        )

    def take_while(self, predicate: Callable[[T], object]) -> Stream[T]:
        """Items while ``predicate(item)`` is true (sync or async); the first false one
        ends the stream and closes the source.

        Raises:
            ArgumentTypeError: ``predicate`` is not callable, or is a coroutine object.
        """
        is_async = function_arg(predicate, "predicate")
        return self._then(
            _Op(
                "take_while",
                lambda up: TakeWhile(up, predicate, is_async),
                None if is_async else functools.partial(itertools.takewhile, predicate),
            )
        )

    def enumerate(self, start: int = 0) -> Stream[tuple[int, T]]:
        """``(index, item)`` pairs, the index counting from ``start``.

        Raises:
            ArgumentTypeError: ``start`` is not an int.
        """
        if not isinstance(start, int) or isinstance(start, bool):
            raise ArgumentTypeError(f"start must be an int, not {type(start).__name__} ({start!r})")
        return self._then(
            _Op(
                "enumerate" if start == 0 else f"enumerate({start})",
                lambda up: Enumerate(up, start),
                lambda it: builtins.enumerate(it, start),
            )
        )

    @overload
    def scan(self, fn: Callable[[U, T], Awaitable[U]], initial: U) -> Stream[U]: ...

    @overload
    def scan(self, fn: Callable[[U, T], U], initial: U) -> Stream[U]: ...

    def scan(self, fn: Callable[[Any, T], Any], initial: Any) -> Stream[Any]:
        """Running values: ``initial`` first, then ``value = fn(value, item)`` per item.

        ``Stream([1, 2, 3]).scan(operator.add, 0)`` gives 0, 1, 3, 6. ``fn`` may be
        sync or async.

        Raises:
            ArgumentTypeError: ``fn`` is not callable, or is a coroutine object.
        """
        is_async = function_arg(fn, "fn")
        return self._then(
            _Op(
                "scan",
                lambda up: Scan(up, fn, initial, is_async),
                None if is_async else lambda it: itertools.accumulate(it, fn, initial=initial),
            )
        )

    def throttle(self, rate: float, per: float | timedelta = 1.0) -> Stream[T]:
        """The same items, at most ``rate`` per ``per`` seconds, evenly spaced.

        The first item passes at once; each next one waits until ``per / rate`` seconds
        after the previous one passed (a :class:`corral.RateLimiter` with a burst of 1,
        on the loop clock). So any window of ``per`` seconds (half-open) sees at most
        ``rate`` items.

        Deadline: a wait that would end past the consumer's deadline raises
        :class:`~corral.errors.DeadlineExceeded` at once.

        Raises:
            ArgumentTypeError: ``rate`` is not a number, or ``per`` not seconds.
            InvalidArgumentError: ``rate`` or ``per`` is zero, negative, NaN or infinite.
        """
        period = RateLimiter(rate, per, burst=1).statistics().per  # checks the arguments
        return self._then(
            _Op(
                f"throttle({rate:g}/{period:g}s)",
                lambda up: Throttle(up, RateLimiter(rate, per, burst=1)),
            )
        )

    def debounce(self, seconds: float | timedelta) -> Stream[T]:
        """Only the items followed by ``seconds`` of quiet (no newer item); the last item
        is handed on when the upstream ends.

        The upstream is read by a background task, so the quiet is timed (on the loop
        clock) while the consumer waits.

        Raises:
            ArgumentTypeError: ``seconds`` is not a number or ``timedelta``.
            InvalidArgumentError: ``seconds`` is zero, negative or NaN.
        """
        quiet = positive_seconds(seconds, "seconds")
        label = f"debounce({quiet:g})"
        return self._then(_Op(label, lambda up: Debounce(up, quiet, label)))

    def timeout(self, seconds: float | timedelta) -> Stream[T]:
        """The same items, but waiting more than ``seconds`` for any one of them raises.

        The wait for an item starts when the consumer asks for it. When it runs out, the
        pull from upstream is cancelled, the chain is closed, and
        :class:`~corral.errors.DeadlineExceeded` (a ``TimeoutError``) is raised, naming
        the item and the wait.

        Raises:
            ArgumentTypeError: ``seconds`` is not a number or ``timedelta``.
            InvalidArgumentError: ``seconds`` is zero, negative or NaN.
        """
        wait = positive_seconds(seconds, "seconds")
        return self._then(_Op(f"timeout({wait:g})", lambda up: ItemTimeout(up, wait)))

    # ----------------------------------------------------------------- iteration

    def iterate(self) -> StreamIterator[T]:
        """A new iteration of this stream, to use as ``async with stream.iterate() as it``.

        Leaving the ``async with`` block closes the chain right there, in this task.
        """
        return StreamIterator(self)

    def __aiter__(self) -> StreamIterator[T]:
        """A new iteration of this stream, for ``async for`` (see :class:`Stream`)."""
        return StreamIterator(self)

    async def list(self) -> builtins.list[T]:
        """Every item, in a list (the chain is closed afterwards, also on error).

        A stream over a plain iterable whose operators are all synchronous is collected
        with no await at all.
        """
        return await StreamIterator(self)._collect()

    def __repr__(self) -> str:
        labels = " | ".join(op.label for op in self._ops)
        source = describe_source(self._source)
        return f"<Stream {source} | {labels}>" if labels else f"<Stream {source}>"


def _check_iterable(value: object, name: str) -> None:
    if not isinstance(value, Iterable | AsyncIterable):
        raise iterable_error(value, name)


class StreamIterator(Generic[T]):
    """One iteration of a :class:`Stream`: an async iterator and async context manager.

    Closing (:meth:`aclose`, leaving ``async with``, reaching the end, an error or a
    cancellation) closes the whole chain in the calling task; see :class:`Stream`.
    After closing, the iterator is exhausted.

    Thread-safety: not thread-safe; iterate and close it from one task at a time.
    """

    __slots__ = ("_closed", "_emitted", "_fused", "_next", "_source", "_stream", "_top")

    def __init__(self, stream: Stream[T]) -> None:
        self._stream = stream
        self._emitted = 0
        self._closed = False
        self._top: Stage[T] | None = None
        self._fused: Iterator[T] | None = None
        source = stream._source
        if isinstance(source, AsyncIterable):
            async_source = aiter(source)
            self._source: object = async_source
            stage: Stage[Any] | None = AsyncSource(async_source)
            iterator: Iterator[Any] = iter(())
        else:
            self._source = iterator = iter(source)
            stage = None
        for op in stream._ops:
            if stage is None and op.fuse is not None:
                iterator = op.fuse(iterator)
            else:
                if stage is None:
                    stage = SyncSource(iterator, self._source)  # type: ignore[arg-type]
                stage = op.build(stage)
        if stage is None:
            self._fused = iterator
            self._next: Callable[[], T] = iterator.__next__
        else:
            self._top = stage
            self._next = _EXHAUSTED

    def __aiter__(self) -> StreamIterator[T]:
        return self

    async def __anext__(self) -> T:
        """The next item.

        Raises:
            StopAsyncIteration: the items ran out, or the iterator was closed.
            Exception: what the source or an operator's function raised, once the
                chain is closed.
            asyncio.CancelledError: the consumer was cancelled; the chain is closed
                first.
        """
        top = self._top
        if top is None:
            try:
                item = self._next()
            except StopIteration:
                self._close_fused("exhausted")
                raise StopAsyncIteration from None
            except BaseException:
                self._close_fused("failed")
                raise
        else:
            try:
                item = await top.__anext__()
            except StopAsyncIteration:
                await self._close("exhausted")
                raise
            except asyncio.CancelledError:
                await self._close("cancelled")
                raise
            except BaseException:
                await self._close("failed")
                raise
        self._emitted += 1
        return item

    async def _collect(self) -> list[T]:
        fused = self._fused
        if fused is None:
            async with self:
                return [item async for item in self]
        try:
            items = list(fused)
        except BaseException:
            self._close_fused("failed")
            raise
        self._emitted = len(items)
        self._close_fused("exhausted")
        return items

    def _close_fused(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._next = _EXHAUSTED
        self._fused = None
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
        self._report(reason)

    async def _close(self, reason: str) -> None:
        top = self._top
        if top is None:
            self._close_fused(reason)
            return
        self._closed = True
        self._top = None
        try:
            await top.aclose()
        finally:
            self._report(reason)

    def _report(self, reason: str) -> None:
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "closed", {"reason": reason, "emitted": self._emitted})

    async def aclose(self) -> None:
        """Close the chain: the source's ``aclose()``, background tasks cancelled and
        waited for. Idempotent.

        Cancellation: waiting for background tasks to finish closing is not cut short by
        a cancel scope around the caller; the source's own closing is cancelled as any
        other await would be.
        """
        await self._close("closed")

    async def __aenter__(self) -> StreamIterator[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close("closed")

    def __del__(self) -> None:
        top = getattr(self, "_top", None)  # unset if __init__ failed
        if top is not None:
            self._top = None
            try:
                top.close_now()
            except RuntimeError:  # its loop is closed: nothing can run there any more
                return

    def statistics(self) -> StreamStatistics:
        """A snapshot: items emitted, background tasks running, whether closed."""
        top = self._top
        return StreamStatistics(
            emitted=self._emitted, tasks=0 if top is None else top.tasks(), closed=self._closed
        )

    def __repr__(self) -> str:
        chain = repr(self._stream)[len("<Stream ") : -1]
        if self._closed:
            state = "closed"
        else:
            tasks = 0 if self._top is None else self._top.tasks()
            state = f"{tasks} task{'' if tasks == 1 else 's'} running"
        return f"<StreamIterator {chain}: {self._emitted} emitted, {state}>"
