"""Wait for 100k coroutines at once and collect their results."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, Workload, async_case


async def child(value: int) -> int:
    """A coroutine that returns at its first step."""
    return value


async def corral_all(n: int) -> None:
    """corral: ``await corral.all(coroutines)``."""
    import corral

    results = await corral.all([child(i) for i in range(n)])
    assert len(results) == n


async def asyncio_gather(n: int) -> None:
    """asyncio: ``await asyncio.gather(*coroutines)``."""
    results = await asyncio.gather(*[child(i) for i in range(n)])
    assert len(results) == n


CORRAL = "corral.all"
ASYNCIO = "asyncio.gather"

WORKLOAD = Workload(
    name="all",
    title="Await many coroutines together and collect their results",
    n=100_000,
    smoke_n=100,
    unit="coroutines",
    baseline=ASYNCIO,
    cases=(async_case(CORRAL, corral_all), async_case(ASYNCIO, asyncio_gather)),
    floors=(AtMost(CORRAL, ASYNCIO, 1.1),),
)
