"""Take and give back a free adaptive-limiter token with ``async with``; n times in a row.

Each round trip is timed on the loop clock and fed to the limit algorithm, so this is
the overhead of measuring and adapting on top of a plain limiter.
"""

from __future__ import annotations

from benchmarks._harness import AtMost, Workload, async_case
from benchmarks.bench_limiter import asyncio_semaphore, corral_limiter


async def corral_adaptive_limiter(n: int) -> None:
    """corral: ``async with AdaptiveLimiter(): pass`` (Gradient algorithm)."""
    from corral import AdaptiveLimiter

    limiter = AdaptiveLimiter()
    for _ in range(n):
        async with limiter:
            pass


async def corral_adaptive_limiter_aimd(n: int) -> None:
    """corral: ``async with AdaptiveLimiter(AIMD()): pass``."""
    from corral import AIMD, AdaptiveLimiter

    limiter = AdaptiveLimiter(AIMD())
    for _ in range(n):
        async with limiter:
            pass


ADAPTIVE = "corral AdaptiveLimiter (Gradient)"
ADAPTIVE_AIMD = "corral AdaptiveLimiter (AIMD)"
LIMITER = "corral Limiter"
ASYNCIO = "asyncio.Semaphore"

WORKLOAD = Workload(
    name="adaptive",
    title="Take and give back a free adaptive-limiter token (async with, uncontended)",
    n=200_000,
    smoke_n=100,
    unit="acquisitions",
    baseline=ASYNCIO,
    cases=(
        async_case(ADAPTIVE, corral_adaptive_limiter),
        async_case(ADAPTIVE_AIMD, corral_adaptive_limiter_aimd),
        async_case(LIMITER, corral_limiter),
        async_case(ASYNCIO, asyncio_semaphore),
    ),
    floors=(AtMost(ADAPTIVE, ASYNCIO, 4),),
)
