"""Check an object out of a pool and back in, uncontended; n times in a row."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, Workload, async_case


async def _make() -> object:
    return object()


async def corral_pool(n: int) -> None:
    """corral: ``async with Pool(factory, max_size=10).acquire() as obj: pass``."""
    from corral import Pool

    pool = Pool(_make, max_size=10)
    for _ in range(n):
        async with pool.acquire():
            pass


async def queue_pool(n: int) -> None:
    """A hand-written pool: an ``asyncio.Queue`` of objects, ``get()`` then ``put_nowait()``.

    It has no factory on demand, no health checks, no broken-object handling and no
    closing: the floor of what a pool can cost.
    """
    queue: asyncio.Queue[object] = asyncio.Queue()
    for _ in range(10):
        queue.put_nowait(await _make())
    for _ in range(n):
        obj = await queue.get()
        try:
            pass
        finally:
            queue.put_nowait(obj)


CORRAL = "corral Pool"
QUEUE = "asyncio.Queue pool"

WORKLOAD = Workload(
    name="pool",
    title="Check an object out of a pool and back in (async with, uncontended)",
    n=200_000,
    smoke_n=100,
    unit="checkouts",
    baseline=QUEUE,
    cases=(async_case(CORRAL, corral_pool), async_case(QUEUE, queue_pool)),
    floors=(AtMost(CORRAL, QUEUE, 1.5),),
)
