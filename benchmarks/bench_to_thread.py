"""Round trip to a worker thread and back: ``await to_thread(int)``, n times in a row."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, TimesFaster, Workload, async_case


async def corral_to_thread(n: int) -> None:
    """corral: ``await corral.to_thread(int)`` (token, limiter, cached workers)."""
    from corral import to_thread

    for _ in range(n):
        await to_thread(int)


async def asyncio_to_thread(n: int) -> None:
    """asyncio: ``await asyncio.to_thread(int)`` (the loop's default executor)."""
    for _ in range(n):
        await asyncio.to_thread(int)


async def anyio_to_thread(n: int) -> None:
    """anyio on asyncio: ``await anyio.to_thread.run_sync(int)``."""
    import anyio.to_thread

    for _ in range(n):
        await anyio.to_thread.run_sync(int)


CORRAL = "corral to_thread"
ASYNCIO = "asyncio.to_thread"
ANYIO = "anyio to_thread.run_sync"

WORKLOAD = Workload(
    name="to_thread",
    title="Round trip to a worker thread and back",
    n=20_000,
    smoke_n=50,
    unit="calls",
    baseline=ASYNCIO,
    cases=(
        async_case(CORRAL, corral_to_thread),
        async_case(ASYNCIO, asyncio_to_thread),
        async_case(ANYIO, anyio_to_thread),
    ),
    floors=(AtMost(CORRAL, ASYNCIO, 1.2), TimesFaster(CORRAL, ANYIO, 1.2)),
)
