"""WaitGroup: counting outstanding work across tasks and threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from corral import WaitGroup
from corral.errors import ArgumentTypeError, UsageError
from corral.testing import VirtualClock


async def test_wait_returns_when_count_reaches_zero(virtual_clock: VirtualClock) -> None:
    group = WaitGroup()
    finished: list[int] = []
    group.add(3)

    async def work(n: int) -> None:
        await asyncio.sleep(n)
        finished.append(n)
        group.done()

    for n in (3, 1, 2):
        asyncio.get_running_loop().create_task(work(n))
    await group.wait()
    assert sorted(finished) == [1, 2, 3]
    assert group.pending == 0


async def test_wait_on_zero_returns_at_once() -> None:
    await WaitGroup().wait()


async def test_done_from_worker_threads() -> None:
    group = WaitGroup()
    group.add(8)
    threads = [threading.Thread(target=group.done) for _ in range(8)]
    for thread in threads:
        thread.start()
    await group.wait()
    for thread in threads:
        thread.join()
    assert group.statistics().pending == 0


async def test_several_waiters_all_wake() -> None:
    group = WaitGroup()
    group.add()
    waiters = [asyncio.create_task(group.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert group.statistics().waiters == 3
    group.done()
    await asyncio.gather(*waiters)


async def test_cancelled_waiter_leaves_nothing_behind() -> None:
    group = WaitGroup()
    group.add()
    waiter = asyncio.create_task(group.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert group.statistics().waiters == 0
    assert repr(group) == "<WaitGroup 1 pending, 0 waiting>"


def test_negative_count_is_refused() -> None:
    group = WaitGroup()
    with pytest.raises(UsageError, match="more times than add"):
        group.done()
    group.add(2)
    with pytest.raises(UsageError, match="negative"):
        group.add(-3)
    assert group.pending == 2


def test_add_takes_an_int() -> None:
    with pytest.raises(ArgumentTypeError, match="int"):
        WaitGroup().add(1.5)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="int"):
        WaitGroup().add(True)
