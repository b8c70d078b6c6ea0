"""corral.Bulkhead: a concurrency limit with a bounded waiting line that rejects at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import TypeVar, TypeVarTuple, Unpack

from .._core._hooks import INSTRUMENTS
from ..errors import ArgumentTypeError, BulkheadFull
from ._limiter import Limiter, size_arg

__all__ = ("Bulkhead", "BulkheadStatistics")

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclasses.dataclass(frozen=True, slots=True)
class BulkheadStatistics:
    """A snapshot of a :class:`Bulkhead`.

    Attributes:
        max_concurrent: how many calls may run at once.
        max_queued: how many calls may wait for a slot.
        running: how many calls hold a slot now.
        queued: how many calls wait for a slot now.
        peak_running: the most calls that ever held a slot at once.
        rejected: how many calls were turned away with ``BulkheadFull`` so far.
    """

    max_concurrent: int
    max_queued: int
    running: int
    queued: int
    peak_running: int
    rejected: int


class Bulkhead:
    """At most ``max_concurrent`` calls run and ``max_queued`` wait; the rest fail fast.

    Use ``async with bulkhead:`` around a call, or ``await bulkhead.run(fn, *args)``.
    When every slot is taken and the queue is full, entering raises
    :class:`~corral.errors.BulkheadFull` at once instead of waiting, so a slow dependency
    cannot pile up unbounded waiting work. Queued calls get slots first come, first
    served.

    Cancellation: a call cancelled while queued leaves the queue holding nothing (a slot
    handed over at that moment goes to the next queued call); a call cancelled while
    running gives its slot back. A queued wait is bounded by the enclosing cancel scope's
    deadline like any other await.

    Thread-safety: not thread-safe; use a bulkhead from the tasks of one event loop.

    Args:
        max_concurrent: how many calls may run at once (``>= 1``).
        max_queued: how many calls may wait for a slot (``>= 0``; ``0`` rejects every
            call that finds all slots taken).

    Raises:
        ArgumentTypeError: a limit is not an ``int``.
        InvalidArgumentError: ``max_concurrent`` is smaller than 1, ``max_queued`` is
            negative, or either is NaN.
    """

    __slots__ = ("_limiter", "_max_queued", "_rejected")

    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        self._limiter = Limiter(size_arg(max_concurrent, "max_concurrent"))
        self._max_queued = size_arg(max_queued, "max_queued", minimum=0)
        self._rejected = 0

    @property
    def max_concurrent(self) -> int:
        """How many calls may run at once."""
        return self._limiter.total

    @property
    def max_queued(self) -> int:
        """How many calls may wait for a slot."""
        return self._max_queued

    async def __aenter__(self) -> None:
        limiter = self._limiter
        if limiter.borrowed >= limiter.total and limiter.waiting >= self._max_queued:
            self._rejected += 1
            if INSTRUMENTS.active:
                INSTRUMENTS.event(self, "rejected", {"rejected": self._rejected})
            raise BulkheadFull(
                f"{self!r} is full: all slots are taken and the queue is full "
                f"(max_concurrent={limiter.total}, max_queued={self._max_queued})"
            )
        await limiter.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter.release()

    async def run(self, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
        """Run ``await fn(*args)`` in a slot and return its result.

        Cancellation: cancelling the caller cancels the wait for a slot or the running
        call, and the slot is given back either way.

        Raises:
            BulkheadFull: every slot is taken and the queue is full; ``fn`` is not called.
            ArgumentTypeError: ``fn`` is a coroutine object (pass the async function and
                its arguments instead) or is not callable.
        """
        candidate: object = fn  # checked at run time: callers may pass anything
        if isinstance(candidate, Coroutine):
            candidate.close()
            raise ArgumentTypeError(
                "Bulkhead.run() takes an async function and its arguments, not a coroutine "
                f"object: write run(fn, *args), not run(fn(*args)) (got {candidate!r})"
            )
        if not callable(candidate):
            raise ArgumentTypeError(
                f"Bulkhead.run() takes an async function, not {type(fn).__name__} ({fn!r})"
            )
        async with self:
            return await fn(*args)

    def statistics(self) -> BulkheadStatistics:
        """A snapshot: the limits, calls running and queued, peak running, rejections."""
        limiter = self._limiter
        return BulkheadStatistics(
            max_concurrent=limiter.total,
            max_queued=self._max_queued,
            running=limiter.borrowed,
            queued=limiter.waiting,
            peak_running=limiter.statistics().peak_borrowed,
            rejected=self._rejected,
        )

    def __repr__(self) -> str:
        limiter = self._limiter
        return (
            f"<Bulkhead {limiter.borrowed}/{limiter.total} running, "
            f"{limiter.waiting}/{self._max_queued} queued>"
        )
