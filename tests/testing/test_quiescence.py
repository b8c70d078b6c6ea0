"""wait_all_tasks_blocked: returns once every other task waits, before time jumps."""

from __future__ import annotations

import asyncio

import pytest

from corral.errors import UsageError
from corral.testing import VirtualClock, run, wait_all_tasks_blocked


async def test_returns_after_every_task_reached_its_wait(virtual_clock: VirtualClock) -> None:
    progress: list[str] = []
    gate = asyncio.Event()

    async def worker(name: str, steps: int) -> None:
        for step in range(steps):
            progress.append(f"{name}{step}")
            await asyncio.sleep(0)
        await gate.wait()
        progress.append(f"{name} done")

    tasks = [asyncio.ensure_future(worker(name, n)) for name, n in (("a", 3), ("b", 1), ("c", 5))]
    await wait_all_tasks_blocked()
    assert sorted(progress) == sorted(["a0", "a1", "a2", "b0", "c0", "c1", "c2", "c3", "c4"])
    gate.set()
    await wait_all_tasks_blocked()
    assert {p for p in progress if p.endswith("done")} == {"a done", "b done", "c done"}
    assert all(task.done() for task in tasks)


async def test_returns_before_the_clock_jumps(virtual_clock: VirtualClock) -> None:
    sleeper = asyncio.ensure_future(asyncio.sleep(10))
    await wait_all_tasks_blocked()
    assert not sleeper.done()
    assert virtual_clock.time() == 0.0
    await sleeper
    assert virtual_clock.time() == 10.0


async def test_several_waiters_return_together(virtual_clock: VirtualClock) -> None:
    woke: list[int] = []

    async def waiter(n: int) -> None:
        await wait_all_tasks_blocked()
        woke.append(n)

    async with asyncio.TaskGroup() as tg:
        for n in range(3):
            tg.create_task(waiter(n))
    assert sorted(woke) == [0, 1, 2]
    assert virtual_clock.time() == 0.0


async def test_cancelling_a_waiter_leaves_others_waiting(virtual_clock: VirtualClock) -> None:
    cancelled = asyncio.ensure_future(wait_all_tasks_blocked())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await wait_all_tasks_blocked()
    assert virtual_clock.time() == 0.0


@pytest.mark.corral_loops("asyncio")
async def test_other_loops_are_refused() -> None:
    with pytest.raises(UsageError, match=r"needs a corral\.testing\.VirtualClockLoop"):
        await wait_all_tasks_blocked()


def test_usable_through_run() -> None:
    async def main() -> list[str]:
        seen: list[str] = []

        async def child() -> None:
            seen.append("child ran")
            await asyncio.Event().wait()

        task = asyncio.ensure_future(child())
        await wait_all_tasks_blocked()
        task.cancel()
        return seen

    assert run(main) == ["child ran"]
