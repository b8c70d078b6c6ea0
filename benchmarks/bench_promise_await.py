"""Create a promise, resolve it from a loop callback, await it; n times in a row."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, Workload, async_case


async def corral_promise(n: int) -> None:
    """corral: ``Promise()``, ``loop.call_soon(p.resolve, 1)``, ``await p``."""
    from corral import Promise

    loop = asyncio.get_running_loop()
    for _ in range(n):
        promise: Promise[int] = Promise()
        loop.call_soon(promise.resolve, 1)
        await promise


async def asyncio_future(n: int) -> None:
    """asyncio: ``loop.create_future()``, ``loop.call_soon(f.set_result, 1)``, ``await f``."""
    loop = asyncio.get_running_loop()
    for _ in range(n):
        future: asyncio.Future[int] = loop.create_future()
        loop.call_soon(future.set_result, 1)
        await future


CORRAL = "corral Promise"
ASYNCIO = "asyncio.Future"

WORKLOAD = Workload(
    name="promise-await",
    title="Create, resolve from a loop callback, and await",
    n=100_000,
    smoke_n=100,
    unit="promises",
    baseline=ASYNCIO,
    cases=(async_case(CORRAL, corral_promise), async_case(ASYNCIO, asyncio_future)),
    floors=(AtMost(CORRAL, ASYNCIO, 1.5),),
)
