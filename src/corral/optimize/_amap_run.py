"""The engine behind ``corral.amap``: at most ``limit`` worker tasks pulling from one source.

A :class:`MapRun` owns everything of one mapping: the source iterator, the worker tasks,
the results that wait for the consumer, and the counters. Workers pull the next item
straight from the source (a plain ``next()`` for a sync iterator; one at a time, under a
lock, for an async one), call the function, and append the result to a deque that the
consumer pops. Nothing is allocated per item besides the call itself: the consumer is
woken through one future per wait (not per result), and a worker parks on a future only
when the consumer has fallen a full window behind.

Backpressure: a worker pulls a new item only while fewer than ``2 * limit`` items have
been pulled and not yet taken by the consumer (``limit`` running, up to ``limit``
finished and waiting). A window of ``limit`` alone would make every worker wait for the
consumer after each item, doubling the task switches per item.

The consumer-facing object (:class:`corral.AsyncMap`) refers to its run; the run and its
workers never refer back, so dropping the consumer-facing object lets CPython's
reference counting reach its ``__del__``, which stops the workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import CoroutineType
from typing import Any, Final

from .._core._hooks import INSTRUMENTS
from .._core._outcome import Fulfilled, Rejected
from .._core._scope import CancelScope, current_effective_deadline, current_task, wait_protected
from ..errors import ArgumentTypeError, ClosedResourceError, DeadlineExceeded, UsageError
from ._ratelimit import RateLimiter

__all__ = ("AsyncMapStatistics", "MapRun")

#: No item (the worker must pull one) or no result (none is ready at that index).
_MISSING: Final[Any] = object()

_NEW: Final = "new"
_RUNNING: Final = "running"  # workers are pulling and calling
_FINISHED: Final = "finished"  # the source is exhausted and every call has returned
_FAILED: Final = "failed"  # an error stopped the workers; the consumer has yet to see it
_CLOSED: Final = "closed"  # stopped: the workers are cancelled or done


@dataclasses.dataclass(frozen=True, slots=True)
class AsyncMapStatistics:
    """A snapshot of a :class:`corral.AsyncMap`.

    Attributes:
        state: ``"new"`` (not iterated yet), ``"running"``, ``"finished"`` (every item
            done; results may still wait), ``"failed"`` (an error stopped it) or
            ``"closed"``.
        limit: how many calls may run at once.
        ordered: whether results come in input order.
        pulled: items taken from the source so far.
        started: calls started so far.
        completed: calls that returned a value.
        failed: calls that raised (a timed-out call counts here).
        cancelled: calls cut short because the mapping stopped (or that raised a
            ``BaseException`` that is not an ``Exception``).
        in_flight: calls running now.
        pending: finished results waiting for the consumer (in ordered mode, including
            those held back until the items before them finish).
        delivered: results handed to the consumer.
        workers: worker tasks alive now.
    """

    state: str
    limit: int
    ordered: bool
    pulled: int
    started: int
    completed: int
    failed: int
    cancelled: int
    in_flight: int
    pending: int
    delivered: int
    workers: int


class _NotAnAsyncFunction(ArgumentTypeError):
    """``fn(item)`` returned something that cannot be awaited: a misuse, never an outcome."""


def _check_awaitable(fn: object, result: object) -> None:
    if isinstance(result, Awaitable):
        return
    name = getattr(fn, "__qualname__", type(fn).__name__)
    raise _NotAnAsyncFunction(
        f"amap() needs an async function: {name}(item) returned {type(result).__name__}, "
        "not an awaitable; define fn with `async def` (run blocking code in a worker "
        "thread with corral.to_thread)"
    )


class MapRun:
    """One mapping of ``fn`` over a source by at most ``limit`` worker tasks.

    The package-internal entry point behind :func:`corral.amap` and anything else that
    maps with bounded concurrency: build it with validated arguments, call
    :meth:`start` inside the consuming task, then take results with
    :meth:`next_result` (after the inline fast path of popping :attr:`ready`, counting
    :attr:`delivered` and calling :meth:`unpark_one`), and end with :meth:`shutdown`.

    Not thread-safe: one event loop, one consuming task.
    """

    __slots__ = (
        "aclosed",
        "async_source",
        "cancelled",
        "completed",
        "consumer",
        "deadline",
        "delivered",
        "done",
        "error",
        "exhausted",
        "exited",
        "failed",
        "fn",
        "items",
        "limit",
        "live",
        "loop",
        "next_index",
        "ordered",
        "outcomes",
        "parked",
        "pull_lock",
        "pulled",
        "rate",
        "ready",
        "source_closed",
        "started",
        "state",
        "timeout",
        "window",
        "workers",
    )

    def __init__(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        items: Iterator[Any] | AsyncIterator[Any],
        *,
        async_source: bool,
        limit: int,
        rate: RateLimiter | None,
        ordered: bool,
        timeout: float | None,
        outcomes: bool,
    ) -> None:
        self.fn = fn
        self.items = items
        self.async_source = async_source
        self.limit = limit
        self.window = 2 * limit
        self.rate = rate
        self.ordered = ordered
        self.timeout = timeout
        self.outcomes = outcomes
        self.state: str = _NEW
        self.loop: asyncio.AbstractEventLoop | None = None
        self.deadline = math.inf
        #: Results the consumer may take now, in the order it takes them.
        self.ready: deque[Any] = deque()
        #: Ordered mode: finished results waiting for an earlier item, by input index.
        self.done: dict[int, Any] = {}
        self.next_index = 0
        self.consumer: asyncio.Future[None] | None = None
        self.parked: deque[asyncio.Future[None]] = deque()
        self.workers: set[asyncio.Task[None]] = set()
        self.live = 0
        self.exited: asyncio.Future[None] | None = None
        self.pull_lock: asyncio.Lock | None = None
        self.exhausted = False
        self.source_closed = False
        self.aclosed = False
        self.error: BaseException | None = None
        self.pulled = 0
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.delivered = 0

    # -- starting -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers, bounded by the calling task's effective deadline.

        Raises:
            UsageError: called outside a running task.
        """
        self.deadline = current_effective_deadline()
        self.loop = asyncio.get_running_loop()
        self.state = _RUNNING
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "started", {"limit": self.limit, "ordered": self.ordered})
        if self.async_source:
            self.pull_lock = asyncio.Lock()
            for _ in range(self.limit):
                self._spawn(0, _MISSING)
        else:
            self._spawn_with_items()
        if self.live == 0 and self.state is _RUNNING:
            self._finish()

    def _spawn_with_items(self) -> None:
        # Hand each worker its first item, so a short source starts no idle workers.
        items: Iterator[Any] = self.items  # type: ignore[assignment]
        while (
            self.live < self.limit
            and self.state is _RUNNING
            and not self.exhausted
            and self.pulled - self.delivered < self.window
        ):
            try:
                item = next(items)
            except StopIteration:
                self.exhausted = True
                return
            except BaseException as exc:
                self.fail(exc)
                return
            index = self.pulled
            self.pulled = index + 1
            self._spawn(index, item)

    def _spawn(self, index: int, item: Any) -> None:
        self.live += 1
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[assignment]
        task = loop.create_task(self._work(index, item), name="corral.amap worker")
        if task.done():  # an eager task factory ran it to the end already
            self._exited(task)
        else:
            self.workers.add(task)
            task.add_done_callback(self._exited)

    # -- the workers ----------------------------------------------------------------------

    async def _work(self, index: int, item: Any) -> None:
        try:
            if self.deadline == math.inf:
                await self._run_items(index, item)
            else:
                with CancelScope(deadline=self.deadline) as scope:
                    await self._run_items(index, item)
                if scope.cancelled_caught:
                    self.fail(
                        DeadlineExceeded(
                            "amap: the deadline enclosing the consumer passed before "
                            f"every item was mapped ({self.delivered} results delivered)"
                        )
                    )
        except BaseException as exc:  # the worker ends here; the consumer gets the error
            self.fail(exc)

    async def _run_items(self, index: int, item: Any) -> None:
        fn = self.fn
        rate = self.rate
        timeout = self.timeout
        outcomes = self.outcomes
        ordered = self.ordered
        ready = self.ready
        sync_items: Iterator[Any] | None = None if self.async_source else self.items  # type: ignore[assignment]
        while True:
            if item is _MISSING:
                if sync_items is not None:
                    while self.pulled - self.delivered >= self.window:
                        await self._park()
                    if self.exhausted or self.state is not _RUNNING:
                        return
                    try:
                        item = next(sync_items)
                    except StopIteration:
                        self.exhausted = True
                        return
                else:
                    item = await self._pull_async()
                    if item is _MISSING:
                        return
                index = self.pulled
                self.pulled = index + 1
            if rate is not None:
                await self._admit(rate)
            self.started += 1
            try:
                result = fn(item)
                if type(result) is not CoroutineType:
                    _check_awaitable(fn, result)
                value = await (result if timeout is None else self._bounded(result, index))
            except Exception as exc:
                self.failed += 1
                if INSTRUMENTS.active:
                    INSTRUMENTS.event(self, "item_failed", {"index": index, "error": exc})
                if not outcomes or type(exc) is _NotAnAsyncFunction:
                    raise
                value = Rejected(exc)
            except BaseException:
                self.cancelled += 1
                raise
            else:
                self.completed += 1
                if outcomes:
                    value = Fulfilled(value)
            if self.state is not _RUNNING:  # fn swallowed our cancellation
                return
            item = _MISSING
            if ordered:
                self._deposit_in_order(index, value)
            else:
                ready.append(value)
                consumer = self.consumer
                if consumer is not None:
                    self.consumer = None
                    if not consumer.done():
                        consumer.set_result(None)

    async def _bounded(self, awaitable: Awaitable[Any], index: int) -> Any:
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[assignment]
        timeout: float = self.timeout  # type: ignore[assignment]
        with CancelScope(deadline=loop.time() + timeout):
            return await awaitable
        raise DeadlineExceeded(
            f"amap: item {index} did not finish within per_item_timeout={timeout:g} s"
        )

    async def _admit(self, rate: RateLimiter) -> None:
        try:
            await rate.acquire()
        except DeadlineExceeded:
            if self.deadline == math.inf:
                raise
            # No start is left before the consumer's deadline: wait for it (it cancels
            # this worker) rather than end the mapping early with an error.
            loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[assignment]
            await loop.create_future()

    async def _pull_async(self) -> Any:
        lock: asyncio.Lock = self.pull_lock  # type: ignore[assignment]
        items: AsyncIterator[Any] = self.items  # type: ignore[assignment]
        async with lock:  # an async generator cannot be advanced by two tasks at once
            while self.pulled - self.delivered >= self.window:
                await self._park()
            if self.exhausted or self.state is not _RUNNING:
                return _MISSING
            try:
                return await anext(items)
            except StopAsyncIteration:
                self.exhausted = True
                return _MISSING

    async def _park(self) -> None:
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[assignment]
        future = loop.create_future()
        self.parked.append(future)
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(current_task(), self)
        try:
            await future
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(current_task(), self)

    def unpark_one(self) -> None:
        """Let one worker waiting for room in the window pull again."""
        parked = self.parked
        while parked:
            future = parked.popleft()
            if not future.done():
                future.set_result(None)
                return

    def _deposit_in_order(self, index: int, value: Any) -> None:
        if index != self.next_index:
            self.done[index] = value
            return
        ready = self.ready
        done = self.done
        ready.append(value)
        index += 1
        while done:
            value = done.pop(index, _MISSING)
            if value is _MISSING:
                break
            ready.append(value)
            index += 1
        self.next_index = index
        self._wake_consumer()

    def _wake_consumer(self) -> None:
        consumer = self.consumer
        if consumer is not None:
            self.consumer = None
            if not consumer.done():
                consumer.set_result(None)

    def _exited(self, task: asyncio.Task[None]) -> None:
        # A done callback, not a ``finally``: a worker cancelled before its first step
        # never runs a line of its coroutine.
        self.live -= 1
        self.workers.discard(task)
        if task.cancelled():
            self.fail(asyncio.CancelledError("an amap worker was cancelled from outside"))
        if self.live:
            return
        if self.state is _RUNNING:
            self._finish()
        self._wake_consumer()
        exited = self.exited
        if exited is not None and not exited.done():
            exited.set_result(None)

    def _finish(self) -> None:
        self.state = _FINISHED
        if INSTRUMENTS.active:
            INSTRUMENTS.event(
                self, "finished", {"completed": self.completed, "failed": self.failed}
            )

    # -- stopping -------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        """Stop the mapping because of ``error``, which the consumer will raise.

        Ignored unless the mapping is running: once it failed or was closed, later
        errors (often the cancellations this causes) have nobody to go to.
        """
        if self.state is not _RUNNING:
            return
        self.state = _FAILED
        self.error = error
        self._stop_workers()
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "failed", {"error": error})
        self._wake_consumer()

    def abort(self) -> None:
        """Cancel every worker and drop the results not taken yet; returns at once.

        The workers finish their cancellation at their next steps; :meth:`shutdown`
        waits for them. Safe to call in any state.
        """
        if self.state is _CLOSED:
            return
        was_new = self.state is _NEW
        self.state = _CLOSED
        self.error = None
        if was_new:
            return
        self._stop_workers()
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "closed", {"delivered": self.delivered})

    def _stop_workers(self) -> None:
        self.ready.clear()
        self.done.clear()
        me = current_task()
        for task in self.workers:
            if task is not me:
                task.cancel("corral.amap stopped")

    async def shutdown(self) -> None:
        """Stop the workers, wait until each has finished, then close the source.

        The wait is protected from the re-delivered cancellation of an enclosing,
        already cancelled scope (the workers are cancelled and finish promptly); a
        direct ``Task.cancel()`` still interrupts it. The source's ``aclose()`` (async)
        or ``close()`` (sync generator) is called once.
        """
        self.abort()
        loop = self.loop
        while self.live and loop is not None:
            exited = self.exited = loop.create_future()
            await wait_protected(exited)
        self.exited = None
        if self.source_closed:
            return
        self.source_closed = True
        if self.async_source:
            aclose = getattr(self.items, "aclose", None)
            if aclose is not None:
                await aclose()
        else:
            close = getattr(self.items, "close", None)
            if close is not None:
                close()

    # -- the consumer ---------------------------------------------------------------------

    async def next_result(self) -> Any:
        """The next result, waiting for one if none is ready (the slow path).

        Cancellation: a consumer cancelled while waiting stops the mapping: the workers
        are cancelled and waited for, and the source is closed, before the
        ``CancelledError`` propagates.

        Raises:
            StopAsyncIteration: every result was taken, or the mapping stopped.
            ClosedResourceError: the mapping was closed with ``aclose()``.
            UsageError: another task is already waiting for a result.
            Exception: the first error of a call (with ``stop_on_error``) or of the source.
        """
        if self.state is _NEW:
            self.start()
        ready = self.ready
        while not ready:
            state = self.state
            if state is _RUNNING:
                await self._wait()
            elif state is _FAILED:
                error = self.error
                await self.shutdown()
                try:
                    raise error  # type: ignore[misc]
                finally:
                    del error
            else:
                await self.shutdown()
                if self.aclosed:
                    raise ClosedResourceError("this amap was closed; it yields nothing more")
                raise StopAsyncIteration
        self.delivered += 1
        if self.parked:
            self.unpark_one()
        return ready.popleft()

    async def _wait(self) -> None:
        if self.consumer is not None:
            raise UsageError("another task is already waiting for a result of this amap")
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[assignment]
        future = self.consumer = loop.create_future()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(current_task(), self)
        try:
            await future
        except BaseException:
            self.consumer = None
            await self.shutdown()
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(current_task(), self)

    # -- introspection --------------------------------------------------------------------

    def statistics(self) -> AsyncMapStatistics:
        """A snapshot of the counters; see :class:`AsyncMapStatistics`."""
        return AsyncMapStatistics(
            state=self.state,
            limit=self.limit,
            ordered=self.ordered,
            pulled=self.pulled,
            started=self.started,
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
            in_flight=self._running(),
            pending=len(self.ready) + len(self.done),
            delivered=self.delivered,
            workers=self.live,
        )

    def _running(self) -> int:
        return self.started - self.completed - self.failed - self.cancelled

    def __repr__(self) -> str:
        running = self._running()
        pending = len(self.ready) + len(self.done)
        return (
            f"<amap {self.state}: {running}/{self.limit} running, {pending} pending, "
            f"{self.delivered} delivered>"
        )
