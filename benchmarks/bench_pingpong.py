"""Unbuffered ping-pong: a round trip is one hand-over each way between two tasks."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, TimesFaster, Workload, async_case


async def corral_channels(n: int) -> None:
    """corral: two rendezvous ``Channel()``; the echo task sends back what it gets."""
    from corral import Channel

    ping: Channel[int] = Channel()
    pong: Channel[int] = Channel()

    async def echo() -> None:
        for _ in range(n):
            await pong.send(await ping.receive())

    echoer = asyncio.get_running_loop().create_task(echo())
    for i in range(n):
        await ping.send(i)
        await pong.receive()
    await echoer


async def asyncio_queues(n: int) -> None:
    """asyncio: a pair of ``Queue(1)`` (asyncio has no rendezvous queue)."""
    ping: asyncio.Queue[int] = asyncio.Queue(1)
    pong: asyncio.Queue[int] = asyncio.Queue(1)

    async def echo() -> None:
        for _ in range(n):
            await pong.put(await ping.get())

    echoer = asyncio.get_running_loop().create_task(echo())
    for i in range(n):
        await ping.put(i)
        await pong.get()
    await echoer


async def anyio_streams(n: int) -> None:
    """anyio: two zero-buffer memory object streams."""
    import anyio

    ping_send, ping_receive = anyio.create_memory_object_stream[int](0)
    pong_send, pong_receive = anyio.create_memory_object_stream[int](0)

    async def echo() -> None:
        for _ in range(n):
            await pong_send.send(await ping_receive.receive())

    async with anyio.create_task_group() as tg:
        tg.start_soon(echo)
        for i in range(n):
            await ping_send.send(i)
            await pong_receive.receive()


CORRAL = "corral Channel(0) pair"
ASYNCIO = "asyncio.Queue(1) pair"
ANYIO = "anyio stream(0) pair"

WORKLOAD = Workload(
    name="pingpong",
    title="Unbuffered ping-pong between two tasks",
    n=100_000,
    smoke_n=500,
    unit="round trips",
    baseline=ASYNCIO,
    cases=(
        async_case(CORRAL, corral_channels),
        async_case(ASYNCIO, asyncio_queues),
        async_case(ANYIO, anyio_streams),
    ),
    floors=(AtMost(CORRAL, ASYNCIO, 1.0), TimesFaster(CORRAL, ANYIO, 2)),
)
