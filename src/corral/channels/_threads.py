"""Blocking calls in worker threads, and the way back from those threads into their loop.

:func:`to_thread` hands a synchronous function to a worker thread and waits for it
without blocking the event loop. Worker threads come from a small process-wide cache:
an idle worker sleeps on its own lock and is handed the next job directly, so a call
costs one lock release to start and one ``call_soon_threadsafe`` to report back. Idle
workers exit after :data:`IDLE_TIMEOUT` seconds.

How many threads run at once is bounded by a :class:`ThreadLimiter` (FIFO, thread-safe,
shared by every loop of the process); :func:`default_thread_limiter` is the one used
when a call names none.

Inside a worker thread, :class:`from_thread` reaches back: the cancellation token of
the awaiting task, and ``run`` / ``run_sync`` to call into the loop that is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, TypeVar, TypeVarTuple

from .._core._faults import FAULTS
from .._core._hooks import INSTRUMENTS
from .._core._reason import CancelReason, CancelSource
from .._core._scope import CancelScope, current_effective_deadline, current_task, wait_protected
from .._core._token import CancelToken
from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError, WouldBlock

__all__ = (
    "IDLE_TIMEOUT",
    "ThreadLimiter",
    "ThreadLimiterStatistics",
    "default_thread_limiter",
    "from_thread",
    "to_thread",
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_running_loop = asyncio._get_running_loop

#: Seconds an idle worker thread waits for a new job before it exits.
IDLE_TIMEOUT: Final = 10.0

#: Threads the default limiter lets run at once.
DEFAULT_THREAD_TOKENS: Final = 40


# -- the thread limiter -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ThreadLimiterStatistics:
    """A snapshot of a :class:`ThreadLimiter`."""

    total_tokens: int
    borrowed: int
    waiting: int
    peak_borrowed: int


class _LimiterWaiter:
    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.granted = False


class ThreadLimiter:
    """Bounds how many worker threads run at once; waiting callers are served FIFO.

    A limiter is thread-safe and may be shared by tasks on several event loops (the
    default one is shared by the whole process). A released token is handed directly to
    the longest-waiting caller, so newcomers never overtake the queue.

    Args:
        total_tokens: how many borrowers may hold a token at once (``>= 1``).

    Raises:
        ArgumentTypeError: ``total_tokens`` is not an ``int``.
        InvalidArgumentError: ``total_tokens`` is smaller than 1.
    """

    __slots__ = ("_borrowed", "_lock", "_peak", "_total", "_waiters")

    def __init__(self, total_tokens: int) -> None:
        self._total = _tokens_arg(total_tokens)
        self._borrowed = 0
        self._peak = 0
        self._lock = threading.Lock()
        self._waiters: deque[_LimiterWaiter] = deque()

    @property
    def total_tokens(self) -> int:
        """How many tokens the limiter lends at most.

        Settable from any thread: raising it serves waiting callers at once; lowering
        it lets current borrowers finish and lends no more until they are below it.
        """
        return self._total

    @total_tokens.setter
    def total_tokens(self, value: int) -> None:
        total = _tokens_arg(value)
        granted: list[_LimiterWaiter] = []
        with self._lock:
            self._total = total
            while self._waiters and self._borrowed < total:
                waiter = self._waiters.popleft()
                waiter.granted = True
                self._borrow()
                granted.append(waiter)
        for waiter in granted:
            self._wake(waiter)

    @property
    def borrowed(self) -> int:
        """How many tokens are lent out right now."""
        return self._borrowed

    def _borrow(self) -> None:
        self._borrowed = borrowed = self._borrowed + 1
        if borrowed > self._peak:
            self._peak = borrowed

    def _try_acquire(self) -> bool:
        with self._lock:
            if self._borrowed < self._total and not self._waiters:
                self._borrow()
                return True
            return False

    def acquire_nowait(self) -> None:
        """Borrow a token without waiting.

        Raises:
            WouldBlock: every token is lent out, or other callers are already waiting.
        """
        if not self._try_acquire():
            raise WouldBlock(f"{self!r} has no token to lend right now")

    async def acquire(self) -> None:
        """Borrow a token, waiting in line (FIFO) while none is free.

        Cancellation: a cancelled wait leaves the line; if a token was handed over at
        that moment it is passed on to the next caller, so no token is ever lost.
        """
        if self._try_acquire():
            return
        waiter = _LimiterWaiter(asyncio.get_running_loop())
        with self._lock:
            if self._borrowed < self._total and not self._waiters:
                self._borrow()
                return
            self._waiters.append(waiter)
        task = current_task()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(task, self)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                if not waiter.granted:
                    self._waiters.remove(waiter)
                    raise
            self.release()
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(task, self)

    def release(self) -> None:
        """Give a token back; the longest-waiting caller gets it. Callable from any thread.

        Raises:
            UsageError: no token is lent out.
        """
        with self._lock:
            if self._borrowed == 0:
                raise UsageError(f"{self!r}: release() without a matching acquire()")
            if not self._waiters or self._borrowed > self._total:
                self._borrowed -= 1
                return
            waiter = self._waiters.popleft()
            waiter.granted = True
        self._wake(waiter)

    def _wake(self, waiter: _LimiterWaiter) -> None:
        loop = waiter.loop
        if _running_loop() is loop:
            if not waiter.future.done():
                waiter.future.set_result(None)
            return
        try:
            loop.call_soon_threadsafe(_set_if_pending, waiter.future)
        except RuntimeError:  # that loop is closed: its task will never take the token
            self.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def statistics(self) -> ThreadLimiterStatistics:
        """A snapshot: total tokens, tokens lent, callers waiting, and the most ever lent."""
        with self._lock:
            return ThreadLimiterStatistics(
                total_tokens=self._total,
                borrowed=self._borrowed,
                waiting=len(self._waiters),
                peak_borrowed=self._peak,
            )

    def __repr__(self) -> str:
        return (
            f"<ThreadLimiter {self._borrowed}/{self._total} borrowed, {len(self._waiters)} waiting>"
        )


def _tokens_arg(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(
            f"total_tokens must be an int, not {type(value).__name__} ({value!r})"
        )
    if value < 1:
        raise InvalidArgumentError(f"total_tokens must be at least 1, got {value!r}")
    return value


def _set_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_DEFAULT_LIMITER: Final = ThreadLimiter(DEFAULT_THREAD_TOKENS)


def default_thread_limiter() -> ThreadLimiter:
    """The limiter :func:`to_thread` uses when given none: 40 tokens, process-wide.

    Adjust it in place: ``corral.default_thread_limiter().total_tokens = 100``.
    """
    return _DEFAULT_LIMITER


# -- the worker thread cache ---------------------------------------------------------


class _Worker:
    """One cached thread: it sleeps on ``_wake`` until it is handed a job."""

    __slots__ = ("_job", "_wake")

    def __init__(self, job: Callable[[], None]) -> None:
        self._job: Callable[[], None] | None = job
        self._wake = threading.Lock()

    def hand(self, job: Callable[[], None]) -> None:
        self._job = job
        self._wake.release()

    def serve(self) -> None:
        wake = self._wake
        wake.acquire()
        while True:
            job = self._job
            self._job = None
            assert job is not None
            job()  # never raises: jobs report their own outcome
            del job
            with _POOL_LOCK:
                _IDLE.append(self)
            if not wake.acquire(timeout=IDLE_TIMEOUT):
                with _POOL_LOCK:
                    if self in _IDLE:
                        _IDLE.remove(self)
                        return
                # a job was handed over just as the wait timed out: it is on its way
                wake.acquire()


_POOL_LOCK: Final = threading.Lock()
_IDLE: Final[list[_Worker]] = []


def _start_job(job: Callable[[], None]) -> None:
    with _POOL_LOCK:
        worker = _IDLE.pop() if _IDLE else None
    if worker is not None:
        worker.hand(job)
        return
    worker = _Worker(job)
    threading.Thread(target=worker.serve, name="corral-worker", daemon=True).start()


# -- to_thread ------------------------------------------------------------------------


class _Local(threading.local):
    call: _ThreadCall | None = None


_LOCAL: Final = _Local()


class _ThreadCall:
    """One :func:`to_thread` call: what runs in the worker and how its outcome returns."""

    __slots__ = (
        "args",
        "context",
        "error",
        "finished",
        "fn",
        "limiter",
        "loop",
        "result",
        "token",
        "waiter",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        limiter: ThreadLimiter,
        token: CancelToken,
    ) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.limiter = limiter
        self.token = token
        self.context = contextvars.copy_context()
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False  # set on the loop thread once the outcome is in
        self.waiter: asyncio.Future[None] = loop.create_future()

    def run(self) -> None:
        """The job, in the worker thread."""
        _LOCAL.call = self
        try:
            self.result = self.context.run(self.fn, *self.args)
        except BaseException as exc:
            self.error = exc
        finally:
            _LOCAL.call = None
        self.limiter.release()
        with contextlib.suppress(RuntimeError):  # abandoned, and its loop closed since
            self.loop.call_soon_threadsafe(self.finish)

    def finish(self) -> None:
        """The outcome is in (on the loop thread)."""
        self.finished = True
        waiter = self.waiter
        if not waiter.done():
            waiter.set_result(None)

    def cancel(self, exc: asyncio.CancelledError) -> None:
        """Deliver the awaiting task's cancellation to the thread's token."""
        why = CancelReason.of(exc)
        if why is None:
            reason = str(exc.args[0]) if exc.args and exc.args[0] is not None else None
            why = CancelReason(CancelSource.EXPLICIT, reason, self.token)
        self.token.cancel(why.reason, source=why.source)

    async def wait_finished(self) -> None:
        """Wait until the thread is done, whatever cancellation arrives meanwhile."""
        loop = self.loop
        while not self.finished:
            self.waiter = loop.create_future()
            try:
                await wait_protected(self.waiter)
            except asyncio.CancelledError:
                continue

    def outcome(self) -> Any:
        error = self.error
        if error is None:
            return self.result
        self.error = None
        try:
            raise error
        finally:
            del error


async def to_thread(
    fn: Callable[[*Ts], T],
    *args: *Ts,
    limiter: ThreadLimiter | None = None,
    abandon_on_cancel: bool = False,
) -> T:
    """Run the blocking function ``fn(*args)`` in a worker thread and return its result.

    The event loop keeps running other tasks meanwhile. ``fn`` runs in a copy of the
    caller's ``contextvars`` context. In the worker thread, :class:`from_thread` gives
    access to the caller: ``from_thread.current_token()`` is a :class:`CancelToken`
    whose ``deadline`` is the caller's :func:`current_effective_deadline`,
    ``from_thread.check_cancelled()`` raises once the caller was cancelled, and
    ``from_thread.run`` / ``run_sync`` call back into the caller's loop.

    Cancellation: cancelling the awaiting task cancels the thread's token (a thread
    cannot be interrupted; ``fn`` stops early only if it checks the token). By default
    the caller then waits, shielded, until ``fn`` returns, and raises
    ``CancelledError`` (``fn``'s result or error is discarded). With
    ``abandon_on_cancel=True`` the caller raises ``CancelledError`` at once and the
    thread finishes on its own; its limiter token is returned when it does.

    Args:
        fn: a synchronous callable.
        *args: its positional arguments (use ``functools.partial`` for keywords).
        limiter: bounds concurrent threads; :func:`default_thread_limiter` by default.
            Waiting for a token is FIFO and cancellable.
        abandon_on_cancel: on cancellation, return at once instead of waiting for ``fn``.

    Returns:
        What ``fn(*args)`` returned.

    Raises:
        ArgumentTypeError: ``fn`` is not callable, is a coroutine function or a coroutine
            object (await it instead), or ``limiter`` is not a :class:`ThreadLimiter`.
        UsageError: called outside a running asyncio task.
        BaseException: whatever ``fn`` raised, unchanged.
    """
    if not callable(fn) or inspect.iscoroutinefunction(fn):
        raise _not_sync(fn)
    if limiter is None:
        limiter = _DEFAULT_LIMITER
    elif not isinstance(limiter, ThreadLimiter):
        raise ArgumentTypeError(
            f"limiter must be a ThreadLimiter, not {type(limiter).__name__} ({limiter!r})"
        )
    deadline = current_effective_deadline()
    loop = asyncio.get_running_loop()
    if FAULTS.active:
        await FAULTS.hit("to_thread", fn)
    if deadline == -math.inf:
        await asyncio.sleep(0)  # already cancelled: let the scope deliver it here
    if not limiter._try_acquire():
        await limiter.acquire()
    token = CancelToken(deadline=deadline) if deadline != math.inf else CancelToken()
    call = _ThreadCall(fn, args, loop, limiter, token)
    hold_clock = getattr(loop, "hold_clock", None)  # corral's virtual-clock loop
    with hold_clock() if hold_clock is not None else contextlib.nullcontext():
        _start_job(call.run)
        task = current_task()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(task, call.token)
        try:
            await call.waiter
        except asyncio.CancelledError as exc:
            call.cancel(exc)
            if not abandon_on_cancel:
                await call.wait_finished()
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(task, call.token)
    return call.outcome()  # type: ignore[no-any-return]


def _not_sync(fn: object) -> ArgumentTypeError:
    if isinstance(fn, Coroutine):
        fn.close()
        return ArgumentTypeError(
            "to_thread() runs a synchronous function, but got a coroutine object; "
            "await it directly instead of passing it to a thread"
        )
    name = getattr(fn, "__name__", type(fn).__name__)
    if callable(fn):
        return ArgumentTypeError(
            f"to_thread() runs a synchronous function, but {name} is a coroutine "
            f"function; await {name}(...) directly instead of passing it to a thread"
        )
    return ArgumentTypeError(f"to_thread() needs a callable, not {name} ({fn!r})")


# -- from_thread ------------------------------------------------------------------------


class _LoopCall:
    """A call from a worker thread into the loop, and the lock the thread blocks on."""

    __slots__ = ("done", "error", "result", "task")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    def outcome(self) -> Any:
        error = self.error
        if error is None:
            return self.result
        self.error = None
        try:
            raise error
        finally:
            del error


def _current_call(what: str) -> _ThreadCall:
    call = _LOCAL.call
    if call is None:
        raise UsageError(
            f"from_thread.{what}() works only in a thread started by corral.to_thread(); "
            "from any other thread, call into a loop through a corral.BlockingPortal"
        )
    return call


def _post(call: _ThreadCall, callback: Callable[..., object], *args: Any) -> None:
    try:
        call.loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        raise UsageError(
            "the event loop that started this worker thread is closed; nothing can be "
            "run in it any more"
        ) from None


async def _run_async(
    bridge: _LoopCall,
    token: CancelToken,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
) -> None:
    try:
        with CancelScope(token=token) as scope:
            bridge.result = await _awaitable_of(fn, args)
        if scope.cancelled_caught:
            bridge.error = asyncio.CancelledError(token.reason)
    except BaseException as exc:
        bridge.error = exc
    finally:
        bridge.done.release()


def _awaitable_of(fn: Callable[..., object], args: tuple[Any, ...]) -> Awaitable[Any]:
    awaitable = fn(*args)
    if not inspect.isawaitable(awaitable):
        name = getattr(fn, "__qualname__", type(fn).__name__)
        raise ArgumentTypeError(
            f"from_thread.run() needs an async function; {name}(...) returned "
            f"{type(awaitable).__name__}. Use from_thread.run_sync() for a plain function"
        )
    return awaitable


def _start_async(
    loop: asyncio.AbstractEventLoop,
    bridge: _LoopCall,
    token: CancelToken,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    context: contextvars.Context,
) -> None:
    bridge.task = loop.create_task(_run_async(bridge, token, fn, args), context=context)


def _run_sync_in_loop(
    bridge: _LoopCall, fn: Callable[..., Any], args: tuple[Any, ...], context: contextvars.Context
) -> None:
    try:
        bridge.result = _plain_result(context.run(fn, *args))
    except BaseException as exc:
        bridge.error = exc
    finally:
        bridge.done.release()


def _plain_result(result: object) -> object:
    if isinstance(result, Coroutine):
        result.close()
        raise ArgumentTypeError(
            "from_thread.run_sync() runs a plain function, but it returned a "
            "coroutine; use from_thread.run() for async functions"
        )
    return result


class from_thread:
    """Calls for code running in a worker thread started by :func:`to_thread`.

    Each of them needs to run in such a thread (the loop and token are taken from it)
    and raises :class:`~corral.errors.UsageError` anywhere else; to call into a loop
    from an arbitrary thread, use a :class:`~corral.BlockingPortal`.
    """

    __slots__ = ()

    def __init__(self) -> None:
        raise UsageError("from_thread is a namespace: call from_thread.run(...) and friends")

    @staticmethod
    def run(fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
        """Run ``await fn(*args)`` in the loop that started this worker thread; block for it.

        The coroutine runs in a new task on that loop, in a copy of this thread's
        ``contextvars`` context, inside a cancel scope bound to this thread's token.

        Cancellation: if the task awaiting :func:`to_thread` is cancelled (now or
        while this call runs), the coroutine is cancelled and this call raises
        ``asyncio.CancelledError`` in the thread.

        Raises:
            UsageError: not in a :func:`to_thread` worker thread, or its loop is closed.
            ArgumentTypeError: ``fn(*args)`` did not return an awaitable.
            asyncio.CancelledError: the awaiting task was cancelled.
            BaseException: whatever ``fn`` raised.
        """
        call = _current_call("run")
        call.token.raise_if_cancelled()
        bridge = _LoopCall()
        context = contextvars.copy_context()
        _post(call, _start_async, call.loop, bridge, call.token, fn, args, context)
        bridge.done.acquire()
        return bridge.outcome()  # type: ignore[no-any-return]

    @staticmethod
    def run_sync(fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Call ``fn(*args)`` on the thread of the loop that started this worker; block for it.

        ``fn`` runs between two steps of the loop, in a copy of this thread's
        ``contextvars`` context; it must not block.

        Cancellation: this call is not a cancellation point (``fn`` runs even if the
        awaiting task was cancelled); use :meth:`check_cancelled` around it.

        Raises:
            UsageError: not in a :func:`to_thread` worker thread, or its loop is closed.
            ArgumentTypeError: ``fn`` returned a coroutine (use :meth:`run`).
            BaseException: whatever ``fn`` raised.
        """
        call = _current_call("run_sync")
        bridge = _LoopCall()
        _post(call, _run_sync_in_loop, bridge, fn, args, contextvars.copy_context())
        bridge.done.acquire()
        return bridge.outcome()  # type: ignore[no-any-return]

    @staticmethod
    def check_cancelled() -> None:
        """Raise ``asyncio.CancelledError`` if the task awaiting this thread was cancelled.

        Call it at safe points of long-running work to stop early.

        Raises:
            asyncio.CancelledError: the awaiting task was cancelled; the message is a
                :class:`~corral.CancelReason`.
            UsageError: not in a :func:`to_thread` worker thread.
        """
        _current_call("check_cancelled").token.raise_if_cancelled()

    @staticmethod
    def current_token() -> CancelToken:
        """The :class:`CancelToken` of this worker thread's call.

        It is cancelled when the awaiting task is cancelled; its ``deadline`` is the
        awaiting task's effective deadline in loop time (``inf`` when there is none).

        Raises:
            UsageError: not in a :func:`to_thread` worker thread.
        """
        return _current_call("current_token").token
