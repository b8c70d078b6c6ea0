"""Spawn 100k trivial children in a task group and wait for them all."""

from __future__ import annotations

import asyncio

from benchmarks._harness import AtMost, TimesFaster, Workload, async_case


async def child() -> None:
    """The trivial child: returns at its first step."""


async def corral_start_soon(n: int) -> None:
    """corral: ``TaskGroup.start_soon(fn)`` n times."""
    from corral import TaskGroup

    async with TaskGroup() as tg:
        for _ in range(n):
            tg.start_soon(child)


async def asyncio_create_task(n: int) -> None:
    """asyncio: ``TaskGroup.create_task(coro)`` n times."""
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(child())


async def anyio_start_soon(n: int) -> None:
    """anyio on asyncio: ``TaskGroup.start_soon(fn)`` n times."""
    import anyio

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(child)


CORRAL = "corral TaskGroup.start_soon"
ASYNCIO = "asyncio.TaskGroup.create_task"
ANYIO = "anyio start_soon"

WORKLOAD = Workload(
    name="taskgroup",
    title="Spawn trivial children in a task group and wait for them",
    n=100_000,
    smoke_n=100,
    unit="children",
    baseline=ASYNCIO,
    cases=(
        async_case(CORRAL, corral_start_soon),
        async_case(ASYNCIO, asyncio_create_task),
        async_case(ANYIO, anyio_start_soon),
    ),
    floors=(AtMost(CORRAL, ASYNCIO, 1.2), TimesFaster(CORRAL, ANYIO, 4)),
)
