"""BlockingPortal: synchronous threads call async code through a loop in another thread.

A portal belongs to one running event loop. Any other thread hands it work
(``call``, ``start_task_soon``, ``wrap_async_context_manager``); the work runs as a task
on the portal's loop, in a copy of the calling thread's ``contextvars`` context, and the
outcome comes back through a ``concurrent.futures.Future``. :func:`start_blocking_portal`
gives a purely synchronous program a loop thread and a portal into it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar, TypeVarTuple, overload

from .._core._scope import current_task
from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, DeadlineExceeded, UsageError

__all__ = ("BlockingPortal", "BlockingPortalStatistics", "start_blocking_portal")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Ts = TypeVarTuple("Ts")

_running_loop = asyncio._get_running_loop

_NEW: Final = "new"
_OPEN: Final = "open"
_STOPPING: Final = "stopping"
_STOPPED: Final = "stopped"


@dataclasses.dataclass(frozen=True, slots=True)
class BlockingPortalStatistics:
    """A snapshot of a :class:`BlockingPortal`."""

    state: str
    running_tasks: int
    started_tasks: int


class BlockingPortal:
    """A door from synchronous threads into one running event loop.

    Open it inside the loop (``async with BlockingPortal() as portal:``) and hand it to
    other threads, or let :func:`start_blocking_portal` run a loop thread for you. Work
    sent through it runs as tasks of the portal's loop, each in a copy of the sending
    thread's ``contextvars`` context.

    Leaving the ``async with`` block stops the portal: no new work is accepted, and the
    block waits for the portal's tasks to finish (they are cancelled first if the block
    exits with an exception).

    Cancellation, both ways: cancelling the ``Future`` returned by
    :meth:`start_task_soon` cancels its task; a timeout or ``KeyboardInterrupt`` in a
    thread blocked in :meth:`call` cancels the task and waits for it to end; a task
    cancelled on the loop side (``stop(cancel_remaining=True)``) makes the waiting
    thread raise ``concurrent.futures.CancelledError``.

    Raises:
        UsageError: a method is called before the portal is open or after it stopped,
            or a blocking method is called from the portal's own loop thread.
    """

    __slots__ = ("_loop", "_started", "_state", "_stopped", "_tasks")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _NEW
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = 0
        self._stopped: asyncio.Event | None = None

    # -- the loop side ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != _NEW:
            raise UsageError("a BlockingPortal is opened once; create a new one")
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._state = _OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(cancel_remaining=exc is not None)

    async def stop(self, cancel_remaining: bool = False) -> None:
        """Stop accepting work and wait for the portal's tasks to finish.

        Args:
            cancel_remaining: cancel the running tasks first (their callers get
                ``concurrent.futures.CancelledError``).

        Cancellation: cancelling ``stop()`` stops the wait; the portal stays closed to
        new work and its tasks keep running.
        """
        if self._state == _NEW:
            raise UsageError("this BlockingPortal was never opened")
        if self._state == _OPEN:
            self._state = _STOPPING
        me = current_task()
        pending = [task for task in self._tasks if task is not me]
        if cancel_remaining:
            for task in pending:
                task.cancel("the blocking portal stopped")
        if pending:
            await asyncio.wait(pending)
        self._state = _STOPPED
        assert self._stopped is not None
        self._stopped.set()

    async def sleep_until_stopped(self) -> None:
        """Wait until :meth:`stop` has finished (from the loop or through the portal).

        Cancellation: cancelling the wait has no effect on the portal.
        """
        if self._stopped is None:
            raise UsageError("this BlockingPortal was never opened")
        await self._stopped.wait()

    # -- the thread side -----------------------------------------------------------------

    @overload
    def start_task_soon(
        self, fn: Callable[[*Ts], Awaitable[T]], *args: *Ts, name: str | None = None
    ) -> concurrent.futures.Future[T]: ...

    @overload
    def start_task_soon(
        self, fn: Callable[[*Ts], T], *args: *Ts, name: str | None = None
    ) -> concurrent.futures.Future[T]: ...

    def start_task_soon(  # type: ignore[misc]  # mypy cannot match *Ts overloads
        self, fn: Callable[..., Any], *args: Any, name: str | None = None
    ) -> concurrent.futures.Future[Any]:
        """Start ``fn(*args)`` as a task on the portal's loop; return its future at once.

        ``fn`` is usually an async function; a plain function is called on the loop
        thread and its result used as is. Callable from any thread, including the loop's.

        Cancellation: ``future.cancel()`` cancels the task (the future reports
        cancelled at once; the task finishes its cleanup on the loop). If the task is
        cancelled on the loop side, the future is cancelled.

        Raises:
            UsageError: the portal is not open, or its loop is closed.
        """
        return self._start(fn, args, name, None)

    @overload
    def call(
        self, fn: Callable[[*Ts], Awaitable[T]], *args: *Ts, timeout: Seconds | None = None
    ) -> T: ...

    @overload
    def call(self, fn: Callable[[*Ts], T], *args: *Ts, timeout: Seconds | None = None) -> T: ...

    def call(  # type: ignore[misc]  # mypy cannot match *Ts overloads
        self, fn: Callable[..., Any], *args: Any, timeout: Seconds | None = None
    ) -> Any:
        """Run ``fn(*args)`` on the portal's loop and block this thread until it is done.

        Args:
            fn: an async function (or a plain one, called on the loop thread).
            *args: its positional arguments.
            timeout: real seconds to wait at most (``timedelta`` accepted).

        Returns:
            What ``fn`` returned.

        Cancellation: if ``timeout`` passes or a ``KeyboardInterrupt`` interrupts the
        wait, the task is cancelled and this call waits for it to finish before raising.

        Raises:
            DeadlineExceeded: ``timeout`` passed first (the task was cancelled).
            concurrent.futures.CancelledError: the task was cancelled on the loop side.
            InvalidArgumentError: ``timeout`` is negative or NaN.
            UsageError: called from the portal's loop thread (it would deadlock), or the
                portal is not open.
            BaseException: whatever ``fn`` raised.
        """
        seconds = None if timeout is None else seconds_arg(timeout, "timeout")
        self._check_blocking("call")
        finished = threading.Event()
        future = self._start(fn, args, None, finished)
        try:
            return future.result(seconds)
        except TimeoutError:
            if not future.cancel():  # it is done after all (or raised TimeoutError itself)
                return future.result()
            finished.wait()
            raise DeadlineExceeded(
                f"portal call to {_name_of(fn)} did not finish within {seconds} seconds; "
                "it was cancelled"
            ) from None
        except BaseException:
            if future.cancel():  # interrupted while it ran: cancel, let it clean up
                finished.wait()
            raise

    def wrap_async_context_manager(
        self, cm: AbstractAsyncContextManager[T_co]
    ) -> _PortalContextManager[T_co]:
        """A synchronous context manager that enters and exits ``cm`` on the portal's loop.

        ``__aenter__`` and ``__aexit__`` run in one task, so a cancel scope or task group
        that ``cm`` opens stays valid in between. The exception leaving the ``with``
        block is passed to ``__aexit__``, which may suppress it.

        Cancellation: if the portal stops with ``cancel_remaining=True`` while the block
        runs, ``cm`` is exited by cancellation and ``__exit__`` raises
        ``concurrent.futures.CancelledError``.

        Raises:
            ArgumentTypeError: ``cm`` is not an async context manager.
        """
        if not (hasattr(cm, "__aenter__") and hasattr(cm, "__aexit__")):
            raise ArgumentTypeError(
                f"wrap_async_context_manager() needs an async context manager, "
                f"not {type(cm).__name__}"
            )
        return _PortalContextManager(self, cm)

    # -- internals -----------------------------------------------------------------------

    def _check_blocking(self, what: str) -> None:
        if self._loop is not None and _running_loop() is self._loop:
            raise UsageError(
                f"BlockingPortal.{what}() blocks its thread, and this is the portal's own "
                "loop thread: await the function directly instead"
            )

    def _start(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        name: str | None,
        finished: threading.Event | None,
    ) -> concurrent.futures.Future[Any]:
        if not callable(fn):
            raise ArgumentTypeError(f"the portal needs a callable, not {type(fn).__name__}")
        loop = self._loop
        if loop is None or self._state != _OPEN:
            raise UsageError(f"{self!r} does not accept work (open it first; it stops once)")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        context = contextvars.copy_context()
        try:
            loop.call_soon_threadsafe(self._spawn, fn, args, name, future, finished, context)
        except RuntimeError:
            raise UsageError(f"{self!r}: its event loop is closed") from None
        return future

    def _spawn(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        name: str | None,
        future: concurrent.futures.Future[Any],
        finished: threading.Event | None,
        context: contextvars.Context,
    ) -> None:
        if future.cancelled():
            if finished is not None:
                finished.set()
            return
        if self._state != _OPEN:
            if future.set_running_or_notify_cancel():
                future.set_exception(UsageError(f"{self!r} stopped before the work started"))
            if finished is not None:
                finished.set()
            return
        loop = self._loop
        assert loop is not None
        task = loop.create_task(self._run(fn, args, future, finished), name=name, context=context)
        self._started += 1
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        future.add_done_callback(lambda f: _cancel_task_of(f, loop, task))

    async def _run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        future: concurrent.futures.Future[Any],
        finished: threading.Event | None,
    ) -> None:
        outcome: tuple[bool, Any] | None = None  # (succeeded, value); None: cancelled
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            outcome = (True, result)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            outcome = (False, exc)
        finally:
            # Leave the running set before anyone hears the outcome, so a caller that
            # returns from call() never sees its own task still counted as running.
            self._tasks.discard(asyncio.current_task())
            if outcome is None:
                future.cancel()
            elif future.set_running_or_notify_cancel():
                if outcome[0]:
                    future.set_result(outcome[1])
                else:
                    future.set_exception(outcome[1])
            if finished is not None:
                finished.set()

    def statistics(self) -> BlockingPortalStatistics:
        """A snapshot: state, tasks running now, and tasks started in all."""
        return BlockingPortalStatistics(
            state=self._state, running_tasks=len(self._tasks), started_tasks=self._started
        )

    def __repr__(self) -> str:
        return f"<BlockingPortal {self._state}, {len(self._tasks)} tasks>"


def _cancel_task_of(
    future: concurrent.futures.Future[Any],
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Task[Any],
) -> None:
    if future.cancelled() and not task.done():
        with contextlib.suppress(RuntimeError):  # the loop closed: the task is gone too
            loop.call_soon_threadsafe(task.cancel, "the portal caller cancelled the call")


def _name_of(fn: object) -> str:
    return getattr(fn, "__qualname__", type(fn).__name__)


class _PortalContextManager(AbstractContextManager[T_co], Generic[T_co]):
    """Enters and exits an async context manager in one portal task."""

    def __init__(self, portal: BlockingPortal, cm: AbstractAsyncContextManager[T_co]) -> None:
        self._portal = portal
        self._cm = cm
        self._entered: concurrent.futures.Future[T_co] = concurrent.futures.Future()
        self._exit: asyncio.Future[tuple[Any, Any, Any]] | None = None
        self._host: concurrent.futures.Future[bool | None] | None = None

    async def _run(self) -> bool | None:
        loop = asyncio.get_running_loop()
        value = await self._cm.__aenter__()
        self._exit = loop.create_future()
        self._entered.set_result(value)
        exc_info = await self._exit
        return await self._cm.__aexit__(*exc_info)

    def __enter__(self) -> T_co:
        if self._host is not None:
            raise UsageError("this wrapped context manager was already entered")
        self._portal._check_blocking("wrap_async_context_manager")
        self._host = host = self._portal._start(self._run, (), None, None)
        concurrent.futures.wait([self._entered, host], return_when="FIRST_COMPLETED")
        if self._entered.done():
            return self._entered.result()
        host.result()  # raises what __aenter__ raised (or the cancellation)
        raise UsageError("the async context manager's task ended without entering it")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        host = self._host
        assert host is not None
        waiter = self._exit
        loop = self._portal._loop
        if waiter is not None and loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_set_if_pending, waiter, (exc_type, exc, tb))
        return bool(host.result())


def _set_if_pending(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


@contextlib.contextmanager
def start_blocking_portal(
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> Iterator[BlockingPortal]:
    """Run an event loop in a new thread and yield a :class:`BlockingPortal` into it.

    For synchronous programs that need to call async code::

        with corral.start_blocking_portal() as portal:
            page = portal.call(fetch, url)

    On leaving the block the portal stops: if the block raised, running portal tasks
    are cancelled, otherwise they are awaited; then the loop thread ends.

    Args:
        loop_factory: makes the loop (e.g. ``uvloop.new_event_loop``); asyncio's default
            loop when omitted.

    Cancellation: see :class:`BlockingPortal`.

    Raises:
        BaseException: whatever starting the loop raised.
    """
    started: concurrent.futures.Future[BlockingPortal] = concurrent.futures.Future()

    async def host() -> None:
        async with BlockingPortal() as portal:
            started.set_result(portal)
            await portal.sleep_until_stopped()

    def run() -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(host())
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            else:
                raise

    thread = threading.Thread(target=run, name="corral-portal", daemon=True)
    thread.start()
    portal = started.result()
    cancel_remaining = False
    try:
        yield portal
    except BaseException:
        cancel_remaining = True
        raise
    finally:
        portal.call(portal.stop, cancel_remaining)
        thread.join()
