"""Enter and exit a timeout block that does not expire; n times in a row."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, TimesFaster, Workload, async_case


async def corral_move_on_after(n: int) -> None:
    """corral: ``with move_on_after(60): pass``."""
    from corral import move_on_after

    for _ in range(n):
        with move_on_after(60):
            pass


async def asyncio_timeout(n: int) -> None:
    """asyncio: ``async with asyncio.timeout(60): pass``."""
    for _ in range(n):
        async with asyncio.timeout(60):
            pass


async def anyio_move_on_after(n: int) -> None:
    """anyio on asyncio: ``with anyio.move_on_after(60): pass``."""
    import anyio

    for _ in range(n):
        with anyio.move_on_after(60):
            pass


CORRAL = "corral move_on_after"
ASYNCIO = "asyncio.timeout"
ANYIO = "anyio move_on_after"

WORKLOAD = Workload(
    name="timeout",
    title="Enter and exit a timeout block that does not expire",
    n=100_000,
    smoke_n=100,
    unit="blocks",
    baseline=ASYNCIO,
    cases=(
        async_case(CORRAL, corral_move_on_after),
        async_case(ASYNCIO, asyncio_timeout),
        async_case(ANYIO, anyio_move_on_after),
    ),
    floors=(AtMost(CORRAL, ASYNCIO, 1.5), TimesFaster(CORRAL, ANYIO, 1.5)),
)
