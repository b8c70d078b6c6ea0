"""The cache-store contract: what every :class:`~corral.CacheStore` must do.

Subclass :class:`CacheStoreContract` in a test module (its name must start with ``Test``)
and implement :meth:`CacheStoreContract.make_store`. A store on the loop clock (like
:class:`~corral.MemoryCacheStore`) runs the suite on virtual time: request the
``virtual_clock`` fixture for the class. A store with a clock of its own (a server's key
expiry) runs it on real time: set :attr:`~CacheStoreContract.unit` to a short real
duration and :attr:`~CacheStoreContract.tolerance` to what its clock and round trips may
be off by.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Hashable

from ...optimize._cache_store import CacheEntry, CacheStore

__all__ = ("CacheStoreContract",)


class CacheStoreContract:
    """The tests every cache store must pass.

    Override :meth:`key` and :meth:`value` if the store takes only some keys or values
    (for instance ``str`` keys and JSON values).
    """

    #: The time step of the expiry tests, in seconds.
    unit: float = 1.0
    #: How far the times a store reports may be off, in seconds.
    tolerance: float = 0.0

    async def make_store(self) -> CacheStore:
        """A new, empty store for one test."""
        raise NotImplementedError

    def key(self, n: int) -> Hashable:
        """The ``n``-th distinct key of a test."""
        return ("item", n)

    def value(self, n: int) -> object:
        """The ``n``-th distinct value of a test (equal to itself after a round trip)."""
        return {"n": n, "name": f"item {n}"}

    async def elapse(self, seconds: float) -> None:
        """Let ``seconds`` pass on the store's clock."""
        await asyncio.sleep(seconds)

    def assert_about(self, actual: float, expected: float) -> None:
        assert expected - self.tolerance <= actual <= expected + self.tolerance, (
            f"expected {expected} s (within {self.tolerance} s), got {actual} s"
        )

    async def test_a_key_never_set_has_no_entry(self) -> None:
        store = await self.make_store()
        assert await store.get(self.key(0)) is None

    async def test_an_entry_comes_back_with_its_value_and_times(self) -> None:
        store = await self.make_store()
        unit = self.unit
        await store.set(self.key(0), CacheEntry(self.value(0), False, 100 * unit, 50 * unit))
        entry = await store.get(self.key(0))
        assert entry is not None
        assert (entry.value, entry.failed) == (self.value(0), False)
        self.assert_about(entry.fresh_for, 100 * unit)
        self.assert_about(entry.stale_for, 50 * unit)

    async def test_an_entry_without_expiry_never_expires(self) -> None:
        store = await self.make_store()
        await store.set(self.key(0), CacheEntry(self.value(0), False, math.inf))
        await self.elapse(3 * self.unit)
        entry = await store.get(self.key(0))
        assert entry is not None
        assert (entry.value, entry.fresh_for, entry.stale_for) == (self.value(0), math.inf, 0.0)

    async def test_times_count_from_the_lookup(self) -> None:
        store = await self.make_store()
        unit = self.unit
        await store.set(self.key(0), CacheEntry(self.value(0), False, 2 * unit, 2 * unit))
        await self.elapse(unit)
        entry = await store.get(self.key(0))
        assert entry is not None
        self.assert_about(entry.fresh_for, unit)
        self.assert_about(entry.stale_for, 2 * unit)
        await self.elapse(2 * unit)
        entry = await store.get(self.key(0))
        assert entry is not None
        assert entry.fresh_for == 0.0
        self.assert_about(entry.stale_for, unit)

    async def test_an_entry_is_gone_once_its_lifetime_is_over(self) -> None:
        store = await self.make_store()
        unit = self.unit
        await store.set(self.key(0), CacheEntry(self.value(0), False, unit, unit))
        await store.set(self.key(1), CacheEntry(self.value(1), False, unit))
        await self.elapse(2 * unit + max(self.tolerance, unit / 10))
        assert await store.get(self.key(0)) is None
        assert await store.get(self.key(1)) is None

    async def test_set_replaces_the_entry_and_its_times(self) -> None:
        store = await self.make_store()
        unit = self.unit
        await store.set(self.key(0), CacheEntry(self.value(0), False, unit, 5 * unit))
        await store.set(self.key(0), CacheEntry(self.value(1), False, 10 * unit))
        entry = await store.get(self.key(0))
        assert entry is not None
        assert entry.value == self.value(1)
        self.assert_about(entry.fresh_for, 10 * unit)
        assert entry.stale_for == 0.0

    async def test_keys_are_kept_apart(self) -> None:
        store = await self.make_store()
        for n in range(3):
            await store.set(self.key(n), CacheEntry(self.value(n), False, math.inf))
        for n in range(3):
            entry = await store.get(self.key(n))
            assert entry is not None
            assert entry.value == self.value(n)

    async def test_delete_says_whether_there_was_an_entry(self) -> None:
        store = await self.make_store()
        await store.set(self.key(0), CacheEntry(self.value(0), False, math.inf))
        assert await store.delete(self.key(0)) is True
        assert await store.delete(self.key(0)) is False
        assert await store.get(self.key(0)) is None

    async def test_clear_removes_every_entry(self) -> None:
        store = await self.make_store()
        for n in range(3):
            await store.set(self.key(n), CacheEntry(self.value(n), False, math.inf))
        await store.clear()
        for n in range(3):
            assert await store.get(self.key(n)) is None

    async def test_a_failed_entry_comes_back_failed_or_not_at_all(self) -> None:
        store = await self.make_store()
        await store.set(self.key(0), CacheEntry(LookupError("missing"), True, 100 * self.unit))
        entry = await store.get(self.key(0))
        if entry is not None:  # a store may decline to keep an error
            assert entry.failed
            assert isinstance(entry.value, LookupError)
            assert entry.value.args == ("missing",)
