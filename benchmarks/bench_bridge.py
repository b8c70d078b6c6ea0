"""Thread to task through a bounded sync/async channel: 200k items, one producer thread."""

from __future__ import annotations

import asyncio
import threading

from benchmarks._harness import TimesFaster, Workload, async_case

CAPACITY = 1000


async def corral_bridge(n: int) -> None:
    """corral: a thread ``put``s into a ``BridgeChannel``, a task ``async for``s it."""
    from corral import BridgeChannel

    channel: BridgeChannel[int] = BridgeChannel(CAPACITY)

    def produce() -> None:
        for i in range(n):
            channel.put(i)
        channel.close()

    thread = threading.Thread(target=produce)
    thread.start()
    count = 0
    async for _ in channel:
        count += 1
    thread.join()
    assert count == n


async def culsans_queue(n: int) -> None:
    """culsans: a thread ``sync_q.put``s, a task ``await async_q.get()``s."""
    import culsans

    queue: culsans.Queue[int | None] = culsans.Queue(CAPACITY)

    def produce() -> None:
        for i in range(n):
            queue.sync_q.put(i)
        queue.sync_q.put(None)

    thread = threading.Thread(target=produce)
    thread.start()
    count = 0
    while await queue.async_q.get() is not None:
        count += 1
    thread.join()
    assert count == n


async def asyncio_call_soon_threadsafe(n: int) -> None:
    """asyncio: each item handed over with ``call_soon_threadsafe(queue.put_nowait)``
    into an unbounded ``asyncio.Queue`` (no back-pressure: a lower bound on wake-ups)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    def produce() -> None:
        for i in range(n):
            loop.call_soon_threadsafe(queue.put_nowait, i)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    thread = threading.Thread(target=produce)
    thread.start()
    count = 0
    while await queue.get() is not None:
        count += 1
    thread.join()
    assert count == n


CORRAL = "corral BridgeChannel"
CULSANS = "culsans Queue"
ASYNCIO = "asyncio call_soon_threadsafe"

WORKLOAD = Workload(
    name="bridge",
    title="Thread to task through a sync/async channel (one producer thread)",
    n=200_000,
    smoke_n=200,
    unit="items",
    baseline=CULSANS,
    cases=(
        async_case(CORRAL, corral_bridge),
        async_case(CULSANS, culsans_queue),
        async_case(ASYNCIO, asyncio_call_soon_threadsafe),
    ),
    floors=(TimesFaster(CORRAL, CULSANS, 1.2),),
)
