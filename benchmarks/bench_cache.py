"""Call a cached async function whose result is cached; n calls in a row over 100 keys."""

from __future__ import annotations

from benchmarks._harness import TimesFaster, Workload, async_case

KEYS = 100


async def _load(key: int) -> int:
    return key * 2


async def corral_cached(n: int) -> None:
    """corral: ``@corral.cached(maxsize=128)``, every call a hit after the first round."""
    import corral

    load = corral.cached(maxsize=128)(_load)
    for i in range(n):
        await load(i % KEYS)


async def corral_cached_ttl(n: int) -> None:
    """corral: ``@corral.cached(ttl=3600, maxsize=128)``: a hit also reads the loop clock."""
    import corral

    load = corral.cached(ttl=3600, maxsize=128)(_load)
    for i in range(n):
        await load(i % KEYS)


async def async_lru_cached(n: int) -> None:
    """async-lru: ``@alru_cache(maxsize=128)``, every call a hit after the first round."""
    from async_lru import alru_cache

    load = alru_cache(maxsize=128)(_load)
    for i in range(n):
        await load(i % KEYS)


async def async_lru_cached_ttl(n: int) -> None:
    """async-lru: ``@alru_cache(maxsize=128, ttl=3600)``."""
    from async_lru import alru_cache

    load = alru_cache(maxsize=128, ttl=3600)(_load)
    for i in range(n):
        await load(i % KEYS)


CORRAL = "corral cached"
CORRAL_TTL = "corral cached(ttl)"
ASYNC_LRU = "async-lru alru_cache"
ASYNC_LRU_TTL = "async-lru alru_cache(ttl)"

WORKLOAD = Workload(
    name="cache",
    title="Call a cached async function: hits over 100 keys",
    n=200_000,
    smoke_n=200,
    unit="calls",
    baseline=ASYNC_LRU,
    cases=(
        async_case(CORRAL, corral_cached),
        async_case(CORRAL_TTL, corral_cached_ttl),
        async_case(ASYNC_LRU, async_lru_cached),
        async_case(ASYNC_LRU_TTL, async_lru_cached_ttl),
    ),
    floors=(TimesFaster(CORRAL, ASYNC_LRU, 2), TimesFaster(CORRAL_TTL, ASYNC_LRU_TTL, 1.2)),
)
