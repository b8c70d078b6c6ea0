"""ErrGroup: first error cancels the rest and is raised as it is; bounded concurrency."""

from __future__ import annotations

import asyncio

import pytest

import corral
from corral import ErrGroup
from corral.errors import ArgumentTypeError, InvalidArgumentError, UsageError
from corral.testing import VirtualClock


async def test_runs_everything_when_nothing_fails(virtual_clock: VirtualClock) -> None:
    done: list[int] = []

    async def work(n: int) -> None:
        await asyncio.sleep(n)
        done.append(n)

    async with ErrGroup() as group:
        for n in (3, 1, 2):
            await group.go(work, n)
    assert done == [1, 2, 3]
    assert group.statistics().started == 3


async def test_first_error_cancels_the_rest_and_is_raised_bare(virtual_clock: VirtualClock) -> None:
    cancelled: list[int] = []

    async def work(n: int) -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    async def failing() -> None:
        await asyncio.sleep(1)
        raise ConnectionError("backend down")

    with pytest.raises(ConnectionError, match="backend down"):
        async with ErrGroup() as group:
            await group.go(work, 1)
            await group.go(failing)
            await group.go(work, 2)
    assert sorted(cancelled) == [1, 2]


async def test_later_errors_are_noted_on_the_first(virtual_clock: VirtualClock) -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(100)
        finally:
            raise KeyError("during cleanup")

    async def failing() -> None:
        await asyncio.sleep(1)
        raise ValueError("first")

    with pytest.raises(ValueError, match="first") as info:
        async with ErrGroup() as group:
            await group.go(fails_on_cancel)
            await group.go(failing)
    assert any("1 more error" in note for note in info.value.__notes__)


async def test_limit_bounds_concurrency_and_applies_backpressure(
    virtual_clock: VirtualClock,
) -> None:
    running = peak = 0
    order: list[int] = []

    async def work(n: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(n)
        await asyncio.sleep(1 + n % 2)
        running -= 1

    loop = asyncio.get_running_loop()
    start = loop.time()
    async with ErrGroup(limit=3) as group:
        for n in range(9):
            await group.go(work, n)
        assert group.statistics().running <= 3
    assert peak == 3
    assert order == list(range(9))  # slots are handed out first come, first served
    assert loop.time() - start > 3  # nine jobs, three at a time


async def test_try_go_starts_only_with_a_free_slot(virtual_clock: VirtualClock) -> None:
    async def work() -> None:
        await asyncio.sleep(1)

    async with ErrGroup(limit=1) as group:
        assert group.try_go(work)
        assert not group.try_go(work)
        assert repr(group) == "<ErrGroup 1 running, limit 1>"
    assert group.statistics().started == 1


async def test_cancelled_go_takes_no_slot(virtual_clock: VirtualClock) -> None:
    async def work() -> None:
        await asyncio.sleep(5)

    async with ErrGroup(limit=1) as group:
        await group.go(work)
        with corral.move_on_after(1):
            await group.go(work)  # waits for the slot, then gives up
        assert group.statistics().waiting_for_slot == 0
        assert group.statistics().running == 1
        await group.go(work)  # gets the slot once the first finishes
    assert group.statistics().started == 2


async def test_body_error_is_raised_bare() -> None:
    async def work() -> None:
        await asyncio.sleep(100)

    with pytest.raises(RuntimeError, match="body"):
        async with ErrGroup() as group:
            await group.go(work)
            raise RuntimeError("body")


async def test_cancel_exits_quietly(virtual_clock: VirtualClock) -> None:
    async def work() -> None:
        await asyncio.sleep(100)

    async with ErrGroup(limit=1) as group:
        await group.go(work)
        group.cancel()
        await group.go(work)  # waits for the slot, is cancelled, starts nothing
        pytest.fail("go() kept waiting in a cancelled group")
    assert group.cancel_scope.cancelled_caught
    stats = group.statistics()
    assert (stats.running, stats.waiting_for_slot, stats.started) == (0, 0, 1)


async def test_child_cancelled_before_its_first_step_frees_its_slot() -> None:
    async def work() -> None:
        await asyncio.sleep(100)

    async with ErrGroup(limit=2) as group:
        group.cancel()
        assert group.try_go(work)  # started into an already cancelled group
    assert group.statistics().running == 0


async def test_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        ErrGroup(limit=0)
    with pytest.raises(ArgumentTypeError, match="positive int"):
        ErrGroup(limit=2.5)  # type: ignore[arg-type]

    async def work() -> None:
        pass

    def sync() -> int:
        return 1

    async with ErrGroup(limit=1) as group:
        coro = work()
        with pytest.raises(ArgumentTypeError, match="not a coroutine object"):
            await group.go(coro)  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="returned int"):
            await group.go(sync)  # type: ignore[arg-type]
        assert group.statistics().running == 0  # the slot came back
    with pytest.raises(UsageError, match="already exited"):
        await group.go(work)
