"""WaitGroup: wait until a count of outstanding pieces of work drops to zero."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

from .._core._hooks import INSTRUMENTS
from ..errors import ArgumentTypeError, UsageError

__all__ = ("WaitGroup", "WaitGroupStatistics")


@dataclasses.dataclass(frozen=True, slots=True)
class WaitGroupStatistics:
    """A snapshot of a :class:`WaitGroup`."""

    pending: int
    waiters: int


class WaitGroup:
    """A counter of outstanding work that tasks can wait on, as Go's ``sync.WaitGroup``.

    ``add(n)`` before starting work, ``done()`` when a piece finishes, ``await wait()``
    until the count is zero. Where the work is tasks, prefer a :class:`corral.TaskGroup`
    (it also collects errors and cancels); a WaitGroup fits work that is not a task of
    yours: callbacks, worker threads, requests served elsewhere.

    Thread-safe: ``add`` and ``done`` may be called from any thread, and ``wait`` from any
    event loop; waiters on other loops are woken with ``call_soon_threadsafe``.
    """

    __slots__ = ("_count", "_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def add(self, n: int = 1) -> None:
        """Add ``n`` (may be negative) to the count of outstanding work.

        Raises:
            ArgumentTypeError: ``n`` is not an int.
            UsageError: the count would drop below zero.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise ArgumentTypeError(f"WaitGroup.add() takes an int, not {type(n).__name__}")
        with self._lock:
            count = self._count + n
            if count < 0:
                raise UsageError(
                    f"WaitGroup count would go negative ({self._count} {n:+d}): "
                    "done() was called more times than add()"
                )
            self._count = count
            waiters = self._take_waiters() if count == 0 else ()
        _wake(waiters)

    def done(self) -> None:
        """One piece of work finished: ``add(-1)``.

        Raises:
            UsageError: called more times than work was added.
        """
        self.add(-1)

    def _take_waiters(self) -> list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]:
        waiters, self._waiters = self._waiters, []
        return waiters

    async def wait(self) -> None:
        """Wait until the count is zero (returns at once if it already is).

        Cancellation: cancelling the waiting task ends only its wait.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._count == 0:
                return
            fut: asyncio.Future[None] = loop.create_future()
            entry = (loop, fut)
            self._waiters.append(entry)
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(asyncio.current_task(), self)
        try:
            await fut
        finally:
            if not fut.done() or fut.cancelled():
                with self._lock:
                    if entry in self._waiters:
                        self._waiters.remove(entry)
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(asyncio.current_task(), self)

    @property
    def pending(self) -> int:
        """The current count of outstanding work."""
        return self._count

    def statistics(self) -> WaitGroupStatistics:
        """A snapshot: outstanding work and waiting tasks."""
        with self._lock:
            return WaitGroupStatistics(pending=self._count, waiters=len(self._waiters))

    def __repr__(self) -> str:
        stats = self.statistics()
        return f"<WaitGroup {stats.pending} pending, {stats.waiters} waiting>"


def _wake(waiters: object) -> None:
    here = asyncio._get_running_loop()
    for loop, fut in waiters:  # type: ignore[attr-defined]
        if loop is here:
            if not fut.done():
                fut.set_result(None)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(_set_if_pending, fut)


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
