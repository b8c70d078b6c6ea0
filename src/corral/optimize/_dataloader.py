"""corral.DataLoader: loads issued together become one batch call, with a per-request cache."""

from __future__ import annotations

import asyncio
import dataclasses
import reprlib
from _thread import get_ident
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Generic, TypeVar

from .._core._hooks import INSTRUMENTS
from .._core._time import seconds_arg
from ..errors import ArgumentTypeError, BatchError, UsageError
from ._callables import awaitable_result, function_arg
from ._limiter import size_arg
from ._request_scope import CURRENT_REQUEST_SCOPE

__all__ = ("DataLoader", "DataLoaderStatistics")


K = TypeVar("K")
V = TypeVar("V")

#: What a batch function returns: one result per key, in key order or keyed by key. A
#: result that is an ``Exception`` instance is that key's error.
BatchResults = Mapping[K, V | Exception] | Sequence[V | Exception]

_short = reprlib.Repr()
_short.maxlist = _short.maxtuple = 5
_short.maxstring = _short.maxother = 60


@dataclasses.dataclass(frozen=True, slots=True)
class DataLoaderStatistics:
    """A snapshot of a :class:`DataLoader`.

    The counters cover every request scope; ``queued`` and ``cached`` describe the scope
    the snapshot is taken in (the loader's own state outside any scope).

    Attributes:
        loads: how many keys were asked for with ``load`` / ``load_many`` so far.
        cache_hits: how many of those loads were answered by a value in the cache or by a
            load of the same key already under way, without asking the batch function.
        batches: how many times the batch function was called.
        batched_keys: how many keys the batch function was asked for in all.
        failed_batches: how many batch calls failed as a whole (raised, or broke the
            result contract), and so delivered their error to every waiter.
        abandoned_batches: how many batch calls were cancelled because every caller
            waiting on them had left.
        in_flight: how many batch calls run now.
        queued: how many keys wait for the next batch call.
        cached: how many keys have a value or a load under way in the cache (``0`` with
            ``cache=False``).
    """

    loads: int
    cache_hits: int
    batches: int
    batched_keys: int
    failed_batches: int
    abandoned_batches: int
    in_flight: int
    queued: int
    cached: int


class _State(Generic[K, V]):
    """One scope's cache and queue of keys waiting for the next batch call."""

    __slots__ = ("entries", "handle", "queue")

    def __init__(self) -> None:
        self.entries: dict[Hashable, _Entry[K, V]] = {}
        self.queue: list[_Entry[K, V]] = []
        self.handle: asyncio.Handle | None = None


class _Entry(Generic[K, V]):
    """One key: the callers waiting for it, then (if cached) its value as a done future."""

    __slots__ = ("batch", "cache_key", "future", "key", "waiters")

    def __init__(self, key: K, cache_key: Hashable) -> None:
        self.key = key
        self.cache_key = cache_key
        self.future: asyncio.Future[V] | None = None  # done, once the value is known
        # the futures of the loads waiting for it, in order (a dict: O(1) removal)
        self.waiters: dict[asyncio.Future[V], None] = {}
        self.batch: _Batch[K, V] | None = None  # the batch call it is part of, once sent

    def settle(
        self, value: V | None, error: Exception | None = None, *, cancel: bool = False
    ) -> asyncio.Future[V] | None:
        """Answer every load waiting for this key; return one of the answered futures."""
        waiters = self.waiters
        self.waiters = {}
        self.batch = None
        answered = None
        for waiter in waiters:
            if waiter.done():  # cancelled; its leave callback is on its way
                continue
            waiter.remove_done_callback(self.leave)
            if cancel:
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(value)  # type: ignore[arg-type]
            answered = waiter
        return answered

    def leave(self, waiter: asyncio.Future[V]) -> None:
        """Done callback of a waiter's future, run when its load was cancelled."""
        try:
            del self.waiters[waiter]
        except KeyError:  # answered meanwhile: the callback was already on its way
            return
        batch = self.batch
        if batch is not None:
            batch.waiting -= 1
            if batch.waiting == 0:
                batch.loader._abandon(batch)


class _Batch(Generic[K, V]):
    """One call of the batch function, for the entries it answers."""

    __slots__ = ("entries", "loader", "state", "task", "waiting")

    def __init__(
        self, loader: DataLoader[K, V], state: _State[K, V], entries: list[_Entry[K, V]]
    ) -> None:
        self.loader = loader
        self.state = state
        self.entries = entries
        self.waiting = sum(len(entry.waiters) for entry in entries)
        self.task: asyncio.Task[None] | None = None
        for entry in entries:
            entry.batch = self


def _forget(state: _State[K, V], entry: _Entry[K, V]) -> None:
    """Take ``entry`` out of the cache unless ``clear``/``prime`` replaced it already."""
    if state.entries.get(entry.cache_key) is entry:
        del state.entries[entry.cache_key]


class DataLoader(Generic[K, V]):
    """Collects the keys loaded together and fetches them with one call of ``batch_fn``.

    ::

        async def users_by_id(ids: list[int]) -> list[User]:
            return await db.fetch_users(ids)      # one query for many ids

        users = corral.DataLoader(users_by_id)
        alice, bob = await asyncio.gather(users.load(1), users.load(2))   # one call

    Batching: every :meth:`load` issued in the same event-loop iteration (typically by
    tasks started together, such as the resolvers of one GraphQL field) goes into one
    call of ``batch_fn``; with ``batch_window``, every load within that many seconds of
    the first one does. Loads issued one after the other, each awaited before the next,
    cannot be batched: start them together (``asyncio.gather``, a task group) instead.
    With ``max_batch_size``, the keys are split into calls of at most that many keys,
    all started at once, so they run concurrently; a window that fills up is sent at
    once without waiting for the rest of the window.

    The batch function receives a list of distinct keys and returns, for those keys,
    either a sequence of results in the same order or a mapping from each key to its
    result. A result that is an ``Exception`` instance is that key's error: the loads of
    that key raise it, and the other keys are unaffected. A batch function that raises
    fails every load of that batch with its error; one that breaks the contract (a
    sequence of the wrong length, a mapping that misses a key, anything else) fails
    every load of that batch with :class:`~corral.errors.BatchError`. Either way the
    loader stays usable and the next load of those keys asks again.

    Caching (``cache=True``, the default): a key's value is kept and served to later
    loads without calling ``batch_fn``, and a load of a key already under way joins it.
    **Errors are never cached**, neither a whole-batch failure nor a per-key error:
    the next load of that key asks the batch function again (to cache "not found",
    return a value such as ``None`` for it). :meth:`prime`, :meth:`clear` and
    :meth:`clear_all` edit the cache. With ``cache=False`` only the loads waiting for
    the same batch call share a key; every batch call asks afresh.

    Request scope: a loader used inside ``with corral.request_scope():`` keeps a
    separate cache and queue for that scope, so one loader object can serve many
    concurrent requests without leaking values (or batch calls) from one to another.
    Outside any scope the loader uses its own cache, shared by all callers.

    Cancellation: :meth:`load` returns a future of its own for each call; cancelling
    it (or the task awaiting it) never disturbs the batch call that other loads wait
    for. When every load waiting on a batch call has been cancelled, the call is
    cancelled too and none of its keys is cached; keys whose loads all left before the
    batch was sent are not sent at all. A wait for a load is bounded by the enclosing
    cancel scope's deadline like any other await; the batch call itself runs in a task
    of the loader's own.

    Loop affinity: the loader binds to the running event loop on first use; using it
    from another loop while that one is still open raises
    :class:`~corral.errors.UsageError` (after the first loop has closed, the loader
    binds to the new one and starts with an empty cache).

    Thread-safety: not thread-safe; use a loader from the tasks of one event loop.

    Args:
        batch_fn: ``async def batch_fn(keys: list[K]) -> Sequence[V] | Mapping[K, V]``.
        max_batch_size: at most this many keys per call of ``batch_fn`` (``>= 1``);
            ``None`` sends all keys collected together in one call.
        batch_window: seconds (or a ``timedelta``) to collect keys after the first one
            of a batch; ``None`` or ``0`` collects the keys of one loop iteration.
        cache: whether values are kept for later loads.
        key_fn: maps a key to the hashable key used in the cache (for keys that are not
            hashable, or that are equal in a way ``==`` does not see). ``batch_fn``
            still receives the original keys.

    Raises:
        ArgumentTypeError: ``batch_fn`` or ``key_fn`` is not a function (a coroutine
            object is refused with a message that says so), ``max_batch_size`` is not
            an ``int``, ``batch_window`` is not a number of seconds, or ``cache`` is not
            a ``bool``.
        InvalidArgumentError: ``max_batch_size`` is smaller than 1, or ``batch_window``
            is negative or NaN.
    """

    __slots__ = (
        "__weakref__",
        "_abandoned",
        "_batch_fn",
        "_batched_keys",
        "_batches",
        "_cache",
        "_failed",
        "_hits",
        "_key_fn",
        "_loop",
        "_max_batch_size",
        "_misses",
        "_running",
        "_state",
        "_thread",
        "_window",
    )

    def __init__(
        self,
        batch_fn: Callable[[list[K]], Awaitable[BatchResults[K, V]]],
        *,
        max_batch_size: int | None = None,
        batch_window: float | timedelta | None = None,
        cache: bool = True,
        key_fn: Callable[[K], Hashable] | None = None,
    ) -> None:
        function_arg(batch_fn, "batch_fn")
        if key_fn is not None:
            function_arg(key_fn, "key_fn")
        if not isinstance(cache, bool):
            raise ArgumentTypeError(f"cache must be a bool, not {type(cache).__name__}")
        self._batch_fn = batch_fn
        self._max_batch_size = (
            None if max_batch_size is None else size_arg(max_batch_size, "max_batch_size")
        )
        window = None if batch_window is None else seconds_arg(batch_window, "batch_window")
        self._window = window or None
        self._cache = cache
        self._key_fn = key_fn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0  # the thread the loop runs in
        self._state: _State[K, V] = _State()
        self._running: set[_Batch[K, V]] = set()
        self._misses = self._hits = self._batches = self._batched_keys = 0
        self._failed = self._abandoned = 0

    # -- the hot path ------------------------------------------------------------------

    def load(self, key: K) -> asyncio.Future[V]:
        """Ask for the value of ``key``; await the returned future for it.

        The key joins the next batch call (or is answered from the cache, or joins a
        load of the same key already under way).

        Cancellation: the future is the caller's own; cancelling it leaves the batch
        call running for the other loads, unless it was the last one waiting (see the
        class docstring).

        Raises:
            UsageError: no event loop is running in this thread, or the loader is bound
                to another loop that is still open.
            ArgumentTypeError: the cache key (``key``, or ``key_fn(key)``) is not
                hashable.

        The awaited future raises the key's error when ``batch_fn`` returned an
        ``Exception`` for it, the batch call's error when it raised, or
        :class:`~corral.errors.BatchError` when it broke the result contract.
        """
        loop = self._loop
        # Cheaper than asyncio.get_running_loop() (a getpid() call on 3.11): one loop
        # runs per thread at a time, so the bound loop running in this thread is it.
        if loop is None or self._thread != get_ident() or not loop.is_running():
            loop = self._running_loop()
        scope = CURRENT_REQUEST_SCOPE.get()
        state = self._state if scope is None else scope.state_for(self, _State)
        cache_key: Hashable = key if self._key_fn is None else self._key_fn(key)
        try:
            entry = state.entries.get(cache_key)
        except TypeError:
            raise self._unhashable(key, cache_key) from None
        if entry is None:
            self._misses += 1
            entry = _Entry(key, cache_key)
            state.entries[cache_key] = entry
            self._enqueue(state, entry, loop)
        else:
            self._hits += 1
            if entry.future is not None:
                return entry.future
            if entry.batch is not None:
                entry.batch.waiting += 1
        waiter: asyncio.Future[V] = loop.create_future()
        waiter.add_done_callback(entry.leave)
        entry.waiters[waiter] = None
        return waiter

    def load_many(self, keys: Iterable[K]) -> asyncio.Future[list[V]]:
        """Ask for the values of ``keys``; await the returned future for them, in order.

        Like ``asyncio.gather(*(loader.load(key) for key in keys))``: the keys join one
        batch call, and the first error among them is raised (the other loads go on,
        and their values are cached). When every key is cached already, the returned
        future is done at once.

        Cancellation: cancelling the returned future cancels every load it made.

        Raises:
            ArgumentTypeError: ``keys`` is not iterable (a ``str`` is refused too), or
                a cache key is not hashable.
            UsageError: as for :meth:`load`.
        """
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
            raise ArgumentTypeError(
                f"keys must be an iterable of keys, not {type(keys).__name__} ({keys!r})"
            )
        loop = self._running_loop()
        scope = CURRENT_REQUEST_SCOPE.get()
        entries = (self._state if scope is None else scope.state_for(self, _State)).entries
        key_fn = self._key_fn
        futures: list[asyncio.Future[V]] = []
        try:
            for key in keys:
                try:  # a value in the cache is answered here; anything else by load()
                    entry = entries.get(key if key_fn is None else key_fn(key))
                except TypeError:
                    entry = None  # load() says what is wrong with the key
                if entry is not None and entry.future is not None:
                    self._hits += 1
                    futures.append(entry.future)
                else:
                    futures.append(self.load(key))
        except BaseException:
            for future in futures:  # a bad key: the keys before it are not loaded either
                future.cancel()
            raise
        if all(future.done() for future in futures):  # every key was cached
            done: asyncio.Future[list[V]] = loop.create_future()
            done.set_result([future.result() for future in futures])
            return done
        return asyncio.gather(*futures)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise UsageError(f"{self!r} is used outside a running event loop") from None
        if loop is not self._loop:
            self._bind(loop)
        return loop

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        bound = self._loop
        if bound is not None and not bound.is_closed():
            raise UsageError(
                f"{self!r} is bound to the event loop {bound!r} and cannot be used from "
                f"{loop!r} too: make one loader per event loop"
            )
        self._loop = loop
        self._thread = get_ident()
        self._state = _State()  # a closed loop's futures are of no use any more

    def _unhashable(self, key: K, cache_key: object) -> ArgumentTypeError:
        if self._key_fn is None:
            return ArgumentTypeError(
                f"key {_short.repr(key)} is not hashable: pass key_fn= to map keys to "
                "hashable cache keys"
            )
        return ArgumentTypeError(
            f"key_fn returned {_short.repr(cache_key)} for key {_short.repr(key)}, "
            "which is not hashable"
        )

    def _enqueue(
        self, state: _State[K, V], entry: _Entry[K, V], loop: asyncio.AbstractEventLoop
    ) -> None:
        queue = state.queue
        queue.append(entry)
        if len(queue) == 1:
            if self._window is None:
                state.handle = loop.call_soon(self._dispatch, state)
            else:
                state.handle = loop.call_later(self._window, self._dispatch, state)
        elif len(queue) == self._max_batch_size and self._window is not None:
            handle = state.handle
            if handle is not None:
                handle.cancel()
            state.handle = loop.call_soon(self._dispatch, state)

    # -- batch calls -------------------------------------------------------------------

    def _dispatch(self, state: _State[K, V]) -> None:
        queue = state.queue
        state.queue = []
        state.handle = None
        entries: list[_Entry[K, V]] = []
        for entry in queue:
            # Loads cancelled just now are dropped here; their leave callbacks, still on
            # their way, will find them gone.
            entry.waiters = {waiter: None for waiter in entry.waiters if not waiter.done()}
            if entry.waiters:
                entries.append(entry)
            else:  # every load of this key left before it was sent
                _forget(state, entry)
        if not self._cache:
            for entry in entries:
                _forget(state, entry)
        size = self._max_batch_size or len(entries)
        for start in range(0, len(entries), size):
            self._start(state, entries[start : start + size])

    def _start(self, state: _State[K, V], entries: list[_Entry[K, V]]) -> None:
        batch = _Batch(self, state, entries)
        self._batches += 1
        self._batched_keys += len(entries)
        self._running.add(batch)
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "batch_started", {"keys": len(entries)})
        task = asyncio.get_running_loop().create_task(self._call(batch))
        if not task.done():
            batch.task = task

    async def _call(self, batch: _Batch[K, V]) -> None:
        try:
            keys = [entry.key for entry in batch.entries]
            results = await awaitable_result(self._batch_fn(keys), "batch_fn", BatchError)
            values = self._match(batch.entries, results)
        except Exception as error:
            self._fail(batch, error)
        except BaseException:
            self._fail(batch, None)
            raise
        else:
            self._deliver(batch, values)
        finally:
            self._running.discard(batch)

    def _match(self, entries: list[_Entry[K, V]], results: object) -> list[object]:
        """The result of each entry, in order; BatchError when the contract is broken."""
        if isinstance(results, Mapping):
            values: list[object] = []
            missing: list[K] = []
            for entry in entries:
                try:
                    values.append(results[entry.key])
                except KeyError:
                    missing.append(entry.key)
                except TypeError:
                    raise BatchError(
                        f"batch_fn returned a mapping, but key {_short.repr(entry.key)} is "
                        "not hashable: return a sequence in key order instead"
                    ) from None
            if missing:
                raise BatchError(
                    f"batch_fn returned no result for {len(missing)} of {len(entries)} keys: "
                    f"{_short.repr(missing)}"
                )
            return values
        if isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
            if len(results) != len(entries):
                raise BatchError(
                    f"batch_fn returned {len(results)} results for {len(entries)} keys; "
                    "it must return one result per key, in key order"
                )
            return list(results)
        raise BatchError(
            "batch_fn must return a sequence of results in key order or a mapping from "
            f"key to result, not {type(results).__name__} ({_short.repr(results)})"
        )

    def _deliver(self, batch: _Batch[K, V], values: list[object]) -> None:
        state = batch.state
        cache = self._cache
        for entry, value in zip(batch.entries, values, strict=True):
            if isinstance(value, Exception):
                _forget(state, entry)
                entry.settle(None, value)
                continue
            answered = entry.settle(value)  # type: ignore[arg-type]
            if cache and state.entries.get(entry.cache_key) is entry:
                if answered is None:
                    answered = asyncio.get_running_loop().create_future()
                    answered.set_result(value)  # type: ignore[arg-type]
                entry.future = answered
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "batch_finished", {"keys": len(values)})

    def _fail(self, batch: _Batch[K, V], error: Exception | None) -> None:
        """Deliver ``error`` (or a cancellation, for None) to every waiter of ``batch``."""
        if error is not None:
            self._failed += 1
        for entry in batch.entries:
            _forget(batch.state, entry)
            entry.settle(None, error, cancel=error is None)
        if INSTRUMENTS.active and error is not None:
            INSTRUMENTS.event(
                self, "batch_failed", {"keys": len(batch.entries), "error": repr(error)}
            )

    def _abandon(self, batch: _Batch[K, V]) -> None:
        """Every load waiting on ``batch`` left: cancel the call and cache none of it."""
        self._abandoned += 1
        for entry in batch.entries:
            entry.batch = None
            _forget(batch.state, entry)
        if batch.task is not None:
            batch.task.cancel()
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "batch_abandoned", {"keys": len(batch.entries)})

    # -- the cache ---------------------------------------------------------------------

    def prime(self, key: K, value: V) -> bool:
        """Put ``value`` in the cache for ``key``, unless the key has an entry already.

        To replace a cached value, :meth:`clear` the key first. Inside a
        :func:`corral.request_scope`, this primes that scope's cache only.

        Returns:
            True when the value was stored, False when the key already had a value or a
            load under way (which is left as it is).

        Raises:
            UsageError: the loader was made with ``cache=False``, or is used outside a
                running event loop or from a second loop.
            ArgumentTypeError: ``value`` is an exception (errors are never cached), or
                the cache key is not hashable.
        """
        if not self._cache:
            raise UsageError(f"{self!r} has no cache to prime (it was made with cache=False)")
        if isinstance(value, BaseException):
            raise ArgumentTypeError(
                f"prime() stores values, not errors ({value!r}): a DataLoader never caches errors"
            )
        loop = self._running_loop()
        state = self._current_state()
        cache_key = self._cache_key(key)
        if cache_key in state.entries:
            return False
        entry: _Entry[K, V] = _Entry(key, cache_key)
        entry.future = future = loop.create_future()
        future.set_result(value)
        state.entries[cache_key] = entry
        return True

    def clear(self, key: K) -> bool:
        """Drop ``key`` from the cache (of the current request scope, inside one).

        A load of the key already under way still answers the loads that wait for it,
        but its value is not cached; the next load asks the batch function again.

        Returns:
            True when the key had an entry.

        Raises:
            ArgumentTypeError: the cache key is not hashable.
        """
        state = self._current_state()
        return state.entries.pop(self._cache_key(key), None) is not None

    def clear_all(self) -> None:
        """Drop every key from the cache (of the current request scope, inside one).

        Loads under way still answer the loads that wait for them, uncached.
        """
        self._current_state().entries.clear()

    def _current_state(self) -> _State[K, V]:
        scope = CURRENT_REQUEST_SCOPE.get()
        return self._state if scope is None else scope.state_for(self, _State)

    def _cache_key(self, key: K) -> Hashable:
        """The hashable cache key of ``key``; an error naming both when it is not hashable."""
        cache_key: Hashable = key if self._key_fn is None else self._key_fn(key)
        try:
            hash(cache_key)
        except TypeError:
            raise self._unhashable(key, cache_key) from None
        return cache_key

    # -- introspection -----------------------------------------------------------------

    def statistics(self) -> DataLoaderStatistics:
        """A snapshot: loads, cache hits, batch calls and keys; what is queued and cached."""
        state = self._current_state()
        return DataLoaderStatistics(
            loads=self._hits + self._misses,
            cache_hits=self._hits,
            batches=self._batches,
            batched_keys=self._batched_keys,
            failed_batches=self._failed,
            abandoned_batches=self._abandoned,
            in_flight=len(self._running),
            queued=len(state.queue),
            cached=len(state.entries) if self._cache else 0,
        )

    def __repr__(self) -> str:
        name = getattr(self._batch_fn, "__qualname__", type(self._batch_fn).__name__)
        state = self._current_state()
        return (
            f"<DataLoader {name}: {len(state.queue)} queued, {len(self._running)} batches "
            f"in flight, {len(state.entries) if self._cache else 0} cached>"
        )
