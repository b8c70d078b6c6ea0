"""Where :func:`corral.cached` keeps its entries: the store protocol and the memory store.

A store keeps :class:`CacheEntry` records under hashable keys, each for a limited time
that it expresses *relative to now* in both directions: :meth:`CacheStore.set` gets how
long the entry stays fresh and how long it may then be served stale, and
:meth:`CacheStore.get` answers with the same two durations counted from the moment of the
lookup. No clock is shared between the cache and the store, so a store in another
process (Redis, with its own key expiry) keeps time by itself.

:class:`MemoryCacheStore` is the default. :func:`corral.cached` reads it synchronously on
its hit path, without a coroutine per lookup; its async methods exist so that it also
fulfils the protocol (and runs the same contract tests as any other store).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import OrderedDict
from collections.abc import Hashable
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from ..errors import ArgumentTypeError, InvalidArgumentError
from ._limiter import size_arg

__all__ = ("CacheEntry", "CacheStore", "MemoryCacheStore")


@dataclasses.dataclass(frozen=True, slots=True)
class CacheEntry:
    """One stored outcome of a cached call, with the time it has left.

    Attributes:
        value: what the call returned or, when ``failed`` is true, the exception it raised.
        failed: whether ``value`` is an exception to raise rather than a result to return.
        fresh_for: seconds from now during which the entry is fresh (served as a hit);
            ``math.inf`` if it never goes stale; ``0.0`` once it is stale.
        stale_for: seconds, after ``fresh_for`` has run out, during which the entry may
            still be served while one refresh runs; ``0.0`` for none.

    Raises:
        InvalidArgumentError: a duration is NaN or negative, or ``stale_for`` is infinite.
    """

    value: object
    failed: bool
    fresh_for: float
    stale_for: float = 0.0

    def __post_init__(self) -> None:
        if not self.fresh_for >= 0.0:
            raise InvalidArgumentError(
                f"fresh_for must be a duration of at least 0, got {self.fresh_for!r}"
            )
        if not 0.0 <= self.stale_for < math.inf:
            raise InvalidArgumentError(
                f"stale_for must be a finite duration of at least 0, got {self.stale_for!r}"
            )
        if self.failed and not isinstance(self.value, BaseException):
            raise ArgumentTypeError(
                f"a failed entry holds an exception, not {type(self.value).__name__}"
            )

    @property
    def lifetime(self) -> float:
        """Seconds from now until the entry may no longer be served at all."""
        return self.fresh_for + self.stale_for


@runtime_checkable
class CacheStore(Protocol):
    """What :func:`corral.cached` needs from a store of entries.

    Every method is a coroutine and one step on the store; the cache never holds a lock
    across two of them. Keys are what the cache's ``key`` function returns (by default a
    tuple of the call's arguments); a store that needs text or bytes converts them itself,
    or documents that its users pass a ``key`` function returning ``str``.

    A store may keep fewer entries than it is given: it may decline to keep an entry it
    cannot represent (for instance an exception it cannot serialize) and may drop entries
    before they expire (to bound its size). The cache then calls the function again.
    Errors a method raises propagate to the callers of the cached function.

    ``corral.testing.contracts.cachestore.CacheStoreContract`` holds the tests every
    store must pass; a store's test module subclasses it.
    """

    async def get(self, key: Hashable) -> CacheEntry | None:
        """Return the entry stored under ``key``, or ``None`` if there is none that may
        still be served.

        The answer's ``fresh_for`` and ``stale_for`` count from now: an entry stored with
        ``fresh_for=10, stale_for=5`` and read 12 seconds later comes back with
        ``fresh_for=0.0, stale_for=3.0``. An entry whose whole lifetime has run out is
        never returned.
        """
        ...

    async def set(self, key: Hashable, entry: CacheEntry) -> None:
        """Store ``entry`` under ``key``, replacing any entry there.

        The store forgets it ``entry.lifetime`` seconds from now (never, if that is
        infinite) and must remember ``entry.stale_for``, so that :meth:`get` can tell
        fresh from stale.
        """
        ...

    async def delete(self, key: Hashable) -> bool:
        """Remove the entry stored under ``key``; return whether there was one."""
        ...

    async def clear(self) -> None:
        """Remove every entry this store holds for its cache."""
        ...


class _Record:
    """A stored result or error with absolute deadlines on the loop clock.

    ``fresh_until`` is ``None`` for a record that never expires (``stale_until`` is then
    ``None`` too); otherwise ``stale_until >= fresh_until``.
    """

    __slots__ = ("error", "fresh_until", "stale_until", "traceback", "value")

    def __init__(
        self,
        value: Any,
        error: BaseException | None,
        fresh_until: float | None,
        stale_until: float | None,
    ) -> None:
        self.value = value
        self.error = error
        self.fresh_until = fresh_until
        self.stale_until = stale_until
        # A cached exception is raised again and again: each raise starts from the
        # traceback it had when it was stored, so tracebacks do not grow with every hit.
        self.traceback: TracebackType | None = None if error is None else error.__traceback__

    def entry(self, now: float) -> CacheEntry:
        """The record as an entry whose times count from ``now``."""
        error = self.error
        value = self.value if error is None else error
        fresh_until = self.fresh_until
        stale_until = self.stale_until
        if fresh_until is None or stale_until is None:
            return CacheEntry(value, error is not None, math.inf)
        return CacheEntry(
            value,
            error is not None,
            max(fresh_until - now, 0.0),
            max(stale_until - max(fresh_until, now), 0.0),
        )


class MemoryCacheStore:
    """A :class:`CacheStore` in process memory, least recently used first out.

    Entries live in insertion-and-use order; once more than ``maxsize`` are stored, the
    least recently used one is evicted. An expired entry is dropped when it is next looked
    up, or once it is the least recently used as new entries are stored, so that even an
    unbounded store does not fill up with entries nobody asks for again. Time is read
    from the running event loop.

    Thread-safety: not thread-safe; use it from the event loop of the cache it serves.

    Args:
        maxsize: how many entries to keep at most (``>= 1``), or ``None`` for no bound.

    Raises:
        ArgumentTypeError: ``maxsize`` is not an ``int`` or ``None``.
        InvalidArgumentError: ``maxsize`` is smaller than 1.
    """

    __slots__ = ("_evictions", "_maxsize", "records")

    def __init__(self, maxsize: int | None = 128) -> None:
        self._maxsize = None if maxsize is None else size_arg(maxsize, "maxsize")
        self._evictions = 0
        #: The records, least recently used first; :func:`corral.cached` reads it directly.
        self.records: OrderedDict[Hashable, _Record] = OrderedDict()

    @property
    def maxsize(self) -> int | None:
        """How many entries the store keeps at most (``None``: no bound)."""
        return self._maxsize

    @property
    def evictions(self) -> int:
        """How many entries were dropped to stay within ``maxsize`` so far."""
        return self._evictions

    def __len__(self) -> int:
        return len(self.records)

    def lookup(self, key: Hashable, now: float) -> _Record | None:
        """The record under ``key`` that may still be served at ``now``, marked as used."""
        records = self.records
        record = records.get(key)
        if record is None:
            return None
        stale_until = record.stale_until
        if stale_until is not None and now >= stale_until:
            del records[key]
            return None
        records.move_to_end(key)
        return record

    def put(self, key: Hashable, entry: CacheEntry, now: float) -> None:
        """Keep ``entry`` from ``now`` on under ``key``, as the most recently used.

        Up to two expired entries at the least recently used end are dropped on the way
        (so that an unbounded store does not fill up with entries nobody asks for again),
        then the least recently used one is evicted if the store holds more than
        ``maxsize``.
        """
        if entry.fresh_for == math.inf:
            fresh_until = stale_until = None
        else:
            fresh_until = now + entry.fresh_for
            stale_until = fresh_until + entry.stale_for
        value = entry.value
        if entry.failed and isinstance(value, BaseException):
            record = _Record(None, value, fresh_until, stale_until)
        else:
            record = _Record(value, None, fresh_until, stale_until)
        records = self.records
        records[key] = record
        records.move_to_end(key)
        for _ in range(2):
            oldest = next(iter(records.values()))
            if oldest.stale_until is None or now < oldest.stale_until:
                break
            records.popitem(last=False)
        maxsize = self._maxsize
        if maxsize is not None and len(records) > maxsize:
            records.popitem(last=False)
            self._evictions += 1

    async def get(self, key: Hashable) -> CacheEntry | None:
        """Return the entry under ``key`` with its remaining times (see the protocol)."""
        now = asyncio.get_running_loop().time()
        record = self.lookup(key, now)
        return None if record is None else record.entry(now)

    async def set(self, key: Hashable, entry: CacheEntry) -> None:
        """Store ``entry`` under ``key`` for ``entry.lifetime`` seconds."""
        self.put(key, entry, asyncio.get_running_loop().time())

    async def delete(self, key: Hashable) -> bool:
        """Remove the entry under ``key``; return whether there was one."""
        return self.records.pop(key, None) is not None

    async def clear(self) -> None:
        """Remove every entry."""
        self.records.clear()

    def __repr__(self) -> str:
        bound = "unbounded" if self._maxsize is None else f"{self._maxsize} max"
        return f"<MemoryCacheStore {len(self.records)} entries, {bound}>"
