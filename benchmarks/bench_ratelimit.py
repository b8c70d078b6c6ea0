"""Acquire from a rate limiter that never makes the caller wait; n times in a row."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, TimesFaster, Workload, async_case

# High enough that no acquire of the run ever has to wait.
RATE = 1e12


async def corral_rate_limiter(n: int) -> None:
    """corral: ``await limiter.acquire()`` on ``RateLimiter(1e12)``."""
    from corral import RateLimiter

    limiter = RateLimiter(RATE)
    for _ in range(n):
        await limiter.acquire()


async def aiolimiter_acquire(n: int) -> None:
    """aiolimiter: ``await limiter.acquire()`` on ``AsyncLimiter(1e12)``."""
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(RATE)
    for _ in range(n):
        await limiter.acquire()


async def asyncio_semaphore(n: int) -> None:
    """asyncio: an uncontended ``async with semaphore: pass`` (acquire and release)."""
    semaphore = asyncio.Semaphore(1)
    for _ in range(n):
        async with semaphore:
            pass


CORRAL = "corral RateLimiter.acquire"
AIOLIMITER = "aiolimiter acquire"
SEMAPHORE = "asyncio.Semaphore acquire+release"

WORKLOAD = Workload(
    name="ratelimit",
    title="Acquire from a rate limiter that never makes the caller wait",
    n=200_000,
    smoke_n=100,
    unit="acquires",
    baseline=SEMAPHORE,
    cases=(
        async_case(CORRAL, corral_rate_limiter),
        async_case(AIOLIMITER, aiolimiter_acquire),
        async_case(SEMAPHORE, asyncio_semaphore),
    ),
    floors=(TimesFaster(CORRAL, AIOLIMITER, 1.5), AtMost(CORRAL, SEMAPHORE, 2)),
)
