"""Map a trivial async function over 100k items, at most 100 calls at once.

The function awaits ``asyncio.sleep(0)`` before returning ``2 * x``: one real suspension
per item, as any call that does I/O has. A function that never suspends would let one
worker of the hand-written pool run every item in a single step (``await queue.get()``
on a full queue does not yield), which measures a plain loop, not a bounded concurrent
map. With one suspension per call, every case really keeps up to 100 calls in flight.

The floor is on corral's default mode (results as they complete); the ordered mode and
``map_all`` are shown for reference.
"""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, TimesFaster, Workload, async_case

LIMIT = 100


async def double(x: int) -> int:
    """The mapped function: one suspension, then the result."""
    await asyncio.sleep(0)
    return 2 * x


async def corral_amap(n: int) -> None:
    """corral: ``async for result in corral.amap(double, range(n), limit=100)``."""
    import corral

    results = []
    async with corral.amap(double, range(n), limit=LIMIT) as mapped:
        async for result in mapped:
            results.append(result)
    assert len(results) == n


async def corral_amap_ordered(n: int) -> None:
    """corral: ``corral.amap(..., ordered=True)``, results in input order."""
    import corral

    results = []
    async with corral.amap(double, range(n), limit=LIMIT, ordered=True) as mapped:
        async for result in mapped:
            results.append(result)
    assert len(results) == n


async def corral_map_all(n: int) -> None:
    """corral: ``await corral.map_all(double, range(n), limit=100)``."""
    import corral

    results = await corral.map_all(double, range(n), limit=LIMIT)
    assert len(results) == n


async def queue_pool(n: int) -> None:
    """asyncio: an ``asyncio.Queue`` of the items, 100 worker tasks, ``queue.join()``."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in range(n):
        queue.put_nowait(item)
    results: list[int] = []

    async def worker() -> None:
        while True:
            item = await queue.get()
            try:
                results.append(await double(item))
            finally:
                queue.task_done()

    workers = [asyncio.create_task(worker()) for _ in range(LIMIT)]
    await queue.join()
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert len(results) == n


async def aiometer_amap(n: int) -> None:
    """aiometer: ``async with aiometer.amap(double, range(n), max_at_once=100)``."""
    import aiometer

    results = []
    async with aiometer.amap(double, range(n), max_at_once=LIMIT) as mapped:
        async for result in mapped:
            results.append(result)
    assert len(results) == n


CORRAL = "corral amap"
CORRAL_ORDERED = "corral amap ordered"
CORRAL_MAP_ALL = "corral map_all"
QUEUE_POOL = "asyncio.Queue 100-worker pool"
AIOMETER = "aiometer amap"

WORKLOAD = Workload(
    name="amap",
    title="Map an async function over 100k items, 100 at a time",
    n=100_000,
    smoke_n=100,
    unit="items",
    baseline=QUEUE_POOL,
    cases=(
        async_case(CORRAL, corral_amap),
        async_case(CORRAL_ORDERED, corral_amap_ordered),
        async_case(CORRAL_MAP_ALL, corral_map_all),
        async_case(QUEUE_POOL, queue_pool),
        async_case(AIOMETER, aiometer_amap),
    ),
    floors=(AtMost(CORRAL, QUEUE_POOL, 1.1), TimesFaster(CORRAL, AIOMETER, 10)),
)
