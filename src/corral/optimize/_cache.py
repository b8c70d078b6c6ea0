"""corral.cached: an async LRU/TTL cache with coalesced misses and stale-while-revalidate.

A decorated function answers from its store when it can. Concurrent misses of one key
share one call of the function (a *flight*, run as a task owned by the cache); every
caller waiting for it holds a reference, and the flight is cancelled only when its last
waiter leaves. A stale entry is served while one background refresh runs. Errors are
cached only when ``negative_ttl`` says so, and a cancelled call is never cached.

With the default memory store a hit runs synchronously in the caller's coroutine: one
key, one dictionary lookup, no task, no future and (for an entry that never expires) no
look at the event loop. Other stores go through the async :class:`CacheStore` protocol.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, Final, Generic, ParamSpec, Protocol, Self, TypeVar, cast, overload

from .._core._hooks import INSTRUMENTS
from .._core._scope import current_task
from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, ClosedResourceError, InvalidArgumentError, UsageError
from ._cache_store import CacheEntry, CacheStore, MemoryCacheStore, _Record

__all__ = ("CacheStatistics", "CachedFunction", "cached")

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_log = logging.getLogger("corral.cache")


class _KeywordsMark:
    """Separates positional from keyword arguments in a default key, so that no call
    with positional arguments only can produce the key of a call with keywords.

    Its ``repr`` is the same in every process, and keywords come sorted by name, so a
    store that turns keys into text gets the same text for the same call everywhere.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<keywords>"


_KEYWORDS: Final = _KeywordsMark()
_DEFAULT_MAXSIZE: Final = 128


@dataclasses.dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of a cached function's counters.

    Attributes:
        hits: calls answered by a fresh entry.
        stale_hits: calls answered by a stale entry while a refresh ran.
        misses: calls that started a call of the function.
        coalesced: calls that waited for a call another caller had started.
        refreshes: background refreshes started for stale entries.
        refresh_failures: background refreshes that raised (the stale entry stayed).
        in_flight: calls of the function running now (refreshes included).
        size: entries stored now; ``None`` for a store that is not a memory store.
        evictions: entries dropped to stay within ``maxsize``; ``None`` for a store that
            is not a memory store.
    """

    hits: int
    stale_hits: int
    misses: int
    coalesced: int
    refreshes: int
    refresh_failures: int
    in_flight: int
    size: int | None
    evictions: int | None


class CachedFunction(Protocol[P, T_co]):
    """What :func:`corral.cached` returns: the async function, plus its cache controls."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T_co]:
        """Return the cached outcome for these arguments, calling the function if needed."""
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self, instance: object, owner: type[Any] | None = None
    ) -> Callable[..., Coroutine[Any, Any, T_co]]: ...

    def __get__(
        self, instance: object, owner: type[Any] | None = None
    ) -> Self | Callable[..., Coroutine[Any, Any, T_co]]:
        """On a class, the function itself; on an instance, the method bound to it."""
        ...

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Forget the entry for these arguments; return whether there was one."""
        ...

    async def clear(self) -> None:
        """Forget every entry."""
        ...

    def statistics(self) -> CacheStatistics:
        """A snapshot of the cache's counters."""
        ...

    async def aclose(self) -> None:
        """Cancel every running call and refresh; later calls raise ``ClosedResourceError``."""
        ...


class _Flight:
    """One running call of the function for one key, and the callers waiting for it."""

    __slots__ = ("background", "key", "stale", "task", "waiters")

    def __init__(self, key: Hashable, background: bool, stale: _Record | None) -> None:
        self.key = key
        self.background = background  # a refresh: runs on when its waiters leave
        self.stale = stale  # served to callers that arrive while the refresh runs
        self.waiters: set[asyncio.Future[Any]] = set()
        self.task: asyncio.Task[None] | None = None


def _outcome(record: _Record) -> Any:
    error = record.error
    if error is not None:
        raise error.with_traceback(record.traceback)
    return record.value


def _positive_seconds(value: object, name: str, *, finite: bool = False) -> float:
    seconds = seconds_arg(value, name)
    if seconds == 0 or (finite and math.isinf(seconds)):
        kind = "a finite duration" if finite else "a duration"
        raise InvalidArgumentError(f"{name} must be {kind} above zero, got {value!r}")
    return seconds


class _Cache(Generic[T]):
    """The state and slow paths behind one cached function."""

    __slots__ = (
        "coalesced",
        "flights",
        "fn",
        "hits",
        "key_fn",
        "loop",
        "memory",
        "misses",
        "name",
        "negative_ttl",
        "refresh_failures",
        "refreshes",
        "stale_for",
        "stale_hits",
        "state",
        "store",
        "tasks",
        "ttl",
    )

    def __init__(
        self,
        fn: Callable[..., Awaitable[T]],
        *,
        ttl: float,
        stale_for: float,
        negative_ttl: float | None,
        key_fn: Callable[..., Hashable] | None,
        store: CacheStore,
    ) -> None:
        self.fn = fn
        self.name: str = getattr(fn, "__qualname__", type(fn).__qualname__)
        self.ttl = ttl
        self.stale_for = stale_for
        self.negative_ttl = negative_ttl
        self.key_fn = key_fn
        self.store = store
        self.memory = store if isinstance(store, MemoryCacheStore) else None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.state = "open"
        self.flights: dict[Hashable, _Flight] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.hits = self.stale_hits = self.misses = self.coalesced = 0
        self.refreshes = self.refresh_failures = 0

    # -- keys and the loop ------------------------------------------------------------

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        key_fn = self.key_fn
        if key_fn is not None:
            return key_fn(*args, **kwargs)
        try:
            key: Hashable = (args, _KEYWORDS, tuple(sorted(kwargs.items()))) if kwargs else args
            hash(key)
        except TypeError:
            raise self.unhashable(args, kwargs) from None
        return key

    def unhashable(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ArgumentTypeError:
        return ArgumentTypeError(
            f"cached function {self.name} was called with unhashable arguments "
            f"(args={args!r}, kwargs={kwargs!r}); pass key= to cached() to build a "
            "hashable key from them"
        )

    def bind(self) -> asyncio.AbstractEventLoop:
        """The running loop, which the cache belongs to from its first call on.

        Raises:
            ClosedResourceError: the cache was closed.
            UsageError: the cache belongs to another event loop that is still open.
        """
        loop = asyncio.get_running_loop()
        if self.state != "open":
            raise ClosedResourceError(f"cached function {self.name} was closed")
        bound = self.loop
        if loop is not bound:
            if bound is not None and not bound.is_closed():
                raise UsageError(
                    f"cached function {self.name} belongs to the event loop of its first "
                    f"call ({bound!r}) and cannot be used from another one ({loop!r}) while "
                    "that loop is open; decorate a separate function per loop"
                )
            # The first call, or the first after the old loop closed: entries with loop
            # deadlines and flights of the closed loop mean nothing here.
            self.loop = loop
            self.flights.clear()
            self.tasks.clear()
            if self.memory is not None:
                self.memory.records.clear()
        return loop

    # -- calls --------------------------------------------------------------------------

    async def call(self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """Every call that the memory hit path did not answer, and every call otherwise."""
        loop = self.bind()
        flight = self.flights.get(key)
        memory = self.memory
        if memory is not None:
            now = loop.time()
            record = memory.lookup(key, now)
            if record is not None:
                fresh_until = record.fresh_until
                if fresh_until is None or now < fresh_until:
                    self.hits += 1
                    self.report("hit", key)
                    return cast(T, _outcome(record))
                if flight is None:
                    self.refreshes += 1
                    self.start(_Flight(key, background=True, stale=record), args, kwargs)
                return self.serve_stale(key, record)
        if flight is not None:
            stale = flight.stale
            if stale is not None and loop.time() < cast(float, stale.stale_until):
                return self.serve_stale(key, stale)
            self.coalesced += 1
            self.report("coalesced", key)
            return await self.wait(flight, self.waiter(flight))
        if memory is not None:
            self.misses += 1
            self.report("miss", key)
        flight = _Flight(key, background=False, stale=None)
        future = self.waiter(flight)
        self.start(flight, args, kwargs)
        return await self.wait(flight, future)

    def serve_stale(self, key: Hashable, record: _Record) -> T:
        self.stale_hits += 1
        self.report("stale_hit", key)
        return cast(T, _outcome(record))

    def waiter(self, flight: _Flight) -> asyncio.Future[Any]:
        future = cast(asyncio.AbstractEventLoop, self.loop).create_future()
        flight.waiters.add(future)
        return future

    def start(self, flight: _Flight, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Run ``flight`` in a task the cache owns.

        Its first waiter (if any) is in place before the task starts, so that a task an
        eager task factory runs to completion inside ``create_task`` still finds it.
        """
        self.flights[flight.key] = flight
        loop = cast(asyncio.AbstractEventLoop, self.loop)
        task = loop.create_task(self.run(flight, args, kwargs))
        if not task.done():
            flight.task = task
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def wait(self, flight: _Flight, future: asyncio.Future[Any]) -> T:
        """Wait for ``flight`` as one of its waiters.

        Cancellation: the waiter leaves; the last waiter to leave a call (not a refresh)
        cancels it, so a call nobody waits for does not run on. The cancelled call is
        taken out of the running ones at once: a caller arriving before it has unwound
        starts a call of its own instead of joining one that is going away.
        """
        waiter = current_task()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(waiter, self)
        try:
            return cast(T, await future)
        except asyncio.CancelledError:
            waiters = flight.waiters
            waiters.discard(future)
            task = flight.task
            if not waiters and not flight.background and task is not None and not task.done():
                self.finish(flight)
                task.cancel()
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(waiter, self)

    async def run(self, flight: _Flight, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The flight's task: look up a store that is not in memory, call, keep, deliver.

        Every way out settles the waiters: with the outcome, with an error of the store,
        or (when the cache is closed) with ``ClosedResourceError``.
        """
        key = flight.key
        try:
            try:
                if self.memory is None:
                    entry = await self.store.get(key)
                    if entry is not None and self.answer_from(flight, entry):
                        return
                    if not flight.background:
                        self.misses += 1
                        self.report("miss", key)
                value = await self.fn(*args, **kwargs)
            except Exception as error:
                current = self.finish(flight)
                if flight.background:
                    self.refresh_failed(flight, error)
                elif current and self.negative_ttl is not None:
                    await self.keep(key, CacheEntry(error, True, self.negative_ttl))
                self.fail(flight, error)
                return
            if self.finish(flight):
                await self.keep(key, CacheEntry(value, False, self.ttl, self.stale_for))
            for future in flight.waiters:
                if not future.done():
                    future.set_result(value)
        except asyncio.CancelledError:
            self.finish(flight)
            if self.state != "open":
                self.fail(flight, ClosedResourceError(f"cached function {self.name} was closed"))
            else:
                for future in flight.waiters:
                    future.cancel()
            raise
        except BaseException as error:  # the store failed; or KeyboardInterrupt, SystemExit
            self.finish(flight)
            if flight.background and isinstance(error, Exception):
                self.refresh_failed(flight, error)
            self.fail(flight, error)
            if not isinstance(error, Exception):
                raise

    def answer_from(self, flight: _Flight, entry: CacheEntry) -> bool:
        """Answer ``flight``'s waiters from a store entry; return whether that was all.

        A stale entry is served and the flight turns into the refresh of that entry.
        """
        key = flight.key
        now = cast(asyncio.AbstractEventLoop, self.loop).time()
        error = cast(BaseException, entry.value) if entry.failed else None
        record = _Record(None if entry.failed else entry.value, error, now, now + entry.stale_for)
        if entry.fresh_for > 0:
            self.hits += 1
            self.report("hit", key)
            self.finish(flight)
        else:
            self.stale_hits += 1
            self.report("stale_hit", key)
            flight.background = True
            flight.stale = record
            self.refreshes += 1
        for future in flight.waiters:
            if not future.done():
                if error is None:
                    future.set_result(record.value)
                else:
                    future.set_exception(error)
        flight.waiters.clear()
        return not flight.background

    def finish(self, flight: _Flight) -> bool:
        """Take ``flight`` out of the running ones; return whether it was still current
        (not invalidated or cleared while it ran), so that its outcome may be kept."""
        flights = self.flights
        current = flights.get(flight.key) is flight
        if current:
            del flights[flight.key]
        return current

    def fail(self, flight: _Flight, error: BaseException) -> None:
        for future in flight.waiters:
            if not future.done():
                future.set_exception(error)

    def refresh_failed(self, flight: _Flight, error: Exception) -> None:
        self.refresh_failures += 1
        _log.warning("refresh of cached function %s failed", self.name, exc_info=error)
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "refresh_failed", {"key": flight.key, "error": error})

    async def keep(self, key: Hashable, entry: CacheEntry) -> None:
        memory = self.memory
        if memory is not None:
            memory.put(key, entry, cast(asyncio.AbstractEventLoop, self.loop).time())
        else:
            await self.store.set(key, entry)

    def report(self, name: str, key: Hashable) -> None:
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, name, {"key": key})

    # -- controls -----------------------------------------------------------------------

    async def invalidate(self, key: Hashable) -> bool:
        """Forget ``key``: its entry, and the running call's claim to store its outcome."""
        if self.state != "open":
            raise ClosedResourceError(f"cached function {self.name} was closed")
        self.flights.pop(key, None)
        return await self.store.delete(key)

    async def clear(self) -> None:
        if self.state != "open":
            raise ClosedResourceError(f"cached function {self.name} was closed")
        self.flights.clear()
        if self.memory is not None:
            self.memory.records.clear()
        else:
            await self.store.clear()

    async def aclose(self) -> None:
        if self.state == "closed":
            return
        self.state = "closing"
        tasks = [task for task in self.tasks if not task.done()]
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                await asyncio.wait(tasks)
        finally:
            self.state = "closed"
            self.flights.clear()
            self.tasks.clear()
            if self.memory is not None:
                self.memory.records.clear()

    def statistics(self) -> CacheStatistics:
        memory = self.memory
        return CacheStatistics(
            hits=self.hits,
            stale_hits=self.stale_hits,
            misses=self.misses,
            coalesced=self.coalesced,
            refreshes=self.refreshes,
            refresh_failures=self.refresh_failures,
            in_flight=sum(1 for task in self.tasks if not task.done()),
            size=None if memory is None else len(memory),
            evictions=None if memory is None else memory.evictions,
        )

    def __repr__(self) -> str:
        memory = self.memory
        size = "?" if memory is None else len(memory)
        return (
            f"<cached {self.name} {size} entries, {self.hits} hits, {self.misses} misses, "
            f"{len(self.tasks)} in flight>"
        )


def _memory_function(cache: _Cache[T], fn: Callable[P, Awaitable[T]]) -> Callable[P, Any]:
    """The decorated function over a memory store: the hit path inline, the rest in ``cache``.

    The hit path is written out twice (default keys, ``key=``) so that neither pays for
    a test of the other on every call.
    """
    memory = cast(MemoryCacheStore, cache.memory)
    lookup = memory.records.get
    mark_used = memory.records.move_to_end
    key_fn = cache.key_fn
    running_loop = asyncio.get_running_loop
    slow_path = cache.call

    if key_fn is None:

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            key = (args, _KEYWORDS, tuple(sorted(kwargs.items()))) if kwargs else args
            try:
                record = lookup(key)
            except TypeError:
                raise cache.unhashable(args, kwargs) from None
            if record is not None:
                fresh_until = record.fresh_until
                # An entry that never expires is served without a look at the loop.
                if fresh_until is None or (
                    (loop := running_loop()) is cache.loop and loop.time() < fresh_until
                ):
                    mark_used(key)
                    cache.hits += 1
                    if INSTRUMENTS.active:
                        cache.report("hit", key)
                    if record.error is None:
                        value: T = record.value
                        return value
                    raise record.error.with_traceback(record.traceback)
            return await slow_path(key, args, kwargs)

        return call

    @functools.wraps(fn)
    async def call_by_key(*args: P.args, **kwargs: P.kwargs) -> T:
        key = key_fn(*args, **kwargs)
        record = lookup(key)
        if record is not None:
            fresh_until = record.fresh_until
            if fresh_until is None or (
                (loop := running_loop()) is cache.loop and loop.time() < fresh_until
            ):
                mark_used(key)
                cache.hits += 1
                if INSTRUMENTS.active:
                    cache.report("hit", key)
                if record.error is None:
                    value: T = record.value
                    return value
                raise record.error.with_traceback(record.traceback)
        return await slow_path(key, args, kwargs)

    return call_by_key


def _store_function(cache: _Cache[T], fn: Callable[P, Awaitable[T]]) -> Callable[P, Any]:
    """The decorated function over any other store: every call goes through the protocol."""
    make_key = cache.key

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return await cache.call(make_key(args, kwargs), args, kwargs)

    return call


def cached(
    ttl: Seconds | None = None,
    maxsize: int | None = _DEFAULT_MAXSIZE,
    stale_while_revalidate: Seconds | None = None,
    negative_ttl: Seconds | None = None,
    key: Callable[..., Hashable] | None = None,
    store: CacheStore | None = None,
) -> Callable[[Callable[P, Awaitable[T]]], CachedFunction[P, T]]:
    """Cache the outcomes of an async function, coalescing concurrent misses.

    ``@corral.cached(ttl=60)`` keeps each result for 60 seconds, the 128 most recently
    used ones at most. A call finds the entry for its key (by default its arguments) and
    returns it; a call that finds none starts the function, and every call of the same
    key that arrives while it runs waits for that one call instead of starting its own.

    With ``stale_while_revalidate=s``, an entry older than ``ttl`` is still returned for
    ``s`` more seconds, while one background refresh replaces it; a refresh that fails
    leaves the stale entry in place until its time is up (the failure is counted and
    logged). Errors are not cached unless ``negative_ttl`` is given: then an ``Exception``
    a call raised is raised again to the callers of that key for ``negative_ttl`` seconds.

    Keys: the tuple of positional arguments, then (if there are any) the keyword
    arguments as ``(name, value)`` pairs sorted by name, compared by equality: ``f(1)``,
    ``f(1.0)`` and ``f(True)`` share an entry, ``f(a=1, b=2)`` and ``f(b=2, a=1)`` too,
    but ``f(1)`` and ``f(x=1)`` do not. ``key=fn`` builds the key from the arguments
    instead. On a method,
    ``self`` is one of the arguments: one cache serves every instance, and an entry keeps
    its instance alive until it is evicted, expires or is invalidated
    (``Class.method.invalidate(obj, x)``); a ``key`` that leaves ``self`` out shares
    entries between instances.

    The decorated function has ``await f.invalidate(*args)``, ``await f.clear()``,
    ``f.statistics()`` and ``await f.aclose()``.

    Cancellation: a caller cancelled while it waits for a call leaves; the call is
    cancelled only when its last waiter has left, so the others still get its outcome. A
    cancelled call stores nothing. Refreshes run in tasks the cache owns and ``aclose()``
    cancels (callers waiting then get ``ClosedResourceError``). Waits are bounded by the
    caller's cancel scopes and deadlines like any other await.

    Loop affinity: the cache belongs to the event loop of its first call. A call from
    another loop raises ``UsageError`` while that loop is open; once it is closed, the
    next loop takes the cache over with no entries. Only a hit of an entry that never
    expires skips this check: it touches nothing bound to a loop.

    Thread-safety: not thread-safe; call the function from its event loop only.

    Time is read from the running loop, so a virtual clock drives expiry in tests.

    Args:
        ttl: seconds (or ``timedelta``) an entry stays fresh; ``None``: until evicted.
        maxsize: entries kept in the default memory store (``None``: no bound); a
            ``store`` bounds itself, so pass only one of the two.
        stale_while_revalidate: seconds after ``ttl`` during which a stale entry is
            served while one refresh runs; needs ``ttl``.
        negative_ttl: seconds a raised ``Exception`` is cached; ``None``: never.
        key: builds an entry's key from the call's arguments (same signature as the
            function; returns something hashable).
        store: where entries live (a :class:`CacheStore`); default: a
            :class:`MemoryCacheStore` of ``maxsize`` entries. A store serves one cached
            function: two functions sharing one store would share keys.

    Raises:
        InvalidArgumentError: a duration is zero, negative or NaN, ``maxsize`` is smaller
            than 1, ``stale_while_revalidate`` is given without ``ttl``, or both ``store``
            and a ``maxsize`` other than the default are given.
        ArgumentTypeError: an argument has the wrong type, or the decorated object is a
            coroutine object (decorate the function, not its call) or not callable.
            Calling the function with unhashable arguments raises it too.
        UsageError: (from a call) the cache belongs to another, open, event loop.
        ClosedResourceError: (from a call) ``aclose()`` was called.
    """
    options: object = ttl
    if callable(options):
        raise ArgumentTypeError(
            f"cached takes its options and returns the decorator: write @cached() or "
            f"@cached(ttl=...), not @cached (got {options!r} as ttl)"
        )
    fresh_for = math.inf if ttl is None else _positive_seconds(ttl, "ttl")
    stale_for = 0.0
    if stale_while_revalidate is not None:
        stale_for = _positive_seconds(stale_while_revalidate, "stale_while_revalidate", finite=True)
        if ttl is None:
            raise InvalidArgumentError(
                "stale_while_revalidate needs a ttl: without one nothing ever goes stale"
            )
    error_ttl = None if negative_ttl is None else _positive_seconds(negative_ttl, "negative_ttl")
    if key is not None and not callable(key):
        raise ArgumentTypeError(f"key must be a function of the arguments, not {key!r}")
    if store is None:
        store = MemoryCacheStore(maxsize)
    elif not isinstance(store, CacheStore):
        raise ArgumentTypeError(
            f"store must be a corral.CacheStore, not {type(store).__name__} ({store!r})"
        )
    elif maxsize != _DEFAULT_MAXSIZE:
        raise InvalidArgumentError(
            f"maxsize={maxsize!r} sizes the default memory store, but store={store!r} was "
            "given: size the store itself (MemoryCacheStore(maxsize=...))"
        )
    chosen_store = store

    def decorate(fn: Callable[P, Awaitable[T]]) -> CachedFunction[P, T]:
        candidate: object = fn
        if inspect.isawaitable(candidate):
            if isinstance(candidate, Coroutine):
                candidate.close()
            raise ArgumentTypeError(
                f"cached decorates an async function, but got a coroutine object "
                f"({candidate!r}); decorate the function itself, not the result of calling it"
            )
        if not callable(candidate):
            raise ArgumentTypeError(f"cached decorates an async function, not {fn!r}")
        cache: _Cache[T] = _Cache(
            fn,
            ttl=fresh_for,
            stale_for=stale_for,
            negative_ttl=error_ttl,
            key_fn=key,
            store=chosen_store,
        )
        call = (
            _memory_function(cache, fn) if cache.memory is not None else _store_function(cache, fn)
        )

        async def invalidate(*args: P.args, **kwargs: P.kwargs) -> bool:
            return await cache.invalidate(cache.key(args, kwargs))

        vars(call).update(
            invalidate=invalidate,
            clear=cache.clear,
            statistics=cache.statistics,
            aclose=cache.aclose,
        )
        return cast(CachedFunction[P, T], call)

    return decorate
