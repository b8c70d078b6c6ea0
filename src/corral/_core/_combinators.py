"""Structured combinators: ``all``, ``all_settled``, ``any``, ``race``, ``all_keyed``.

They take the JavaScript names and semantics for *what* the result is, and structured
concurrency for *what is left running*: once the result is decided, every input the
combinator started itself (coroutines and other awaitables it wrapped in tasks) that is
still running is cancelled and awaited before the combinator returns or raises. Tasks
and futures passed in belong to the caller: they are awaited, never cancelled.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable, Mapping
from types import CoroutineType
from typing import Any, Final, TypeVar

from ..errors import (
    AggregateError,
    ArgumentTypeError,
    InputCancelledError,
    InvalidArgumentError,
    UsageError,
)
from ._outcome import Fulfilled, Outcome, Rejected
from ._reason import CancelSource
from ._scope import (
    TASK_SCOPES,
    CancelScope,
    current_task,
    needs_self_adoption,
    run_adopted,
    wait_protected,
)

__all__ = ("all", "all_keyed", "all_settled", "any", "race")

T = TypeVar("T")
K = TypeVar("K")

# What decides the result.
_ALL: Final = 0  # first failure, or every input fulfilled
_SETTLED: Final = 1  # every input settled
_ANY: Final = 2  # first fulfilment, or every input failed
_RACE: Final = 3  # first input to settle


def _check_limit(limit: object, where: str) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, float)):
        raise ArgumentTypeError(
            f"{where}: limit must be a positive int or None, not {type(limit).__name__}"
        )
    if isinstance(limit, float):
        if math.isnan(limit) or limit != int(limit) or limit < 1:
            raise InvalidArgumentError(
                f"{where}: limit must be a positive whole number, got {limit!r}"
            )
        return int(limit)
    if limit < 1:
        raise InvalidArgumentError(f"{where}: limit must be at least 1, got {limit!r}")
    return limit


async def _await_it(awaitable: Awaitable[T]) -> T:
    return await awaitable


class _Combinator:
    """One combinator call: starts inputs, watches them settle, decides, cleans up."""

    __slots__ = (
        "_decided",
        "_done",
        "_finished",
        "_futures",
        "_loop",
        "_mode",
        "_next",
        "_on_owned_settled",
        "_on_settled",
        "_pending_end",
        "_region",
        "_remaining",
        "_running",
        "_starts",
        "_winner",
        "_wrap",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, mode: int) -> None:
        self._loop = loop
        self._mode = mode
        self._done: asyncio.Future[None] = loop.create_future()
        self._futures: list[Any] = []
        self._starts: range | list[int] = range(0)  # indices of the inputs we start
        self._next = 0  # how many of them have been started (the rest wait for `limit`)
        self._pending_end = 0
        self._remaining = 0
        self._decided = False
        self._winner: asyncio.Future[Any] | None = None
        self._running = 0  # inputs we started that have not finished
        self._finished: asyncio.Future[None] | None = None  # set when _running drops to 0
        # The inputs we start run in a region under the caller's scope: enclosing
        # cancellation and deadlines reach them, and we can cancel them as a whole.
        self._region = CancelScope._open_region(loop, TASK_SCOPES.get(current_task()))  # type: ignore[arg-type]
        self._on_settled = self._settled
        self._on_owned_settled = self._owned_settled
        self._wrap = needs_self_adoption(loop)  # inputs adopt themselves (task factory)

    def start(self, where: str, inputs: list[Any], limit: int | None) -> None:
        loop = self._loop
        coroutine = CoroutineType
        # Validate everything before starting anything. `futures` starts as the inputs;
        # each one we start is replaced by its task.
        futures: list[Any] = list(inputs)
        starts: range | list[int] = range(len(inputs))
        for item in inputs:
            if type(item) is not coroutine:
                starts = self._plan(where, futures)
                break
        self._futures = futures
        self._starts = starts
        self._remaining = len(futures)
        first = starts if limit is None or limit >= len(starts) else starts[:limit]
        self._pending_end = len(starts)
        self._next = 0 if self._wrap else len(first)
        self._running = 0 if self._wrap else len(first)
        if self._wrap:
            for _ in first:
                self._start_next()
            return
        region = self._region
        region_tasks = region._tasks = set()
        scopes = TASK_SCOPES
        create_task = loop.create_task
        on_owned_settled = self._on_owned_settled
        for index in first:
            item = futures[index]
            task = create_task(item if type(item) is coroutine else _await_it(item))
            futures[index] = task
            scopes[task] = region
            region_tasks.add(task)
            task.add_done_callback(on_owned_settled)

    def _plan(self, where: str, futures: list[Any]) -> list[int]:
        """Check mixed inputs; return the indices of those we start ourselves."""
        loop = self._loop
        starts: list[int] = []
        for index, item in enumerate(futures):
            if type(item) is CoroutineType:
                starts.append(index)
            elif isinstance(item, asyncio.Future):
                if item.get_loop() is not loop:
                    self._abandon(futures)
                    raise UsageError(f"{where}: input {index} is a future of another event loop")
            elif hasattr(item, "__await__"):
                starts.append(index)
            else:
                self._abandon(futures)
                raise ArgumentTypeError(
                    f"{where}: input {index} is not awaitable: {type(item).__name__} ({item!r:.60})"
                )
        on_settled = self._on_settled
        for item in futures:  # the caller's own futures: watched, never cancelled
            if isinstance(item, asyncio.Future):
                item.add_done_callback(on_settled)
        return starts

    def _abandon(self, inputs: list[Any]) -> None:
        self._close_all(inputs)
        self._region._close_region()

    @staticmethod
    def _close_all(inputs: list[Any]) -> None:
        for item in inputs:
            if type(item) is CoroutineType:
                item.close()

    def _owned_settled(self, task: asyncio.Task[Any]) -> None:
        TASK_SCOPES.pop(task, None)  # a finished task is in no scope
        tasks = self._region._tasks
        if tasks is not None:
            tasks.discard(task)
        self._running -= 1
        if not self._running and self._finished is not None and not self._finished.done():
            self._finished.set_result(None)
        self._remaining -= 1
        if not self._decided:
            self._judge(task)
            if self._next < self._pending_end and not self._decided:
                self._start_next()

    def _settled(self, fut: asyncio.Future[Any]) -> None:
        self._remaining -= 1
        if not self._decided:
            self._judge(fut)
            if self._next < self._pending_end and not self._decided:
                self._start_next()

    def _start_next(self) -> None:
        index = self._starts[self._next]
        self._next += 1
        item = self._futures[index]
        coro = item if type(item) is CoroutineType else _await_it(item)
        self._running += 1
        if self._wrap:
            task = self._loop.create_task(run_adopted(self._region, coro))
        else:
            task = self._loop.create_task(coro)
            self._region._adopt_task(task)
        self._futures[index] = task
        task.add_done_callback(self._on_owned_settled)

    def _judge(self, fut: asyncio.Future[Any]) -> None:
        mode = self._mode
        if mode == _ALL:
            failed = fut.cancelled() or fut.exception() is not None
            if failed or self._remaining == 0:
                self._decide(fut if failed else None)
        elif mode == _SETTLED:
            if self._remaining == 0:
                self._decide(None)
        elif mode == _ANY:
            fulfilled = not fut.cancelled() and fut.exception() is None
            if fulfilled or self._remaining == 0:
                self._decide(fut if fulfilled else None)
        else:  # _RACE
            self._decide(fut)

    def _decide(self, winner: asyncio.Future[Any] | None) -> None:
        self._decided = True
        self._winner = winner
        if not self._done.done():
            self._done.set_result(None)

    async def wait(self) -> None:
        """Wait for the decision, then cancel and await what we started and still runs."""
        try:
            await self._done
        except asyncio.CancelledError:
            self._decided = True
            await self._cleanup(CancelSource.PARENT_CANCELLED)
            raise
        if self._remaining:
            await self._cleanup(CancelSource.SETTLED)
        else:
            self._region._close_region()

    async def _cleanup(self, source: CancelSource) -> None:
        region = self._region
        started = self._starts[: self._next]
        for index in self._starts[self._next :]:  # never started: close, never run
            item = self._futures[index]
            if type(item) is CoroutineType:
                item.close()
        self._pending_end = self._next
        owned = {id(self._futures[index]) for index in started}
        for fut in self._futures:  # stop watching the caller's own futures
            if isinstance(fut, asyncio.Future) and id(fut) not in owned and not fut.done():
                fut.remove_done_callback(self._on_settled)
        # Cancelling the region is level-triggered and respects shields inside the inputs.
        region._cancel(source, None)
        interrupted: asyncio.CancelledError | None = None
        while self._running:
            self._finished = self._loop.create_future()
            try:
                await wait_protected(self._finished)
            except asyncio.CancelledError as exc:
                interrupted = exc  # we are being cancelled too; the inputs still must end
        region._close_region()
        for index in started:  # retrieve errors so none is reported as never retrieved
            task = self._futures[index]
            if not task.cancelled():
                task.exception()
        if interrupted is not None:
            raise interrupted

    def __repr__(self) -> str:
        mode = ("all", "all_settled", "any", "race")[self._mode]
        state = "decided" if self._decided else f"{self._remaining} pending"
        return f"<corral.{mode} {state}>"


def _error_of(fut: asyncio.Future[Any]) -> BaseException:
    if fut.cancelled():
        try:
            fut.result()
        except asyncio.CancelledError as cancelled:
            return cancelled
    error = fut.exception()
    assert error is not None
    return error


async def _run(where: str, mode: int, aws: Iterable[Any], limit: object) -> _Combinator | None:
    """Run one combinator to its decision; ``None`` when there were no inputs."""
    checked = _check_limit(limit, where)
    if isinstance(aws, (str, bytes)) or not isinstance(aws, Iterable):
        raise ArgumentTypeError(
            f"{where} takes an iterable of awaitables, not {type(aws).__name__}"
        )
    inputs = list(aws)
    if not inputs:
        return None
    combinator = _Combinator(asyncio.get_running_loop(), mode)
    combinator.start(where, inputs, checked)
    await combinator.wait()
    return combinator


async def all(aws: Iterable[Awaitable[T]], *, limit: int | None = None) -> list[T]:
    """Wait for every input; return their results in input order.

    Inputs may be coroutines, tasks, futures, promises or any awaitable. As soon as one
    input fails (or is cancelled by somebody else), the inputs ``all`` started itself are
    cancelled and awaited, then the first error is raised. ``all([])`` returns ``[]``.

    Args:
        aws: the awaitables.
        limit: run at most this many of the coroutine inputs at once (started in input
            order); tasks and futures given are already running and are not counted.

    Cancellation: cancelling the caller cancels and awaits every input ``all`` started,
    then re-raises ``CancelledError``. Tasks and futures passed in are never cancelled.

    Raises:
        ArgumentTypeError: an input is not awaitable (the message names its index).
        InvalidArgumentError: ``limit`` is zero, negative or NaN.
        UsageError: a future belongs to another event loop.
        BaseException: the first error raised by an input.
    """
    combinator = await _run("corral.all()", _ALL, aws, limit)
    if combinator is None:
        return []
    winner = combinator._winner
    if winner is not None:
        raise _error_of(winner)
    return [fut.result() for fut in combinator._futures]


async def all_settled(aws: Iterable[Awaitable[T]], *, limit: int | None = None) -> list[Outcome[T]]:
    """Wait for every input to settle; return an :class:`Outcome` per input, in order.

    Never raises because an input failed: failures (and inputs cancelled by somebody
    else) come back as :class:`Rejected`, results as :class:`Fulfilled`.

    Cancellation: cancelling the caller cancels and awaits every input it started.

    Raises:
        ArgumentTypeError: an input is not awaitable (the message names its index).
        InvalidArgumentError: ``limit`` is zero, negative or NaN.
    """
    combinator = await _run("corral.all_settled()", _SETTLED, aws, limit)
    outcomes: list[Outcome[T]] = []
    if combinator is None:
        return outcomes
    for fut in combinator._futures:
        if fut.cancelled() or fut.exception() is not None:
            outcomes.append(Rejected(_error_of(fut)))
        else:
            outcomes.append(Fulfilled(fut.result()))
    return outcomes


async def any(aws: Iterable[Awaitable[T]], *, limit: int | None = None) -> T:
    """Return the result of the first input to *succeed*; cancel the inputs it started.

    Failures are skipped while another input may still succeed. If every input fails,
    raises :class:`~corral.errors.AggregateError` carrying the errors in input order (an
    ``ExceptionGroup``, so ``except*`` works); an input cancelled by somebody else is
    carried as :class:`~corral.errors.InputCancelledError`. ``any([])`` raises an empty
    ``AggregateError``.

    Cancellation: cancelling the caller cancels and awaits every input it started.

    Raises:
        AggregateError: every input failed, or there was none.
        ArgumentTypeError: an input is not awaitable (the message names its index).
        InvalidArgumentError: ``limit`` is zero, negative or NaN.
    """
    combinator = await _run("corral.any()", _ANY, aws, limit)
    if combinator is None:
        raise AggregateError("corral.any() got no inputs", [])
    winner = combinator._winner
    if winner is not None:
        return winner.result()  # type: ignore[no-any-return]
    errors: list[Exception] = []
    for index, fut in enumerate(combinator._futures):
        error = _error_of(fut)
        if not isinstance(error, Exception):  # cancelled by somebody else
            wrapped = InputCancelledError(index)
            wrapped.__cause__ = error
            error = wrapped
        errors.append(error)
    raise AggregateError("every input of corral.any() failed", errors)


async def race(aws: Iterable[Awaitable[T]], *, limit: int | None = None) -> T:
    """Settle like the first input to settle: return its result or raise its error.

    The inputs it started that are still running are then cancelled and awaited.

    Cancellation: cancelling the caller cancels and awaits every input it started.

    Raises:
        InvalidArgumentError: there are no inputs (a race needs at least one), or
            ``limit`` is zero, negative or NaN.
        ArgumentTypeError: an input is not awaitable (the message names its index).
        BaseException: the error of the first input to settle, if it failed.
    """
    combinator = await _run("corral.race()", _RACE, aws, limit)
    winner = combinator._winner if combinator is not None else None
    if winner is None:
        raise InvalidArgumentError("corral.race() needs at least one input; it got none")
    return winner.result()  # type: ignore[no-any-return]


async def all_keyed(aws: Mapping[K, Awaitable[T]], *, limit: int | None = None) -> dict[K, T]:
    """Like :func:`all` over a mapping's values; returns a dict with the same keys.

    Raises:
        ArgumentTypeError: ``aws`` is not a mapping, or a value is not awaitable (the
            message names its key).
        InvalidArgumentError: ``limit`` is zero, negative or NaN.
        BaseException: the first error raised by an input.
    """
    if not isinstance(aws, Mapping):
        if isinstance(aws, Iterable) and not isinstance(aws, (str, bytes)):  # type: ignore[unreachable]
            _Combinator._close_all(list(aws))  # close coroutines given by mistake
        raise ArgumentTypeError(f"corral.all_keyed() takes a mapping, not {type(aws).__name__}")
    keys = list(aws)
    for key in keys:
        if not hasattr(aws[key], "__await__"):
            for value in aws.values():
                if type(value) is CoroutineType:
                    value.close()
            raise ArgumentTypeError(
                f"corral.all_keyed(): the value for key {key!r} is not awaitable: "
                f"{type(aws[key]).__name__}"
            )
    values = await all([aws[key] for key in keys], limit=limit)
    return dict(zip(keys, values, strict=True))
