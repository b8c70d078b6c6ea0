"""Take and give back a free token of a capacity limiter with ``async with``; n times in a row."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, TimesFaster, Workload, async_case


async def corral_limiter(n: int) -> None:
    """corral: ``async with Limiter(10): pass``."""
    from corral import Limiter

    limiter = Limiter(10)
    for _ in range(n):
        async with limiter:
            pass


async def asyncio_semaphore(n: int) -> None:
    """asyncio: ``async with asyncio.Semaphore(10): pass``."""
    semaphore = asyncio.Semaphore(10)
    for _ in range(n):
        async with semaphore:
            pass


async def anyio_capacity_limiter(n: int) -> None:
    """anyio on asyncio: ``async with anyio.CapacityLimiter(10): pass``."""
    import anyio

    limiter = anyio.CapacityLimiter(10)
    for _ in range(n):
        async with limiter:
            pass


CORRAL = "corral Limiter"
ASYNCIO = "asyncio.Semaphore"
ANYIO = "anyio CapacityLimiter"

WORKLOAD = Workload(
    name="limiter",
    title="Take and give back a free limiter token (async with, uncontended)",
    n=200_000,
    smoke_n=100,
    unit="acquisitions",
    baseline=ASYNCIO,
    cases=(
        async_case(CORRAL, corral_limiter),
        async_case(ASYNCIO, asyncio_semaphore),
        async_case(ANYIO, anyio_capacity_limiter),
    ),
    floors=(AtMost(CORRAL, ASYNCIO, 1.5), TimesFaster(CORRAL, ANYIO, 5)),
)
