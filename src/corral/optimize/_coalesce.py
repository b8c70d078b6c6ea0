"""corral.coalesce and corral.Coalescer: concurrent identical calls share one execution."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import types
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import (
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Self,
    TypeVar,
    TypeVarTuple,
    Unpack,
    overload,
)

from .._core._hooks import INSTRUMENTS
from ..errors import ArgumentTypeError
from ._callables import awaitable_result, function_arg

__all__ = ("Coalesced", "Coalescer", "CoalescerStatistics", "coalesce")

T = TypeVar("T")
P = ParamSpec("P")
Q = ParamSpec("Q")
S = TypeVar("S")
Ts = TypeVarTuple("Ts")


@dataclasses.dataclass(frozen=True, slots=True)
class CoalescerStatistics:
    """A snapshot of a :class:`Coalescer` (or of a function decorated with ``coalesce``).

    Attributes:
        calls: how many calls were made so far.
        shared: how many of them joined an execution already under way instead of
            starting one.
        in_flight: how many executions run now (forgotten ones included).
        waiting: how many calls wait for an execution now.
        cancelled: how many executions were cancelled because every call waiting for
            them had left.
    """

    calls: int
    shared: int
    in_flight: int
    waiting: int
    cancelled: int


class _Flight:
    """One shared execution and the futures of the calls waiting for it."""

    __slots__ = ("error", "finished", "key", "loop", "task", "value", "waiters")

    def __init__(self, key: Hashable, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.waiters: set[asyncio.Future[Any]] = set()
        self.task: asyncio.Task[None] | None = None
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None


class Coalescer:
    """Runs one execution per key at a time; concurrent calls with that key share it.

    ::

        flights = corral.Coalescer()
        user = await flights.do(("user", 42), fetch_user, 42)

    The first :meth:`do` for a key starts ``fn(*args)`` in a task of its own; every
    :meth:`do` with the same key made before it finishes waits for that execution
    instead of starting another (in Go this is ``singleflight``). The result, or the
    error, is delivered to every call waiting at that moment, and forgotten right away:
    the next call with that key starts a new execution. Nothing is cached.

    Cancellation: each call waits on its own. A cancelled call leaves, and the others
    go on waiting; the shared execution is cancelled only when its **last** waiting call
    leaves, so no work runs that nobody waits for. A wait is bounded by the enclosing
    cancel scope's deadline like any other await; the execution itself is bounded only
    by its callers staying (it is not cancelled while one of them still waits).
    Cancelling the execution from outside (loop shutdown) cancels every waiting call.

    The execution runs in a task started from the first caller's context (its
    contextvars, including a ``corral.request_scope``), and keeps running when the first
    caller leaves while others wait.

    Thread-safety: not thread-safe; use a coalescer from the tasks of one event loop.
    """

    __slots__ = ("_calls", "_cancelled", "_flights", "_running", "_shared")

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        self._running: set[_Flight] = set()
        self._calls = self._shared = self._cancelled = 0

    def do(
        self, key: Hashable, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts
    ) -> Coroutine[Any, Any, T]:
        """Return ``await fn(*args)``, sharing one execution with concurrent calls of ``key``.

        Cancellation: see the class docstring: this call leaves alone; the execution is
        cancelled when its last waiting call leaves.

        Raises:
            ArgumentTypeError: ``fn`` is not a function (a coroutine object is refused
                with a message that says so), or ``key`` is not hashable; raised when
                the call is made, before anything runs.
            Exception: whatever the shared execution raised, raised in every call that
                waited for it.
        """
        return self._call(key, fn, args, None)

    def forget(self, key: Hashable) -> bool:
        """Let the next call with ``key`` start a new execution.

        The execution under way (if any) keeps running for the calls already waiting.

        Returns:
            True when an execution for ``key`` was under way.

        Raises:
            ArgumentTypeError: ``key`` is not hashable.
        """
        try:
            hash(key)
        except TypeError:
            raise _unhashable(key) from None
        return self._flights.pop(key, None) is not None

    def _call(
        self,
        key: Hashable,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
    ) -> Coroutine[Any, Any, T]:
        candidate: object = fn  # checked at run time: callers may pass anything
        if not callable(candidate):
            function_arg(candidate, "fn")
        try:
            hash(key)
        except TypeError:
            raise _unhashable(key) from None
        return self._wait(key, fn, args, kwargs)

    async def _wait(
        self,
        key: Hashable,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
    ) -> T:
        self._calls += 1
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(key, asyncio.get_running_loop())
            self._flights[key] = flight
            self._running.add(flight)
            task = flight.loop.create_task(self._execute(flight, fn, args, kwargs))
            if flight.finished:  # an eager task factory ran it to completion already
                if flight.error is not None:
                    raise flight.error
                return flight.value  # type: ignore[no-any-return]
            flight.task = task
        else:
            self._shared += 1
        waiter: asyncio.Future[T] = flight.loop.create_future()
        flight.waiters.add(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # answered, then cancelled: mark the answer as seen
            else:
                self._leave(flight, waiter)
            raise

    def _leave(self, flight: _Flight, waiter: asyncio.Future[Any]) -> None:
        waiters = flight.waiters
        waiters.discard(waiter)
        task = flight.task
        if waiters or flight.finished or task is None:
            return
        self._cancelled += 1
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        task.cancel()
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "cancelled", {"key": flight.key})

    async def _execute(
        self,
        flight: _Flight,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
    ) -> None:
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "started", {"key": flight.key})
        try:
            returned = fn(*args) if kwargs is None else fn(*args, **kwargs)
            value = await awaitable_result(returned, "fn", ArgumentTypeError)
        except Exception as error:
            flight.error = error
            for waiter in flight.waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        except BaseException as error:  # cancelled: by its last caller leaving, or from outside
            flight.error = error
            for waiter in flight.waiters:
                waiter.cancel()
            raise
        else:
            flight.value = value
            for waiter in flight.waiters:
                if not waiter.done():
                    waiter.set_result(value)
        finally:
            flight.finished = True
            self._running.discard(flight)
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "finished", {"key": flight.key, "waiters": len(flight.waiters)})

    def statistics(self) -> CoalescerStatistics:
        """A snapshot: calls made and shared, executions running and cancelled, waiters."""
        return CoalescerStatistics(
            calls=self._calls,
            shared=self._shared,
            in_flight=len(self._running),
            waiting=sum(len(flight.waiters) for flight in self._running),
            cancelled=self._cancelled,
        )

    def __repr__(self) -> str:
        waiting = sum(len(flight.waiters) for flight in self._running)
        return f"<Coalescer {len(self._running)} in flight, {waiting} waiting>"


def _unhashable(key: object) -> ArgumentTypeError:
    return ArgumentTypeError(
        f"the key {key!r} is not hashable: coalesced calls are keyed by a hashable key "
        "(for a decorated function, pass key= to build one from the arguments)"
    )


class Coalesced(Generic[P, T]):
    """An async function whose concurrent calls with equal arguments share one execution.

    Made by :func:`coalesce`; call it like the function it wraps. Semantics, cancellation
    and thread-safety are those of :class:`Coalescer`.
    """

    __slots__ = ("__dict__", "__weakref__", "_coalescer", "_fn", "_key")

    # copied from the decorated function by functools.update_wrapper
    __name__: str
    __qualname__: str
    __wrapped__: Callable[P, Awaitable[T]]

    def __init__(self, fn: Callable[P, Awaitable[T]], key: Callable[..., Hashable] | None) -> None:
        self._fn = fn
        self._key = key
        self._coalescer = Coalescer()
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
        return self._coalescer._call(self._key_of(args, kwargs), self._fn, args, kwargs or None)

    def _key_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        if self._key is not None:
            return self._key(*args, **kwargs)
        if kwargs:
            return (args, tuple(sorted(kwargs.items())))
        return args

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(
        self: Coalesced[Concatenate[S, Q], T], instance: S, owner: type | None = None
    ) -> Callable[Q, Coroutine[Any, Any, T]]: ...

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return types.MethodType(self, instance)

    def forget(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Let the next call with these arguments start a new execution.

        Returns:
            True when an execution for these arguments was under way.
        """
        return self._coalescer.forget(self._key_of(args, kwargs))

    def statistics(self) -> CoalescerStatistics:
        """A snapshot of the calls of this function (see :class:`CoalescerStatistics`)."""
        return self._coalescer.statistics()

    def __repr__(self) -> str:
        name = getattr(self._fn, "__qualname__", repr(self._fn))
        statistics = self._coalescer.statistics()
        return f"<coalesced {name}: {statistics.in_flight} in flight, {statistics.waiting} waiting>"


@overload
def coalesce(fn: Callable[P, Awaitable[T]], /) -> Coalesced[P, T]: ...


@overload
def coalesce(
    *, key: Callable[..., Hashable] | None = None
) -> Callable[[Callable[P, Awaitable[T]]], Coalesced[P, T]]: ...


def coalesce(
    fn: Callable[P, Awaitable[T]] | None = None,
    /,
    *,
    key: Callable[..., Hashable] | None = None,
) -> Coalesced[P, T] | Callable[[Callable[P, Awaitable[T]]], Coalesced[P, T]]:
    """Decorate an async function so concurrent calls with equal arguments share one run.

    ::

        @corral.coalesce
        async def fetch_config(name: str) -> Config: ...

        @corral.coalesce(key=lambda request: request.url)
        async def fetch(request: Request) -> Response: ...

    Calls are keyed by their arguments (positional, then keyword arguments in name
    order), which must then be hashable; ``key`` computes the key from the arguments
    instead. While a call with a key runs, further calls with an equal key wait for it
    and get its result or its error; once it ends, the next call starts a new run.
    Decorating a method keys the calls by ``self`` too. The decorated function has
    ``forget(*args)`` and ``statistics()``; see :class:`Coalescer` for the semantics.

    Cancellation: a cancelled call leaves alone; the shared run is cancelled only when
    its last waiting call leaves.

    Raises:
        ArgumentTypeError: ``fn`` or ``key`` is not a function (a coroutine object is
            refused with a message that says so). Calls raise it when their key is not
            hashable.
    """
    if key is not None:
        function_arg(key, "key")

    def decorate(function: Callable[P, Awaitable[T]]) -> Coalesced[P, T]:
        function_arg(function, "fn")
        return Coalesced(function, key)

    if fn is None:
        return decorate
    return decorate(fn)
