"""The virtual-clock event loop: a selector loop whose waits for timers take no time."""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

from ..errors import ArgumentTypeError
from ._clock import VirtualClock

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ("VirtualClockLoop",)

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

_Events = list[tuple[selectors.SelectorKey, int]]


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio selector event loop that keeps time with a :class:`VirtualClock`.

    ``loop.time()`` is the clock's time, so every timer, ``asyncio.sleep``,
    ``asyncio.timeout`` and corral deadline runs on virtual time. Whenever the loop
    would wait for its next timer, it first checks for real I/O without blocking; if
    none is ready it wakes :func:`wait_all_tasks_blocked` callers, and if there are
    none, jumps the clock straight to the timer (with ``autojump``) instead of
    sleeping. Real sockets, pipes, signals and ``call_soon_threadsafe`` keep working:
    with nothing scheduled the loop blocks on real I/O as usual.

    Work handed to an executor (``run_in_executor``, ``asyncio.to_thread``,
    ``getaddrinfo``) holds the clock: while any of it is outstanding the loop waits on
    real I/O for up to the timer's delay in real time before it moves the clock, so a
    thread that finishes quickly never sees a deadline fire early. Other real waits do
    not hold the clock; use ``autojump_threshold`` for tests that talk to real servers.

    Args:
        clock: The clock to read time from; a fresh autojumping :class:`VirtualClock`
            when omitted. A clock drives one open loop at a time.

    Raises:
        ArgumentTypeError: ``clock`` is not a :class:`VirtualClock`.
        UsageError: ``clock`` already drives another loop that is still open.
    """

    def __init__(self, clock: VirtualClock | None = None) -> None:
        if clock is None:
            clock = VirtualClock()
        self._clock = clock
        self._executor_jobs = 0
        self._idle: asyncio.Event | None = None
        super().__init__(_VirtualSelector(selectors.DefaultSelector(), self))
        # Checked once the loop is whole, so a refused loop can be closed cleanly.
        try:
            _check_clock(clock)
            clock._attach(self._wake_for_clock)
        except BaseException:
            super().close()
            raise

    @property
    def clock(self) -> VirtualClock:
        """The :class:`VirtualClock` this loop reads its time from."""
        return self._clock

    def time(self) -> float:
        """The clock's virtual time, in seconds."""
        return self._clock.time()

    def close(self) -> None:
        """Close the loop (see :meth:`asyncio.AbstractEventLoop.close`) and free its clock.

        Raises:
            RuntimeError: the loop is running.
        """
        super().close()
        self._clock._detach(self._wake_for_clock)

    def run_in_executor(
        self,
        executor: Executor | None,
        func: Callable[[Unpack[_Ts]], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """Run ``func(*args)`` in ``executor``, holding the clock until it finishes.

        Same contract as :meth:`asyncio.loop.run_in_executor`. Cancelling the returned
        future releases the clock; the function itself keeps running in its thread.
        """
        future = super().run_in_executor(executor, func, *args)
        self._executor_jobs += 1
        future.add_done_callback(self._executor_job_done)
        return future

    if sys.version_info >= (3, 12):

        async def shutdown_default_executor(self, timeout: float | None = None) -> None:
            """Wait for the default executor's threads, holding the clock meanwhile.

            ``timeout`` is in real seconds, as the threads run on real time.
            """
            with self.hold_clock():
                await super().shutdown_default_executor(timeout)

    else:

        async def shutdown_default_executor(self) -> None:
            """Wait for the default executor's threads, holding the clock meanwhile."""
            with self.hold_clock():
                await super().shutdown_default_executor()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "closed" if self.is_closed() else "idle"
        return (
            f"<VirtualClockLoop {state}, {self._executor_jobs} executor jobs, "
            f"clock={self._clock!r}>"
        )

    # -- for wait_all_tasks_blocked ------------------------------------------------------

    async def _wait_all_tasks_blocked(self) -> None:
        if self._idle is None:
            self._idle = asyncio.Event()
        await self._idle.wait()

    # -- the selector's view of the loop -------------------------------------------------

    def _wake_idle_waiters(self) -> bool:
        """Wake every :func:`wait_all_tasks_blocked` caller; ``False`` if there were none."""
        idle = self._idle
        if idle is None:
            return False
        self._idle = None
        idle.set()
        return True

    @contextlib.contextmanager
    def hold_clock(self) -> Iterator[None]:
        """Keep virtual time from jumping while real work outside the loop is in flight.

        Inside the block the loop waits for real I/O (up to the next timer's delay)
        instead of jumping straight to the next timer, so a timeout around work done by
        a thread, a subprocess or a remote server does not fire early. Executor jobs
        (``run_in_executor``, ``corral.to_thread``) hold the clock on their own. Blocks
        may nest and overlap; the clock jumps again once every hold is released.
        """
        self._executor_jobs += 1
        try:
            yield
        finally:
            self._executor_jobs -= 1

    def _executor_job_done(self, future: asyncio.Future[Any]) -> None:
        self._executor_jobs -= 1

    def _wake_for_clock(self) -> None:
        # The clock moved or changed mode, maybe from another thread: make the loop
        # recompute how long to wait. A loop that closed meanwhile needs no wake-up.
        with contextlib.suppress(RuntimeError):
            self.call_soon_threadsafe(_nothing)


def _check_clock(clock: object) -> None:
    if not isinstance(clock, VirtualClock):
        raise ArgumentTypeError(
            f"clock must be a corral.testing.VirtualClock, not {type(clock).__name__} ({clock!r})"
        )


def _nothing() -> None:
    """A callback that only makes the loop run one more iteration."""


class _VirtualSelector(selectors.BaseSelector):
    """A selector that answers "wait ``timeout`` seconds" by moving the virtual clock.

    The loop asks ``select(timeout)`` with ``timeout`` = the delay to its next timer,
    ``0`` when callbacks are ready, ``None`` when nothing is scheduled.
    """

    def __init__(self, real: selectors.BaseSelector, loop: VirtualClockLoop) -> None:
        self._real = real
        self._loop = loop

    def select(self, timeout: float | None = None) -> _Events:
        real = self._real
        if timeout is not None and timeout <= 0:
            return real.select(0)
        events = real.select(0)
        if events:
            return events
        loop = self._loop
        if loop._wake_idle_waiters():
            return []
        clock = loop.clock
        if timeout is None or not clock.autojump:
            # Nothing to jump to, or time moves only by hand (clock.advance wakes us).
            return real.select(None)
        if loop._executor_jobs:
            events = real.select(timeout)
        elif clock.autojump_threshold:
            events = real.select(min(clock.autojump_threshold, timeout))
        if events:
            return events
        clock._jump(timeout)
        return []

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()
