"""``Promise``: JavaScript-style promises that are native asyncio awaitables.

How it works:

* A promise is a box with a state (pending, following, fulfilled, rejected), an outcome and
  its *reactions*: the promises that ``then``/``catch``/``finally_`` derived from it (and
  promises that adopted it), and the asyncio futures of tasks waiting in ``await``.
* A derived promise carries the reaction that will settle it (its *job*, see
  :mod:`._promise_jobs`): ``_runner`` and its arguments ``_source``, ``_arg1``, ``_arg2``.
  A promise waits for one thing at a time, so one job slot is enough; keeping the job in
  the promise rather than in a separate object halves what a long chain allocates, and the
  garbage collector's work with it.
* Settling publishes the outcome and routes every reaction in one critical section under
  a process-wide lock; registering takes the same lock. Jobs for the loop running in the
  settling thread are queued directly; jobs for a loop in another thread go straight into
  that loop's queue, so a reaction registered there once the promise has settled still
  runs after the ones registered before (registration order holds across threads).
* A waiting task owns one asyncio future. Settling sets it (``call_soon_threadsafe`` when
  its loop runs in another thread); cancelling the task cancels only that future.

The hot paths (``then``, settling, running a ``then`` job) are written out inline on
purpose: a function call costs as much as the rest of a step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import os
import reprlib
import threading
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    NamedTuple,
    ParamSpec,
    TypeVar,
    cast,
    final,
    overload,
)

from ..errors import ArgumentTypeError, UsageError
from ._hooks import INSTRUMENTS
from ._promise_jobs import (
    JobQueue,
    LoopJobs,
    TrampolineGuard,
    drain_trampoline,
    push_foreign,
    queue_for,
)
from ._promise_unhandled import RejectionWatch, set_unhandled_rejection_handler
from ._speedups import MODULE as _SPEEDUPS
from ._speedups import running_loop as _get_running_loop

__all__ = (
    "Promise",
    "PromiseState",
    "PromiseStatistics",
    "Resolvers",
    "set_unhandled_rejection_handler",
)

T = TypeVar("T")
U = TypeVar("U")
E = TypeVar("E", bound=BaseException)
P = ParamSpec("P")

#: Whether the compiled hot paths are in use (see :mod:`._speedups`); they are installed
#: at the end of this module.
ACCELERATED = _SPEEDUPS is not None
_CancelledError = asyncio.CancelledError

# Internal states; "settled" is ``state >= _FULFILLED``.
_PENDING = 0  # nobody has resolved it yet
_FOLLOWING = 1  # resolved with a promise, awaitable or thenable: waiting for its outcome
_FULFILLED = 2
_REJECTED = 3

# Stands for "the queue of the calling thread, not looked up yet".
_UNKNOWN: Any = object()

# Exact types that can never be awaitables or thenables: resolving with them is plain.
_PLAIN = frozenset(
    (int, float, complex, bool, str, bytes, bytearray, type(None), tuple, list, dict, set, range)
)

# One lock for every promise: registering and settling are short and never call user code
# while holding it. Reentrant, because a finalizer (the unhandled-rejection handler) may run
# code that touches promises while this thread holds it.
_LOCK = threading.RLock() if _SPEEDUPS is None else _SPEEDUPS.LOCK
_acquire = _LOCK.acquire
_release = _LOCK.release


class PromiseState(enum.Enum):
    """Where a promise is in its life. A promise settles at most once."""

    PENDING = "pending"
    FULFILLED = "fulfilled"
    REJECTED = "rejected"


# PromiseState by internal state.
_STATES = (
    PromiseState.PENDING,
    PromiseState.PENDING,
    PromiseState.FULFILLED,
    PromiseState.REJECTED,
)


@dataclass(frozen=True, slots=True)
class PromiseStatistics:
    """A snapshot of a promise, from :meth:`Promise.statistics`.

    Attributes:
        state: The promise's state.
        reactions: Reactions registered and not yet queued to run: ``then``/``catch``/
            ``finally_`` callbacks, and promises that follow this one.
        waiters: Tasks waiting in ``await`` (and pending futures from ``as_future()``).
    """

    state: PromiseState
    reactions: int
    waiters: int


class Resolvers(NamedTuple, Generic[T]):
    """What :meth:`Promise.with_resolvers` returns: the promise and its two settlers.

    Attributes:
        promise: The new pending promise.
        resolve: ``promise.resolve``.
        reject: ``promise.reject``.
    """

    promise: Promise[T]
    resolve: Callable[[T | Awaitable[T]], bool]
    reject: Callable[[BaseException], bool]


if TYPE_CHECKING or _SPEEDUPS is None:

    class _PromiseFields:
        """The fields of a promise, described in :meth:`Promise.__init__`.

        With the compiled hot paths, the compiled ``PromiseCore`` takes this class's place:
        the same fields in a C struct, and the compiled ``then``, ``_register`` and
        ``_complete``.
        """

        __slots__ = (
            "__weakref__",
            "_arg1",
            "_arg2",
            "_handled",
            "_loop",
            "_reactions",
            "_runner",
            "_source",
            "_state",
            "_tb",
            "_value",
        )

else:
    _PromiseFields = _SPEEDUPS.PromiseCore


@final
class Promise(_PromiseFields, Generic[T]):
    """A value that will be known later: pending, then fulfilled or rejected, once.

    Settle it with :meth:`resolve` / :meth:`reject` (from any thread), react to it with
    :meth:`then`, :meth:`catch` and :meth:`finally_` (which return new promises and follow
    the Promises/A+ 1.1 resolution procedure), or ``await`` it from any event loop::

        promise, resolve, reject = Promise.with_resolvers()
        loop.call_soon(resolve, 42)
        assert await promise == 42

    Reactions run as *microtasks*: never inside the ``then`` call that registers them, at
    most once, in registration order, on the loop that was running when they were
    registered; all of a loop's pending microtasks run in one loop callback. A reaction
    registered while no loop runs in the thread runs in the thread that settles the
    promise, on its loop if one runs there. Without any loop, reactions go to a per-thread
    trampoline that runs them just before the outermost promise call on the thread
    returns; so ``Promise.resolved(1).then(f)`` called outside a loop has run ``f`` by the
    time it returns.

    Cancellation: cancelling a task that awaits a promise cancels only that wait; the
    promise stays pending and other waiters still get its outcome. A promise itself cannot
    be cancelled; reject it instead.

    A rejected promise that nothing handled is reported when it is garbage collected; see
    :func:`set_unhandled_rejection_handler`.

    ``Promise`` is final: subclassing it raises :class:`~corral.errors.ArgumentTypeError`.
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        raise ArgumentTypeError(
            f"Promise cannot be subclassed (by {cls.__qualname__}); wrap one instead"
        )

    def __init__(self) -> None:
        """Create a pending promise; settle it with :meth:`resolve` or :meth:`reject`."""
        self._state = _PENDING
        self._value: Any = None
        self._tb: TracebackType | None = None
        # None, one reaction, or a list of them: each a promise whose job reacts to this
        # one, or a waiter's future.
        self._reactions: Any = None
        # Its loop: the one running where then() made it, or where it was awaited.
        self._loop: asyncio.AbstractEventLoop | None = None
        # True once its outcome was observed; a RejectionWatch while rejected unobserved.
        self._handled: bool | RejectionWatch = False
        # The job that will settle it, if any: _runner(self, queue) with its arguments.
        self._runner: Runner | None = None
        self._source: Any = None  # the promise the job reacts to
        self._arg1: Any = None
        self._arg2: Any = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def with_resolvers(cls) -> Resolvers[T]:
        """Create a pending promise together with its ``resolve`` and ``reject``.

        Returns:
            ``Resolvers(promise, resolve, reject)``, a named tuple.
        """
        promise: Promise[T] = cls()
        return Resolvers(promise, promise.resolve, promise.reject)

    @overload
    @classmethod
    def resolved(cls, value: Awaitable[U]) -> Promise[U]: ...

    @overload
    @classmethod
    def resolved(cls, value: U) -> Promise[U]: ...

    @classmethod
    def resolved(cls, value: Any) -> Promise[Any]:
        """A promise resolved with ``value`` (see :meth:`resolve`); a ``Promise`` is
        returned as it is.
        """
        if type(value) is cls:
            return cast("Promise[Any]", value)
        promise: Promise[Any] = cls()
        promise.resolve(value)
        return promise

    @classmethod
    def rejected(cls, error: BaseException) -> Promise[Any]:
        """A promise rejected with ``error``.

        Raises:
            ArgumentTypeError: ``error`` is not an exception instance.
        """
        promise: Promise[Any] = cls()
        promise.reject(error)
        return promise

    @overload
    @classmethod
    def try_(
        cls, fn: Callable[P, Awaitable[U]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Promise[U]: ...

    @overload
    @classmethod
    def try_(cls, fn: Callable[P, U], /, *args: P.args, **kwargs: P.kwargs) -> Promise[U]: ...

    @classmethod
    def try_(cls, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Promise[Any]:
        """Call ``fn(*args, **kwargs)`` now and return a promise of its outcome.

        An exception raised by ``fn`` rejects the promise (``KeyboardInterrupt`` and
        ``SystemExit`` propagate instead); an awaitable, promise or thenable it returns is
        followed, so async functions work: their coroutine runs as a task on the running
        loop.

        Raises:
            ArgumentTypeError: ``fn`` is not callable, or is a coroutine object (pass the
                function and its arguments, not the result of calling it; the coroutine is
                closed).
        """
        candidate: object = fn
        if asyncio.iscoroutine(candidate):
            name = getattr(candidate, "__name__", "fn")
            candidate.close()
            raise ArgumentTypeError(
                f"Promise.try_() takes a function, not a coroutine object ({name}() was "
                f"called already); pass the function and its arguments: "
                f"Promise.try_({name}, ...)"
            )
        if not callable(fn):
            raise ArgumentTypeError(_not_callable_message("fn", fn))
        promise: Promise[Any] = cls()
        no_loop = _get_running_loop() is None
        try:
            if no_loop:
                with TrampolineGuard():
                    result = fn(*args, **kwargs)
            else:
                result = fn(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            promise._complete(_REJECTED, exc, exc.__traceback__, _PENDING, _UNKNOWN)
        else:
            promise._resolve(result, _PENDING, _UNKNOWN)
        if no_loop:
            drain_trampoline()
        return promise

    @classmethod
    def from_future(cls, future: asyncio.Future[T] | concurrent.futures.Future[T]) -> Promise[T]:
        """A promise that settles like ``future`` (an asyncio or a concurrent future).

        A cancelled future rejects the promise with ``asyncio.CancelledError``. The promise
        takes over reporting the future's exception if nobody handles it.

        Cancellation: cancelling the future rejects the promise; nothing done to the
        promise cancels the future.

        Raises:
            ArgumentTypeError: ``future`` is neither an asyncio nor a concurrent future.
        """
        if not isinstance(future, concurrent.futures.Future) and not asyncio.isfuture(future):
            raise ArgumentTypeError(
                f"future must be an asyncio.Future or a concurrent.futures.Future, "
                f"not {type(future).__name__} ({future!r})"
            )
        promise: Promise[T] = cls()
        promise._state = _FOLLOWING
        if isinstance(future, concurrent.futures.Future):
            future.add_done_callback(promise._settle_like)
        else:
            _follow_future(promise, future)
        return promise

    # ---------------------------------------------------------------------- settling

    def resolve(self, value: T | Awaitable[T]) -> bool:
        """Resolve the promise with ``value``; callable from any thread.

        A plain value fulfills it. A :class:`Promise`, an awaitable (coroutine, future,
        task) or a thenable (an object with a callable ``then``) is followed: the promise
        stays pending and then settles like it. A coroutine runs as a task on the running
        loop, or on the promise's own loop when called from a thread without one.
        Resolving a promise with itself rejects it with
        :class:`~corral.errors.ArgumentTypeError` (a ``TypeError``).

        Cancellation: if what it follows is cancelled (a task, a future), the promise
        rejects with ``asyncio.CancelledError``.

        Returns:
            ``True`` if this call resolved the promise; ``False`` (doing nothing) if it
            was resolved or rejected before, including while it follows something.
        """
        if type(value) in _PLAIN:
            return self._complete(_FULFILLED, value, None, _PENDING, _UNKNOWN)
        return self._resolve(value, _PENDING, _UNKNOWN)

    def reject(self, error: BaseException) -> bool:
        """Reject the promise with ``error``; callable from any thread.

        Returns:
            ``True`` if this call rejected the promise; ``False`` (doing nothing) if it
            was resolved or rejected before.

        Raises:
            ArgumentTypeError: ``error`` is not an exception instance.
        """
        if not isinstance(error, BaseException):
            raise ArgumentTypeError(_not_exception_message(error))
        return self._complete(_REJECTED, error, error.__traceback__, _PENDING, _UNKNOWN)

    # --------------------------------------------------------------------- reacting

    @overload
    def then(self, on_fulfilled: None = None, on_rejected: None = None) -> Promise[T]: ...

    @overload
    def then(
        self, on_fulfilled: None, on_rejected: Callable[[BaseException], Awaitable[U]]
    ) -> Promise[T | U]: ...

    @overload
    def then(
        self, on_fulfilled: None, on_rejected: Callable[[BaseException], U]
    ) -> Promise[T | U]: ...

    @overload
    def then(
        self,
        on_fulfilled: Callable[[T], Awaitable[U]],
        on_rejected: Callable[[BaseException], Awaitable[U]] | None = None,
    ) -> Promise[U]: ...

    @overload
    def then(
        self,
        on_fulfilled: Callable[[T], U],
        on_rejected: Callable[[BaseException], U] | None = None,
    ) -> Promise[U]: ...

    def then(
        self,
        on_fulfilled: Callable[[Any], Any] | None = None,
        on_rejected: Callable[[BaseException], Any] | None = None,
    ) -> Promise[Any]:
        """React to the outcome; returns a new promise of the callback's result.

        ``on_fulfilled(value)`` runs if the promise fulfills, ``on_rejected(error)`` if it
        rejects; a missing callback passes the outcome through. Either may be a plain or
        an async function. What the callback returns resolves the new promise (promises,
        awaitables and thenables are followed); what it raises rejects it
        (``KeyboardInterrupt`` and ``SystemExit`` also propagate out of the loop).

        Callbacks never run inside this call, run at most once, and run in registration
        order on the loop running now (see the class docs for the rule without a loop).
        The returned promise settles from its callback only: calling its ``resolve`` or
        ``reject`` does nothing and returns ``False``.

        Cancellation: a registered callback cannot be withdrawn. An async callback runs as
        a task; if that task is cancelled, the returned promise rejects with
        ``asyncio.CancelledError``.

        Raises:
            ArgumentTypeError: a callback is neither callable nor ``None``.
        """
        if on_fulfilled is not None and not callable(on_fulfilled):
            raise ArgumentTypeError(_not_callable_message("on_fulfilled", on_fulfilled))
        if on_rejected is not None and not callable(on_rejected):
            raise ArgumentTypeError(_not_callable_message("on_rejected", on_rejected))
        loop = _get_running_loop()
        child = _derived(loop, _run_then, self, on_fulfilled, on_rejected)
        self._react(child, loop)
        return child

    @overload
    def catch(self, fn: Callable[[Exception], Awaitable[U]]) -> Promise[T | U]: ...

    @overload
    def catch(self, fn: Callable[[Exception], U]) -> Promise[T | U]: ...

    @overload
    def catch(
        self, fn: Callable[[E], Awaitable[U]], *, on: type[E] | tuple[type[E], ...]
    ) -> Promise[T | U]: ...

    @overload
    def catch(
        self, fn: Callable[[E], U], *, on: type[E] | tuple[type[E], ...]
    ) -> Promise[T | U]: ...

    def catch(
        self,
        fn: Callable[[Any], Any],
        *,
        on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    ) -> Promise[Any]:
        """Handle a rejection whose error is an instance of ``on``.

        Like ``then(None, fn)``, but only for errors matching ``on``: an exception class
        or a tuple of them, ``Exception`` by default (so ``asyncio.CancelledError`` and
        ``KeyboardInterrupt`` pass through unless named). A fulfillment, or a rejection
        that does not match, passes through to the returned promise unchanged.

        Cancellation: as for :meth:`then`.

        Raises:
            ArgumentTypeError: ``fn`` is not callable, or ``on`` is not an exception class
                or a non-empty tuple of them.
        """
        if not callable(fn):
            raise ArgumentTypeError(_not_callable_message("fn", fn))
        types = _exception_types(on)
        loop = _get_running_loop()
        child = _derived(loop, _run_catch, self, fn, types)
        self._react(child, loop)
        return child

    def finally_(self, fn: Callable[[], object]) -> Promise[T]:
        """Run ``fn()`` once the promise settles, whatever the outcome.

        The returned promise settles like this one once ``fn`` finished (an awaitable,
        promise or thenable that ``fn`` returns is waited for). If ``fn`` raises, or what
        it returned rejects, the returned promise rejects with that error instead. Like
        every derived promise, it cannot be resolved or rejected from outside.

        Cancellation: as for :meth:`then`.

        Raises:
            ArgumentTypeError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise ArgumentTypeError(_not_callable_message("fn", fn))
        loop = _get_running_loop()
        child: Promise[T] = _derived(loop, _run_finally, self, fn, None)
        self._react(child, loop)
        return child

    def __await__(self) -> Generator[Any, None, T]:
        """Wait for the outcome: return the value, or raise the error.

        Works from any event loop, whatever thread settles the promise.

        Cancellation: cancelling the waiting task cancels only this wait; the promise stays
        as it is.

        Raises:
            UsageError: no asyncio event loop runs in this thread.
        """
        if self._state >= _FULFILLED:
            return self._outcome()
        loop = _get_running_loop()
        if loop is None:
            raise UsageError("awaiting a Promise needs a running asyncio event loop")
        waiter = loop.create_future()
        if self._loop is None:
            self._loop = loop
        if not self._register(waiter):
            return self._outcome()
        if INSTRUMENTS.active:
            return (yield from self._wait_instrumented(waiter, loop))
        try:
            return (yield from waiter)  # type: ignore[no-any-return]
        except _CancelledError:
            self._discard(waiter)
            raise

    def _wait_instrumented(
        self, waiter: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ) -> Generator[Any, None, T]:
        task = asyncio.current_task(loop)
        INSTRUMENTS.task_parked(task, self)
        try:
            return (yield from waiter)  # type: ignore[no-any-return]
        except _CancelledError:
            self._discard(waiter)
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(task, self)

    def as_future(self) -> asyncio.Future[T]:
        """An asyncio future on the running loop that settles like this promise.

        Cancellation: cancelling the future leaves the promise as it is.

        Raises:
            UsageError: no asyncio event loop runs in this thread.
        """
        loop = _get_running_loop()
        if loop is None:
            raise UsageError("Promise.as_future() needs a running asyncio event loop")
        future: asyncio.Future[T] = loop.create_future()
        if self._register(future):
            future.add_done_callback(self._forget_if_cancelled)
        else:
            _wake(future, self._state, self._value, self._tb)
        return future

    # ------------------------------------------------------------------- inspection

    @property
    def state(self) -> PromiseState:
        """``PENDING``, ``FULFILLED`` or ``REJECTED`` (``PENDING`` while it follows)."""
        return _STATES[self._state]

    def done(self) -> bool:
        """Whether the promise is settled (fulfilled or rejected)."""
        return self._state >= _FULFILLED

    def result(self) -> T:
        """The value of a fulfilled promise; raises the error of a rejected one.

        Raising the error counts as handling the rejection.

        Raises:
            UsageError: the promise is still pending.
        """
        if self._state < _FULFILLED:
            raise UsageError(f"result() of a pending promise ({self!r}); await it instead")
        return self._outcome()

    def exception(self) -> BaseException | None:
        """The error of a rejected promise (counts as handling it); ``None`` if fulfilled.

        Raises:
            UsageError: the promise is still pending.
        """
        state = self._state
        if state < _FULFILLED:
            raise UsageError(f"exception() of a pending promise ({self!r}); await it instead")
        if state == _FULFILLED:
            return None
        self._mark_handled()
        return cast(BaseException, self._value)

    def statistics(self) -> PromiseStatistics:
        """A snapshot: state, reactions not yet queued, waiting tasks."""
        with _LOCK:
            state = self._state
            entries = self._reactions
            if entries is None:
                entries = []
            elif type(entries) is list:
                entries = list(entries)
            else:
                entries = [entries]
        reactions = sum(type(entry) is Promise for entry in entries)
        waiters = sum(type(entry) is not Promise and not entry.done() for entry in entries)
        return PromiseStatistics(_STATES[state], reactions, waiters)

    def __repr__(self) -> str:
        name = type(self).__name__
        state = self._state
        if state == _FULFILLED:
            return f"<{name} fulfilled {reprlib.repr(self._value)}>"
        if state == _REJECTED:
            return f"<{name} rejected {reprlib.repr(self._value)}>"
        stats = self.statistics()
        parts = ["pending" if state == _PENDING else "pending (following another)"]
        if stats.reactions:
            parts.append(_plural(stats.reactions, "reaction"))
        if stats.waiters:
            parts.append(_plural(stats.waiters, "waiter"))
        return f"<{name} {', '.join(parts)}>"

    # --------------------------------------------------------------------- internals

    def _outcome(self) -> T:
        if self._state == _FULFILLED:
            return cast(T, self._value)
        self._mark_handled()
        raise cast(BaseException, self._value).with_traceback(self._tb)

    def _mark_handled(self) -> None:
        with _LOCK:
            handled = self._handled
            self._handled = True
            if handled is not True and handled is not False:
                handled.disarm()

    def _react(self, job: Promise[Any], loop: asyncio.AbstractEventLoop | None) -> None:
        """Register ``job`` (a promise with its job set) to run once this one settles,
        or queue it now if it has settled.

        ``loop`` is the loop running in the calling thread (``None`` if none runs).
        """
        if not self._register(job):
            _queue_now(job, loop)

    def _register(self, entry: Promise[Any] | asyncio.Future[Any]) -> bool:
        """Mark the outcome handled and register ``entry`` (a job or a waiting future) if
        the promise is still pending; ``False`` if it has settled (nothing registered)."""
        _acquire()
        try:
            handled = self._handled
            if handled is not True:
                self._handled = True
                if handled is not False:
                    handled.disarm()
            if self._state >= _FULFILLED:
                return False
            reactions = self._reactions
            if reactions is None:
                self._reactions = entry
            elif type(reactions) is list:
                reactions.append(entry)
            else:
                self._reactions = [reactions, entry]
            return True
        finally:
            _release()

    def _discard(self, waiter: asyncio.Future[Any]) -> None:
        with _LOCK:
            reactions = self._reactions
            if reactions is waiter:
                self._reactions = None
            elif type(reactions) is list and waiter in reactions:
                reactions.remove(waiter)

    def _forget_if_cancelled(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self._discard(future)

    def _lock_in(self, expect: int) -> bool:
        """Move from state ``expect`` to following; ``False`` if the state is not ``expect``."""
        with _LOCK:
            if self._state != expect:
                return False
            self._state = _FOLLOWING
            return True

    def _complete(
        self, state: int, value: Any, tb: TracebackType | None, expect: int, queue: Any
    ) -> bool:
        """Settle if the state is ``expect``, routing every reaction; ``False`` if not.

        ``queue`` is the job queue being drained (the caller is a job), or ``_UNKNOWN``.
        """
        loop: Any = _UNKNOWN
        _acquire()
        try:
            if self._state != expect:
                return False
            self._value = value
            self._tb = tb
            if state == _REJECTED and self._handled is False:
                self._watch_rejection(value)
            # Publish before routing: a job that another thread's loop runs at once must
            # see the outcome. Registration takes this lock too, so a reaction registered
            # after this point is still queued after the ones routed below.
            self._state = state
            reactions = self._reactions
            if reactions is not None:
                self._reactions = None
                loop = _get_running_loop() if queue is _UNKNOWN else queue.loop
                if type(reactions) is Promise:
                    home = reactions._loop
                    if home is loop or home is None:
                        if queue is _UNKNOWN:
                            queue = queue_for(loop)
                        queue.jobs.append(reactions)
                        if not queue.scheduled:
                            cast(LoopJobs, queue).schedule(loop)
                    else:
                        _route(reactions, queue, loop)
                elif type(reactions) is list:
                    for reaction in reactions:
                        if type(reaction) is Promise:
                            queue = _route(reaction, queue, loop)
                        else:
                            _wake_waiter(reaction, state, value, tb, loop)
                elif state == _FULFILLED and reactions.get_loop() is loop:
                    if not reactions.done():  # else its task was cancelled
                        reactions.set_result(value)
                else:
                    _wake_waiter(reactions, state, value, tb, loop)
        finally:
            _release()
        if loop is None:
            drain_trampoline()
        return True

    def _watch_rejection(self, error: BaseException) -> None:
        if not isinstance(error, _CancelledError):
            loop = self._loop if self._loop is not None else _get_running_loop()
            self._handled = RejectionWatch(error, loop)

    def _resolve(self, value: Any, expect: int, queue: Any) -> bool:
        """The Promises/A+ resolution procedure, [[Resolve]](self, value) (clause 2.3)."""
        if type(value) in _PLAIN:
            return self._complete(_FULFILLED, value, None, expect, queue)
        if isinstance(value, Promise):
            if value is self:
                error = ArgumentTypeError(f"a promise cannot be resolved with itself ({self!r})")
                return self._complete(_REJECTED, error, None, expect, queue)
            if not self._lock_in(expect):
                return False
            self._runner = _run_follow
            self._source = value
            value._react(self, _running_loop(queue))
            return True
        if asyncio.isfuture(value):
            if not self._lock_in(expect):
                return False
            _follow_future(self, value)
            return True
        if asyncio.iscoroutine(value):
            if not self._lock_in(expect):
                value.close()
                return False
            _run_awaitable(self, value, _running_loop(queue))
            return True
        try:
            then = value.then
        except AttributeError:
            then = None
        except Exception as exc:  # 2.3.3.2: a `then` that cannot be read rejects
            return self._complete(_REJECTED, exc, exc.__traceback__, expect, queue)
        if callable(then):
            if not self._lock_in(expect):
                return False
            self._runner = _run_thenable
            self._arg1 = then
            _queue_now(self, _running_loop(queue))
            return True
        if hasattr(type(value), "__await__"):
            if not self._lock_in(expect):
                return False
            _run_awaitable(self, _await(value), _running_loop(queue))
            return True
        return self._complete(_FULFILLED, value, None, expect, queue)

    def _settle_like(self, future: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> None:
        """Done callback of a followed future or task: settle as it did."""
        error: BaseException | None
        try:
            error = future.exception()
        except _CancelledError as cancelled:
            error = cancelled
        except concurrent.futures.CancelledError as cancelled:
            error = _CancelledError("the concurrent future was cancelled")
            error.__cause__ = cancelled
        if error is None:
            self._complete(_FULFILLED, future.result(), None, _FOLLOWING, _UNKNOWN)
        else:
            self._complete(_REJECTED, error, error.__traceback__, _FOLLOWING, _UNKNOWN)


# ------------------------------------------------------------------------- routing


_new = _PromiseFields.__new__


def _derived(
    loop: asyncio.AbstractEventLoop | None,
    runner: Runner,
    source: Promise[Any],
    arg1: Any,
    arg2: Any,
) -> Promise[Any]:
    """A promise derived from ``source``, settled by the job ``runner(arg1, arg2)``.

    It is following from birth, so only its job settles it. Sets every slot, as
    ``Promise.__init__`` does, without calling it (a then chain is this hot).
    """
    child: Promise[Any] = _new(Promise)
    child._state = _FOLLOWING
    child._value = None
    child._tb = None
    child._reactions = None
    child._loop = loop
    child._handled = False
    child._runner = runner
    child._source = source
    child._arg1 = arg1
    child._arg2 = arg2
    return child


def _running_loop(queue: Any) -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread: the drained queue's, or looked up."""
    return _get_running_loop() if queue is _UNKNOWN else cast(JobQueue, queue).loop


def _queue_now(job: Promise[Any], loop: asyncio.AbstractEventLoop | None) -> None:
    """Queue ``job`` in the calling thread (its promise settled already) and run the
    trampoline if no loop runs here."""
    _route(job, _UNKNOWN, loop)
    if loop is None:
        drain_trampoline()


def _route(job: Promise[Any], queue: Any, loop: asyncio.AbstractEventLoop | None) -> JobQueue:
    """Queue the job of promise ``job`` where that promise's loop runs; ``loop`` is the
    one running here.

    Returns the local queue (looked up if ``queue`` was ``_UNKNOWN``).
    """
    home = job._loop
    if home is not None and home is not loop and push_foreign(job, home):
        return cast(JobQueue, queue)
    if queue is _UNKNOWN:
        queue = queue_for(loop)
    queue.jobs.append(job)
    if not queue.scheduled:
        cast(LoopJobs, queue).schedule(cast(asyncio.AbstractEventLoop, loop))
    return cast(JobQueue, queue)


def _wake_waiter(
    waiter: asyncio.Future[Any], state: int, value: Any, tb: TracebackType | None, loop: Any
) -> None:
    home = waiter.get_loop()
    if home is loop:
        _wake(waiter, state, value, tb)
        return
    with contextlib.suppress(RuntimeError):  # closed: nobody waits there any more
        home.call_soon_threadsafe(_wake, waiter, state, value, tb)


def _wake(waiter: asyncio.Future[Any], state: int, value: Any, tb: TracebackType | None) -> None:
    if waiter.done():  # the waiting task was cancelled
        return
    if state == _FULFILLED:
        waiter.set_result(value)
    elif isinstance(value, StopIteration):  # futures refuse it (PEP 479)
        error = RuntimeError("promise rejected with StopIteration")
        error.__cause__ = value
        waiter.set_exception(error)
    else:
        waiter.set_exception(value.with_traceback(tb))


def _follow_future(promise: Promise[Any], future: asyncio.Future[Any]) -> None:
    """Settle ``promise`` (already following) like the asyncio ``future``."""
    if future.done():
        promise._settle_like(future)
        return
    home = future.get_loop()
    if promise._loop is None:
        promise._loop = home
    if home is _get_running_loop():
        future.add_done_callback(promise._settle_like)
        return
    try:
        home.call_soon_threadsafe(future.add_done_callback, promise._settle_like)
    except RuntimeError:
        error = UsageError(f"cannot follow {future!r}: its event loop is closed")
        promise._complete(_REJECTED, error, None, _FOLLOWING, _UNKNOWN)


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _run_awaitable(
    promise: Promise[Any], coro: Any, loop: asyncio.AbstractEventLoop | None
) -> None:
    """Run ``coro`` as a task and settle ``promise`` (already following) like it.

    ``loop`` runs in this thread; without one, the promise's own loop runs the task.
    """
    if loop is not None:
        _start_task(promise, coro)
        return
    home = promise._loop
    if home is not None and not home.is_closed():
        home.call_soon_threadsafe(_start_task, promise, coro)
        return
    coro.close()
    error = UsageError(
        f"{promise!r} was resolved with an awaitable while no event loop runs; "
        "resolve it from a coroutine or a loop callback"
    )
    promise._complete(_REJECTED, error, None, _FOLLOWING, _UNKNOWN)


def _start_task(promise: Promise[Any], coro: Any) -> None:
    loop = asyncio.get_running_loop()
    if promise._loop is None:
        promise._loop = loop
    loop.create_task(coro).add_done_callback(promise._settle_like)


# ------------------------------------------------------------------------- job runners
#
# A runner settles the promise it is given from its job's arguments, which it clears first
# (a settled promise must not keep its source, and so the whole chain before it, alive).
# A derived promise is in the following state from birth, so its runner completes it with
# ``expect=_FOLLOWING``.

#: ``runner(promise, queue)``: run the job of ``promise`` from ``queue``.
Runner = Callable[[Promise[Any], JobQueue], None]


def _reject_with(child: Promise[Any], exc: BaseException, queue: JobQueue) -> None:
    """``child`` rejects with what a callback raised; interrupts propagate further."""
    child._complete(_REJECTED, exc, exc.__traceback__, _FOLLOWING, queue)
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        raise exc


def _run_then(child: Promise[Any], queue: JobQueue) -> None:
    source = child._source
    on_fulfilled = child._arg1
    on_rejected = child._arg2
    child._runner = child._source = child._arg1 = child._arg2 = None
    if source._state == _FULFILLED:
        callback = on_fulfilled
        if callback is None:
            child._complete(_FULFILLED, source._value, None, _FOLLOWING, queue)
            return
    else:
        callback = on_rejected
        if callback is None:
            child._complete(_REJECTED, source._value, source._tb, _FOLLOWING, queue)
            return
    try:
        result = callback(source._value)
    except BaseException as exc:
        _reject_with(child, exc, queue)
        return
    if type(result) in _PLAIN:
        child._complete(_FULFILLED, result, None, _FOLLOWING, queue)
    else:
        child._resolve(result, _FOLLOWING, queue)


def _run_catch(child: Promise[Any], queue: JobQueue) -> None:
    source = child._source
    callback = child._arg1
    types = child._arg2
    child._runner = child._source = child._arg1 = child._arg2 = None
    if source._state == _FULFILLED or not isinstance(source._value, types):
        child._complete(source._state, source._value, source._tb, _FOLLOWING, queue)
        return
    try:
        result = callback(source._value)
    except BaseException as exc:
        _reject_with(child, exc, queue)
        return
    child._resolve(result, _FOLLOWING, queue)


def _run_finally(child: Promise[Any], queue: JobQueue) -> None:
    source = child._source
    callback = child._arg1
    child._runner = child._source = child._arg1 = None
    try:
        result = callback()
    except BaseException as exc:
        _reject_with(child, exc, queue)
        return
    if type(result) in _PLAIN:
        child._complete(source._state, source._value, source._tb, _FOLLOWING, queue)
        return
    # Wait for what the callback returned (the gate) before passing the outcome on.
    gate: Promise[Any] = Promise()
    gate._loop = queue.loop
    gate._resolve(result, _PENDING, queue)
    child._runner = _run_after_gate
    child._source = source
    child._arg1 = gate
    gate._react(child, queue.loop)


def _run_after_gate(child: Promise[Any], queue: JobQueue) -> None:
    source = child._source
    gate = child._arg1
    child._runner = child._source = child._arg1 = None
    outcome = gate if gate._state == _REJECTED else source
    child._complete(outcome._state, outcome._value, outcome._tb, _FOLLOWING, queue)


def _run_follow(target: Promise[Any], queue: JobQueue) -> None:
    source = target._source
    target._runner = target._source = None
    target._complete(source._state, source._value, source._tb, _FOLLOWING, queue)


class _ThenableSettler:
    """The ``resolve``/``reject`` pair handed to a thenable's ``then``: first call wins."""

    __slots__ = ("_called", "_target")

    def __init__(self, target: Promise[Any]) -> None:
        self._target = target
        self._called = False

    def claim(self) -> bool:
        with _LOCK:
            if self._called:
                return False
            self._called = True
            return True

    def resolve(self, value: object = None) -> None:
        if self.claim():
            self._target._resolve(value, _FOLLOWING, _UNKNOWN)

    def reject(self, error: object = None) -> None:
        if self.claim():
            if not isinstance(error, BaseException):
                error = ArgumentTypeError(f"a thenable rejected with a non-exception: {error!r}")
            self._target._complete(_REJECTED, error, error.__traceback__, _FOLLOWING, _UNKNOWN)


def _run_thenable(target: Promise[Any], queue: JobQueue) -> None:
    then = target._arg1
    target._runner = target._arg1 = None
    settler = _ThenableSettler(target)
    try:
        then(settler.resolve, settler.reject)
    except BaseException as exc:
        if settler.claim():
            target._complete(_REJECTED, exc, exc.__traceback__, _FOLLOWING, queue)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise


# ------------------------------------------------------------------------- messages


def _not_callable_message(name: str, value: object) -> str:
    return f"{name} must be callable (or None), not {type(value).__name__} ({value!r})"


def _not_exception_message(value: object) -> str:
    if isinstance(value, type) and issubclass(value, BaseException):
        return (
            f"error must be an exception instance, not the class {value.__name__}; "
            f"pass {value.__name__}(...)"
        )
    return f"error must be an exception instance, not {type(value).__name__} ({value!r})"


def _exception_types(on: object) -> tuple[type[BaseException], ...]:
    if isinstance(on, type) and issubclass(on, BaseException):
        return (on,)
    if (
        isinstance(on, tuple)
        and on
        and all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in on)
    ):
        return on
    raise ArgumentTypeError(
        f"on must be an exception class or a non-empty tuple of them, "
        f"not {type(on).__name__} ({on!r})"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# ------------------------------------------------------------------------- compiled


def _install_speedups(speedups: Any) -> None:
    """Put the compiled hot paths in place (the same behaviour, in C)."""
    from ._promise_jobs import LoopJobs as Queue
    from ._promise_jobs import drain_trampoline as drain
    from ._promise_jobs import queue_for as lookup

    compiled_drain = speedups.install(
        Promise,
        Queue,
        {
            "unknown": _UNKNOWN,
            "plain": _PLAIN,
            "queue_now": _queue_now,
            "route": _route,
            "wake_waiter": _wake_waiter,
            "drain_trampoline": drain,
            "queue_for": lookup,
            "reject_with": _reject_with,
            "not_callable_message": _not_callable_message,
            "argument_type_error": ArgumentTypeError,
        },
    )
    # The compiled base class has these: let lookups reach them. (Its __new__ makes a
    # promise as __init__ would: pending, unhandled, every other field None.)
    for name in ("__init__", "then", "_register", "_complete"):
        delattr(Promise, name)
    Queue.drain = compiled_drain  # type: ignore[method-assign]
    os.register_at_fork(after_in_child=speedups.LOCK._at_fork_reinit)


if _SPEEDUPS is not None:
    _install_speedups(_SPEEDUPS)
