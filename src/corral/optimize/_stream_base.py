"""The running parts of a :class:`corral.Stream`: stages, sources, pumps and closing.

A :class:`Stream` is a description; iterating it builds a chain of :class:`Stage`
objects, each pulling from the one above it (``upstream``). Every stage closes its
upstream when it is closed (:meth:`Stage.aclose`), so closing the last stage closes the
whole chain, in the task that closes it. Stages that need a task of their own (buffering,
merging, time windows) run it through a :class:`Pump`, whose feeder tasks close their
upstream themselves, in the task that iterated it, when they end or are cancelled.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import types
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
)
from typing import Any, Final, Generic, TypeVar

from .._core._hooks import INSTRUMENTS
from .._core._scope import current_task, wait_protected
from .._core._time import seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError

__all__ = (
    "AsyncSource",
    "Pump",
    "PumpStage",
    "Stage",
    "SyncSource",
    "aclose_all",
    "close_soon",
    "describe_source",
    "function_arg",
    "iterable_error",
    "positive_seconds",
    "source_stage",
)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def function_arg(fn: object, name: str) -> bool:
    """Check that ``fn`` is a function to call per item; return whether it is async.

    ``fn`` is async when it is an ``async def`` function (also behind
    ``functools.partial``, as a bound method, or as the ``__call__`` of an object).

    Raises:
        ArgumentTypeError: ``fn`` is a coroutine object (the function was called instead
            of passed; the coroutine is closed) or is not callable.
    """
    if isinstance(fn, Coroutine):
        fn.close()
        raise ArgumentTypeError(
            f"{name} must be a function, not a coroutine object: pass the function itself "
            f"(`fn`), not the result of calling it (`fn(...)`)"
        )
    if not callable(fn):
        raise ArgumentTypeError(f"{name} must be callable, not {type(fn).__name__} ({fn!r})")
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def positive_seconds(value: object, name: str) -> float:
    """Return ``value`` as a positive duration in seconds (``timedelta`` accepted).

    Raises:
        ArgumentTypeError: ``value`` is not a number or ``timedelta``.
        InvalidArgumentError: ``value`` is zero, negative or NaN.
    """
    seconds = seconds_arg(value, name)
    if seconds == 0:
        raise InvalidArgumentError(f"{name} must be a positive duration, got {value!r}")
    return seconds


def describe_source(source: object) -> str:
    """How a stream's repr names its source: an async generator by its function."""
    if isinstance(source, types.AsyncGeneratorType | types.GeneratorType):
        return f"{source.__name__}()"
    return type(source).__name__


class Stage(abc.ABC, Generic[T_co]):
    """One running step of a stream; pulls from ``upstream`` and closes it when closed.

    Not thread-safe: one task iterates a stage at a time.
    """

    __slots__ = ("upstream",)

    def __init__(self, upstream: Stage[Any]) -> None:
        self.upstream = upstream

    def __aiter__(self) -> Stage[T_co]:
        """The stage itself: a stage is an async iterator (``corral.amap`` reads one)."""
        return self

    @abc.abstractmethod
    async def __anext__(self) -> T_co:
        """The next item; ``StopAsyncIteration`` at the end."""

    async def aclose(self) -> None:
        """Close this stage and everything above it (idempotent)."""
        await self.upstream.aclose()

    def close_now(self) -> None:
        """Close without awaiting, as far as possible (see :func:`close_soon`)."""
        self.upstream.close_now()

    def tasks(self) -> int:
        """How many tasks of this stage and the ones above it are still running."""
        return self.upstream.tasks()


class SyncSource(Stage[T]):
    """A plain iterator as the top of a chain; pulling never suspends."""

    __slots__ = ("_iterator", "_source")

    def __init__(self, iterator: Iterator[T], source: Iterator[Any]) -> None:
        # ``source`` is the iterator of the stream's own source, closed with the chain
        # (a generator's ``finally`` runs then); ``iterator`` may wrap it (fused stages).
        self._iterator = iterator
        self._source = source

    async def __anext__(self) -> T:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        self._iterator = iter(())
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def tasks(self) -> int:
        return 0


class AsyncSource(Stage[T]):
    """An async iterator as the top of a chain; closed with its ``aclose()``, if any."""

    __slots__ = ("_iterator", "_started")

    def __init__(self, iterator: AsyncIterator[T]) -> None:
        self._iterator: AsyncIterator[T] | None = iterator
        self._started = False

    async def __anext__(self) -> T:
        iterator = self._iterator
        if iterator is None:
            raise StopAsyncIteration
        self._started = True
        return await iterator.__anext__()

    async def aclose(self) -> None:
        iterator, self._iterator = self._iterator, None
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    def close_now(self) -> None:
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            close_soon(iterator)

    def tasks(self) -> int:
        return 0


def source_stage(source: object, name: str) -> Stage[Any]:
    """A stage pulling from ``source``, an (async) iterable.

    Raises:
        ArgumentTypeError: ``source`` is neither an iterable nor an async iterable.
    """
    if isinstance(source, AsyncIterable):
        return AsyncSource(aiter(source))
    if isinstance(source, Iterable):
        iterator = iter(source)
        return SyncSource(iterator, iterator)
    raise iterable_error(source, name)


def iterable_error(source: object, name: str) -> ArgumentTypeError:
    """The error for something that was supposed to be an (async) iterable."""
    if isinstance(source, Coroutine):
        source.close()
        return ArgumentTypeError(
            f"{name} must be an iterable or async iterable, not a coroutine object "
            "(an async generator function is called without `await`: `gen()`)"
        )
    return ArgumentTypeError(
        f"{name} must be an iterable or async iterable, not {type(source).__name__} ({source!r})"
    )


async def aclose_all(stages: Iterable[Stage[Any]]) -> None:
    """Close every stage, even when closing one raises; then raise the first error."""
    error: BaseException | None = None
    for stage in stages:
        try:
            await stage.aclose()
        except BaseException as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error


# Closings that had to wait and were handed to the loop, kept alive until they finish.
_FINISHING: Final[set[asyncio.Task[None]]] = set()


def close_soon(iterator: object) -> None:
    """Close an async iterator from synchronous code (an iterator dropped mid-stream).

    Runs ``iterator.aclose()`` right here, in the task that dropped the iterator: an
    async generator's ``finally`` block runs at once unless it awaits something. If it
    does, the rest of the closing goes on in a task of its own, and an error it raises is
    reported to the loop's exception handler. Without a running loop (garbage collected
    elsewhere) nothing is done here; an async generator's own finalizer then closes it.
    """
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    try:
        steps: Generator[Any, None, Any] = aclose().__await__()
        pending = steps.send(None)
    except StopIteration:
        return
    except RuntimeError:  # "already running": it is being closed by its own task
        return
    except Exception as exc:
        loop.call_exception_handler({"message": f"closing {iterator!r} failed", "exception": exc})
        return
    task = loop.create_task(_finish_closing(steps, pending), name=f"closing {iterator!r}")
    _FINISHING.add(task)
    task.add_done_callback(_closing_done)


async def _finish_closing(steps: Generator[Any, None, Any], pending: Any) -> None:
    await _resume(steps, pending)


@types.coroutine
def _resume(steps: Generator[Any, None, Any], pending: Any) -> Generator[Any, Any, None]:
    # ``steps`` is suspended on ``pending``, as a task would be: yield it to the task
    # running us, which waits for it, then carry on with the rest of ``steps``.
    while True:
        try:
            yield pending
        except BaseException as exc:
            try:
                pending = steps.throw(exc)
            except StopIteration:
                return
            continue
        break
    yield from steps


def _closing_done(task: asyncio.Task[None]) -> None:
    _FINISHING.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        task.get_loop().call_exception_handler(
            {"message": f"{task.get_name()} failed", "exception": exc, "task": task}
        )


class _End:
    """Put by a feeder after its upstream's last item."""

    __slots__ = ()


class _Failed:
    """Put by a feeder whose upstream raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_END: Final = _End()


async def _feed(upstream: Stage[Any], queue: asyncio.Queue[Any]) -> None:
    # A module function, not a method: the task must not keep its pump alive, or a
    # dropped iterator would never be collected (and closed).
    marker: object = _END
    try:
        while True:
            item = await upstream.__anext__()
            await queue.put(item)
    except StopAsyncIteration:
        pass
    except Exception as exc:
        marker = _Failed(exc)
    finally:
        await upstream.aclose()
    await queue.put(marker)


class Pump(Generic[T]):
    """Feeder tasks that pull upstreams into one bounded queue, read by the consumer.

    The tasks start with the first :meth:`get`. Each one pulls its upstream and puts the
    items in the queue (waiting while it holds ``capacity`` items), then closes its
    upstream, in its own task, when it ends, fails or is cancelled.

    Cancellation: :meth:`aclose` cancels the feeders and waits until they have closed
    their upstreams; a cancel scope around the caller does not cut that wait short.
    """

    __slots__ = ("_ended", "_label", "_queue", "_running", "_tasks", "_upstreams")

    def __init__(self, upstreams: list[Stage[T]], capacity: int, label: str) -> None:
        self._upstreams: list[Stage[T]] | None = upstreams
        self._queue: asyncio.Queue[Any] = asyncio.Queue(capacity)
        self._tasks: list[asyncio.Task[None]] = []
        self._running = len(upstreams)
        self._ended = False
        self._label = label

    def _start(self, upstreams: list[Stage[T]]) -> None:
        self._upstreams = None
        loop = asyncio.get_running_loop()
        parent = current_task()
        for upstream in upstreams:
            task = loop.create_task(_feed(upstream, self._queue), name=f"Stream {self._label}")
            self._tasks.append(task)
            if INSTRUMENTS.active:
                INSTRUMENTS.task_spawned(task, parent)
                task.add_done_callback(INSTRUMENTS.task_done)

    async def get(self) -> T:
        """The next item from any feeder, in arrival order.

        Raises:
            StopAsyncIteration: every upstream has ended.
            Exception: what an upstream raised (the other feeders keep running until
                :meth:`aclose`).
        """
        if self._upstreams is not None:
            self._start(self._upstreams)
        queue = self._queue
        while not self._ended:
            item = await queue.get()
            kind = type(item)
            if kind is _End:
                self._running -= 1
                self._ended = self._running == 0
            elif kind is _Failed:
                self._ended = True
                raise item.error
            else:
                return item  # type: ignore[no-any-return]
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Cancel the feeders and wait until each has closed its upstream."""
        self._ended = True
        upstreams, self._upstreams = self._upstreams, None
        if upstreams is not None:  # never started: close the upstreams here
            await aclose_all(upstreams)
            return
        tasks = [task for task in self._tasks if not task.done()]
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        finished = asyncio.get_running_loop().create_future()
        left = len(tasks)

        def one_done(_: asyncio.Task[None]) -> None:
            nonlocal left
            left -= 1
            if left == 0 and not finished.done():
                finished.set_result(None)

        for task in tasks:
            task.add_done_callback(one_done)
        await wait_protected(finished)

    def close_now(self) -> None:
        """Cancel the feeders without waiting; each closes its upstream when it ends."""
        self._ended = True
        upstreams, self._upstreams = self._upstreams, None
        for upstream in upstreams or ():
            upstream.close_now()
        for task in self._tasks:
            task.cancel()

    def tasks(self) -> int:
        """How many feeder tasks are still running."""
        return sum(not task.done() for task in self._tasks)


class PumpStage(Stage[T]):
    """A stage reading from a :class:`Pump` instead of a single upstream."""

    __slots__ = ("pump",)

    def __init__(self, pump: Pump[T]) -> None:
        self.pump = pump

    async def __anext__(self) -> T:
        return await self.pump.get()

    async def aclose(self) -> None:
        await self.pump.aclose()

    def close_now(self) -> None:
        self.pump.close_now()

    def tasks(self) -> int:
        return self.pump.tasks()
