"""ErrGroup: a task group that stops at the first error and can bound its concurrency."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import math
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from .._core._hooks import INSTRUMENTS
from .._core._reason import CancelSource
from .._core._taskgroup import TaskGroup
from ..errors import ArgumentTypeError, InvalidArgumentError

__all__ = ("ErrGroup", "ErrGroupStatistics")


@dataclasses.dataclass(frozen=True, slots=True)
class ErrGroupStatistics:
    """A snapshot of an :class:`ErrGroup`."""

    running: int
    waiting_for_slot: int
    limit: float
    started: int
    failed: int


class ErrGroup:
    """Run tasks until the first failure, at most ``limit`` at a time (Go's ``errgroup``).

    ::

        async with corral.ErrGroup(limit=8) as group:
            for url in urls:
                await group.go(fetch, url)   # waits while 8 are running

    Differences from :class:`corral.TaskGroup`: the first error a child raises cancels
    the rest and is raised *as it is* when the block exits (not in an
    ``ExceptionGroup``); errors that children raise after that are counted in a note on
    it. ``go()`` waits for a free slot (backpressure), ``try_go()`` starts only if one is
    free. An error in the body itself cancels the children and is raised as it is too.

    Cancellation: cancelling the task running the block cancels every child; a task
    waiting in ``go()`` for a slot can be cancelled without taking one.

    Args:
        limit: the most children running at once; ``None`` for no limit.

    Raises:
        InvalidArgumentError: ``limit`` is below 1 or NaN.
        UsageError: ``go()`` / ``try_go()`` outside the ``async with`` block.
    """

    __slots__ = (
        "_error",
        "_group",
        "_limit",
        "_running",
        "_slot_waiters",
        "_started",
        "_suppressed",
    )

    def __init__(self, *, limit: int | None = None) -> None:
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise ArgumentTypeError(
                    f"ErrGroup limit must be a positive int or None, not {type(limit).__name__}"
                )
            if limit < 1:
                raise InvalidArgumentError(f"ErrGroup limit must be at least 1, got {limit}")
        self._limit = math.inf if limit is None else limit
        self._group = TaskGroup()
        self._running = 0
        self._started = 0
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._error: BaseException | None = None
        self._suppressed = 0

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            suppress = await self._group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # Children never raise into the group (see _child), so this holds the body's
            # own error: give it back as it is.
            if len(group.exceptions) == 1 and self._error is None:
                raise group.exceptions[0] from None
            raise
        if self._error is not None:
            error = self._error
            if self._suppressed:
                error.add_note(
                    f"({self._suppressed} more error(s) from other ErrGroup children "
                    "were raised while they were being cancelled)"
                )
            self._error = None
            raise error
        return suppress

    @property
    def cancel_scope(self) -> Any:
        """The scope every child and the body run in."""
        return self._group.cancel_scope

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the body and every child; the block then exits without an error."""
        self._group.cancel(reason)

    async def go(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> None:
        """Start ``fn(*args)`` once fewer than ``limit`` children run; waits until then.

        Callers waiting for a slot get one in the order they came (FIFO).

        Cancellation: if cancelled while waiting for a slot, nothing is started and no
        slot is taken.

        Raises:
            ArgumentTypeError: as for :meth:`corral.TaskGroup.start_soon`.
            UsageError: called outside the ``async with`` block.
        """
        self._check_callable(fn)
        if self._running < self._limit and not self._slot_waiters:
            self._running += 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._slot_waiters.append(waiter)
            if INSTRUMENTS.active:
                INSTRUMENTS.task_parked(asyncio.current_task(), self)
            try:
                await waiter  # woken with a slot reserved for us
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release_slot()  # handed a slot we will not use
                elif waiter in self._slot_waiters:  # _release_slot drops cancelled ones
                    self._slot_waiters.remove(waiter)
                raise
            finally:
                if INSTRUMENTS.active:
                    INSTRUMENTS.task_woken(asyncio.current_task(), self)
        self._start(fn, args, name)

    def try_go(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> bool:
        """Start ``fn(*args)`` if a slot is free now; ``False`` (nothing started) if not.

        Raises:
            ArgumentTypeError: as for :meth:`corral.TaskGroup.start_soon`.
            UsageError: called outside the ``async with`` block.
        """
        self._check_callable(fn)
        if self._running >= self._limit or self._slot_waiters:
            return False
        self._running += 1
        self._start(fn, args, name)
        return True

    @staticmethod
    def _check_callable(fn: object) -> None:
        if isinstance(fn, Coroutine):
            fn.close()
            raise ArgumentTypeError(
                "ErrGroup.go() takes the async function and its arguments, not a coroutine "
                "object: write `group.go(fn, *args)`"
            )
        if not callable(fn):
            raise ArgumentTypeError(
                f"ErrGroup.go() needs an async function, got {type(fn).__name__}"
            )

    def _start(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], name: str | None
    ) -> None:
        """Start a child in the slot the caller holds (released again if this fails)."""
        try:
            self._group._check_open("ErrGroup.go()")
            coro = _coroutine_of(fn, args)
            handle = self._group.create_task(self._child(coro), name=name)
            handle.task.add_done_callback(functools.partial(self._child_finished, coro))
        except BaseException:
            self._release_slot()
            raise
        self._started += 1

    async def _child(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except Exception as exc:
            if self._error is None:
                self._error = exc
                self._group.cancel_scope._cancel(
                    CancelSource.SIBLING_FAILED, f"{type(exc).__name__}: {exc}"
                )
            else:
                self._suppressed += 1

    def _child_finished(self, coro: Coroutine[Any, Any, Any], _: object) -> None:
        # Also runs for a child cancelled before its first step, which never awaited
        # `coro`: close it (no "never awaited" warning) and free the slot all the same.
        coro.close()
        self._release_slot()

    def _release_slot(self) -> None:
        """Give a slot back: to the longest-waiting caller if any (reserved for it)."""
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; _running is unchanged
                return
        self._running -= 1

    def statistics(self) -> ErrGroupStatistics:
        """A snapshot: running children, callers waiting for a slot, limit, counts."""
        return ErrGroupStatistics(
            running=self._running,
            waiting_for_slot=len(self._slot_waiters),
            limit=self._limit,
            started=self._started,
            failed=int(self._error is not None) + self._suppressed,
        )

    def __repr__(self) -> str:
        limit = "unlimited" if self._limit == math.inf else f"limit {self._limit}"
        parts = [f"{self._running} running", limit]
        if self._slot_waiters:
            parts.append(f"{len(self._slot_waiters)} waiting for a slot")
        if self._error is not None:
            parts.append(f"failed {type(self._error).__name__}")
        return f"<ErrGroup {', '.join(parts)}>"


def _coroutine_of(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
) -> Coroutine[Any, Any, Any]:
    coro = fn(*args)
    if not isinstance(coro, Coroutine):
        if hasattr(coro, "close"):
            coro.close()
        qualname = getattr(fn, "__qualname__", repr(fn))
        raise ArgumentTypeError(
            f"ErrGroup.go() needs an async function; {qualname}(...) returned {type(coro).__name__}"
        )
    return coro
