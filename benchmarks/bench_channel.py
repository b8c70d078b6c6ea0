"""One producer, one consumer, a buffer of 128: items per second through a channel."""

from __future__ import annotations

import asyncio

from benchmarks._harness import TimesFaster, Workload, async_case, sync_case

BUFFER = 128


async def corral_channel(n: int) -> None:
    """corral: ``Channel(128)``, ``send`` / ``async for``; the producer closes it."""
    from corral import Channel

    channel: Channel[int] = Channel(BUFFER)

    async def produce() -> None:
        for i in range(n):
            await channel.send(i)
        channel.close()

    producer = asyncio.get_running_loop().create_task(produce())
    async for _ in channel:
        pass
    await producer


async def asyncio_queue(n: int) -> None:
    """asyncio: ``Queue(128)``, ``put`` / ``get`` with a ``None`` sentinel."""
    queue: asyncio.Queue[int | None] = asyncio.Queue(BUFFER)

    async def produce() -> None:
        for i in range(n):
            await queue.put(i)
        await queue.put(None)

    producer = asyncio.get_running_loop().create_task(produce())
    while await queue.get() is not None:
        pass
    await producer


async def anyio_stream(n: int) -> None:
    """anyio: ``create_memory_object_stream(128)``; the producer closes its end."""
    import anyio

    send, receive = anyio.create_memory_object_stream[int](BUFFER)

    async def produce() -> None:
        async with send:
            for i in range(n):
                await send.send(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        async with receive:
            async for _ in receive:
                pass


def trio_channel(n: int) -> None:
    """trio: ``open_memory_channel(128)`` under ``trio.run``."""
    import trio

    async def main() -> None:
        send, receive = trio.open_memory_channel[int](BUFFER)

        async def produce() -> None:
            async with send:
                for i in range(n):
                    await send.send(i)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            async with receive:
                async for _ in receive:
                    pass

    trio.run(main)


CORRAL = "corral Channel(128)"
ASYNCIO = "asyncio.Queue(128)"
ANYIO = "anyio memory stream(128)"
TRIO = "trio memory channel(128)"

WORKLOAD = Workload(
    name="channel",
    title="One producer to one consumer through a buffer of 128",
    n=500_000,
    smoke_n=1_000,
    unit="items",
    baseline=ASYNCIO,
    cases=(
        async_case(CORRAL, corral_channel),
        async_case(ASYNCIO, asyncio_queue),
        async_case(ANYIO, anyio_stream),
        sync_case(TRIO, trio_channel),
    ),
    floors=(
        TimesFaster(CORRAL, ASYNCIO, 1.3),
        TimesFaster(CORRAL, ANYIO, 3),
        TimesFaster(CORRAL, TRIO, 3),
    ),
)
