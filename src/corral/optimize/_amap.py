"""corral.amap and corral.map_all: map an async function over many items, a few at a time."""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar, overload

from .._core._outcome import Outcome
from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError
from ._amap_run import AsyncMapStatistics, MapRun
from ._limiter import size_arg
from ._ratelimit import RateLimiter

__all__ = ("AsyncMap", "amap", "map_all")

T = TypeVar("T")
R = TypeVar("R")


class AsyncMap(Generic[R]):
    """The results of :func:`corral.amap`: an async iterator and an async context manager.

    Iterate it with ``async for``, preferably inside ``async with`` so that leaving the
    block early always stops the work::

        async with corral.amap(fetch, urls, limit=10) as results:
            async for page in results:
                ...

    The work starts at the first ``__anext__`` (or at ``async with``), in the task that
    iterates; until then nothing runs and nothing is pulled from the source.

    Lifetime: the worker tasks never outlive the iteration. Running to the end, an error
    raised out of ``__anext__``, ``aclose()`` and leaving ``async with`` all stop them
    and wait for them before returning. Breaking out of a plain ``async for`` drops the
    iterator, and dropping it cancels the workers (at once under CPython's reference
    counting; the cancelled workers finish at their next loop steps).

    Cancellation: cancelling the consuming task while it waits for a result cancels
    every running call and closes the source before the ``CancelledError``
    propagates. The calls run bounded by the deadline that enclosed the consumer when
    the work started (``corral.current_effective_deadline()``); if it passes while the
    consumer is not waiting, the next ``__anext__`` raises
    :class:`~corral.errors.DeadlineExceeded`.

    Instrumentation: the run behind it (whose repr starts with ``<amap``) reports the
    events ``started``, ``item_failed`` (with the item's ``index`` and the ``error``),
    ``failed``, ``finished`` and ``closed``, and parks and wakes of the consumer and of
    workers waiting for room in the window.

    Thread-safety: not thread-safe; iterate it from one task of one event loop.
    """

    __slots__ = ("_run",)

    def __init__(self, run: MapRun) -> None:
        self._run = run

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> R:
        """The next result (see :func:`corral.amap` for the order).

        Raises:
            StopAsyncIteration: every item was mapped and every result taken.
            ClosedResourceError: the iterator was closed with :meth:`aclose`.
            UsageError: another task is already waiting on this iterator.
            Exception: with ``stop_on_error``, the first error a call raised (the other
                calls are cancelled first); in any mode, an error of the source.
        """
        run = self._run
        ready = run.ready
        if ready:  # the fast path: a result is waiting
            run.delivered += 1
            if run.parked:
                run.unpark_one()
            return ready.popleft()  # type: ignore[no-any-return]
        return await run.next_result()  # type: ignore[no-any-return]

    async def __aenter__(self) -> Self:
        """Start the work now (in this task, under its deadline) and return ``self``."""
        run = self._run
        if run.state == "new":
            run.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop: cancel the running calls, wait for them, close the source.

        Results not taken yet are dropped; iterating afterwards raises
        :class:`~corral.errors.ClosedResourceError`. Closing twice is harmless.

        Cancellation: the wait for the cancelled calls is not cut short by an enclosing
        scope that is already cancelled; a direct ``Task.cancel()`` interrupts it.
        """
        run = self._run
        run.aclosed = True
        await run.shutdown()

    def statistics(self) -> AsyncMapStatistics:
        """A snapshot: state, items pulled, calls started/completed/failed/in flight,
        results pending and delivered, live workers."""
        return self._run.statistics()

    def __del__(self) -> None:
        run = self._run
        loop = run.loop
        if run.live and loop is not None:
            # The collector may run in any thread: stop the workers from their own loop.
            try:
                loop.call_soon_threadsafe(run.abort)
            except RuntimeError:  # the loop is already closed: nothing left to stop
                return

    def __repr__(self) -> str:
        return repr(self._run).replace("<amap", "<AsyncMap", 1)


def _fn_arg(fn: object, what: str) -> None:
    if isinstance(fn, Coroutine):
        fn.close()
        raise ArgumentTypeError(
            f"{what}() takes an async function, not a coroutine object: write "
            f"{what}(fn, items, ...), not {what}(fn(x), items, ...)"
        )
    if not callable(fn):
        raise ArgumentTypeError(f"fn must be an async function, not {type(fn).__name__} ({fn!r})")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise ArgumentTypeError(
            f"fn must be an async function returning one result per item, not the "
            f"generator function {getattr(fn, '__qualname__', fn)!r}"
        )


def _rate_arg(rate: object) -> RateLimiter | None:
    if rate is None or isinstance(rate, RateLimiter):
        return rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ArgumentTypeError(
            "rate must be a number of starts per second or a corral.RateLimiter, "
            f"not {type(rate).__name__} ({rate!r})"
        )
    if not rate > 0 or math.isinf(rate):
        raise InvalidArgumentError(
            f"rate must be a positive finite number of starts per second, got {rate!r}"
        )
    return RateLimiter(rate, burst=1)


def _timeout_arg(value: object) -> float | None:
    if value is None:
        return None
    seconds = seconds_arg(value, "per_item_timeout")
    if seconds == 0:
        raise InvalidArgumentError(f"per_item_timeout must be above zero, got {value!r}")
    return None if math.isinf(seconds) else seconds


def _flag_arg(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be True or False, not {type(value).__name__}")
    return value


def _build(
    what: str,
    fn: object,
    items: object,
    limit: object,
    rate: object,
    ordered: object,
    per_item_timeout: object,
    stop_on_error: object,
) -> MapRun:
    _fn_arg(fn, what)
    size = size_arg(limit, "limit")
    limiter = _rate_arg(rate)
    timeout = _timeout_arg(per_item_timeout)
    in_order = _flag_arg(ordered, "ordered")
    outcomes = not _flag_arg(stop_on_error, "stop_on_error")
    if hasattr(type(items), "__aiter__"):
        source: Any = aiter(items)  # type: ignore[arg-type]
        async_source = True
    else:
        if isinstance(items, Coroutine):
            items.close()
            raise ArgumentTypeError("items is a coroutine object; await it first to get the items")
        try:
            source = iter(items)  # type: ignore[call-overload]
        except TypeError:
            raise ArgumentTypeError(
                f"items must be an iterable or an async iterable, not {type(items).__name__}"
            ) from None
        async_source = False
    return MapRun(
        fn,  # type: ignore[arg-type]
        source,
        async_source=async_source,
        limit=size,
        rate=limiter,
        ordered=in_order,
        timeout=timeout,
        outcomes=outcomes,
    )


Items = Iterable[T] | AsyncIterable[T]


@overload
def amap(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    limit: int,
    rate: float | RateLimiter | None = None,
    ordered: bool = False,
    per_item_timeout: Seconds | None = None,
    stop_on_error: Literal[True] = True,
) -> AsyncMap[R]: ...


@overload
def amap(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    limit: int,
    rate: float | RateLimiter | None = None,
    ordered: bool = False,
    per_item_timeout: Seconds | None = None,
    stop_on_error: Literal[False],
) -> AsyncMap[Outcome[R]]: ...


@overload
def amap(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    limit: int,
    rate: float | RateLimiter | None = None,
    ordered: bool = False,
    per_item_timeout: Seconds | None = None,
    stop_on_error: bool,
) -> AsyncMap[R] | AsyncMap[Outcome[R]]: ...


def amap(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    limit: int,
    rate: float | RateLimiter | None = None,
    ordered: bool = False,
    per_item_timeout: Seconds | None = None,
    stop_on_error: bool = True,
) -> AsyncMap[Any]:
    """Map ``fn`` over ``items`` with at most ``limit`` calls running at once.

    Returns an async iterator of ``await fn(item)`` results: as they complete (the
    default) or in input order (``ordered=True``). Use it inside ``async with``::

        async with corral.amap(fetch, urls, limit=10) as pages:
            async for page in pages:
                print(len(page))

    ``items`` may be an iterable or an async iterable, possibly infinite: it is pulled
    lazily, only as capacity frees. At most ``limit`` calls run at once, and at most
    ``2 * limit`` items are ever pulled ahead of what the consumer has taken (up to
    ``limit`` running and up to ``limit`` finished results waiting), so a slow consumer
    holds the source back. An async iterable is advanced by one task at a time.

    Errors: with ``stop_on_error=True`` (the default) the first error a call raises
    cancels every other call and is raised from ``__anext__``; results not taken yet
    are dropped. With ``stop_on_error=False`` every item's result comes back as an
    :class:`~corral.Outcome` (:class:`~corral.Fulfilled` or :class:`~corral.Rejected`)
    and the mapping goes on. Either way an error raised by the source itself, a
    ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, or a
    ``CancelledError`` that ``fn`` raises by itself) and an ``fn`` that returns
    something not awaitable stop the mapping and are raised.

    Cancellation and lifetime: see :class:`AsyncMap`. In short, the workers never
    outlive the iteration, cancelling the consumer cancels the running calls, and the
    calls are bounded by the consumer's enclosing deadline. The source's ``aclose()``
    (async generator) or ``close()`` (generator) is called when the mapping ends.

    Thread-safety: ``amap()`` itself only validates and builds; iterate the result from
    one task of one event loop (it is not thread-safe).

    Args:
        fn: an async function of one item (pass the function, not a coroutine).
        items: an iterable or async iterable of items.
        limit: how many calls may run at once (``>= 1``).
        rate: paces the starts of calls: a number is starts per second, evenly
            spaced (a :class:`~corral.RateLimiter` of that rate with ``burst=1``);
            a :class:`~corral.RateLimiter` is shared as it is (one unit per call),
            so several mappings can share one budget. ``None``: no pacing.
        ordered: yield results in input order (a result that finishes early waits
            for the ones before it) instead of as they complete.
        per_item_timeout: seconds (or a ``timedelta``) each call may take; a call
            that takes longer is cancelled and fails with
            :class:`~corral.errors.DeadlineExceeded` (a ``TimeoutError``) whose
            message names the item's index. ``None``: no timeout.
        stop_on_error: raise the first error (``True``) or return every result as an
            ``Outcome`` (``False``).

    Returns:
        An :class:`AsyncMap` of results, or of ``Outcome``\\s when ``stop_on_error``
        is false. Nothing runs until it is iterated or entered.

    Raises:
        ArgumentTypeError: ``fn`` is a coroutine object, not callable or a generator
            function; ``items`` is not iterable (or is a coroutine object); ``limit``
            is not an ``int``; ``rate`` or ``per_item_timeout`` is not a number;
            ``ordered`` or ``stop_on_error`` is not a ``bool``.
        InvalidArgumentError: ``limit`` is below 1; ``rate`` or ``per_item_timeout``
            is zero, negative or NaN (``rate`` also when infinite).
    """
    return AsyncMap(
        _build("amap", fn, items, limit, rate, ordered, per_item_timeout, stop_on_error)
    )


@overload
async def map_all(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    limit: int,
    rate: float | RateLimiter | None = None,
    ordered: bool = True,
    per_item_timeout: Seconds | None = None,
    stop_on_error: Literal[True] = True,
) -> list[R]: ...


@overload
async def map_all(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    limit: int,
    rate: float | RateLimiter | None = None,
    ordered: bool = True,
    per_item_timeout: Seconds | None = None,
    stop_on_error: Literal[False],
) -> list[Outcome[R]]: ...


@overload
async def map_all(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    limit: int,
    rate: float | RateLimiter | None = None,
    ordered: bool = True,
    per_item_timeout: Seconds | None = None,
    stop_on_error: bool,
) -> list[R] | list[Outcome[R]]: ...


async def map_all(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    limit: int,
    rate: float | RateLimiter | None = None,
    ordered: bool = True,
    per_item_timeout: Seconds | None = None,
    stop_on_error: bool = True,
) -> list[Any]:
    """Map ``fn`` over every item of ``items`` (at most ``limit`` at once) into a list.

    The arguments are those of :func:`corral.amap`; the list is in input order unless
    ``ordered=False`` asks for completion order. ``items`` must be finite.

    Cancellation: cancelling the caller cancels every running call and closes the
    source before the ``CancelledError`` propagates; no call outlives ``map_all``.

    Thread-safety: each call is independent; a shared ``rate`` limiter must be used
    from one event loop.

    Raises:
        ArgumentTypeError, InvalidArgumentError: as :func:`corral.amap`, before
            anything runs.
        Exception: with ``stop_on_error``, the first error a call raised (the other
            calls are cancelled first); in any mode, an error of the source.
    """
    run = _build("map_all", fn, items, limit, rate, ordered, per_item_timeout, stop_on_error)
    async with AsyncMap[Any](run) as results:
        return [result async for result in results]
