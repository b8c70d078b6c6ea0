"""MemoryCacheStore against the cache-store contract, on virtual time."""

from __future__ import annotations

import pytest

from corral import CacheStore, MemoryCacheStore
from corral.testing.contracts.cachestore import CacheStoreContract


@pytest.mark.usefixtures("virtual_clock")
class TestMemoryCacheStore(CacheStoreContract):
    async def make_store(self) -> CacheStore:
        return MemoryCacheStore(maxsize=10)
