"""Sequencer: blocks in different tasks run in position order, whatever the arrival order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.errors import ArgumentTypeError, BrokenResourceError, InvalidArgumentError, UsageError
from corral.testing import Sequencer, SequencerStatistics, VirtualClock, wait_all_tasks_blocked


@pytest.mark.corral_loops("virtual")
@given(
    arrivals=st.permutations(range(6)),
    delays=st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=6, max_size=6),
)
async def test_blocks_run_in_position_order(arrivals: list[int], delays: list[float]) -> None:
    seq = Sequencer()
    log: list[str] = []

    async def step(position: int, delay: float) -> None:
        await asyncio.sleep(delay)
        async with seq(position):
            log.append(f"enter {position}")
            await asyncio.sleep(0)  # others get to run inside the block too
            log.append(f"exit {position}")

    async with asyncio.TaskGroup() as tg:
        for position, delay in zip(arrivals, delays, strict=True):
            tg.create_task(step(position, delay))
    assert log == [f"{what} {n}" for n in range(6) for what in ("enter", "exit")]


async def test_one_task_can_hold_several_positions(virtual_clock: VirtualClock) -> None:
    seq = Sequencer()
    log: list[str] = []

    async def first() -> None:
        async with seq(0):
            log.append("a")
        async with seq(2):
            log.append("c")

    async def second() -> None:
        async with seq(3):
            log.append("d")

    async def third() -> None:
        async with seq(1):
            log.append("b")

    async with asyncio.TaskGroup() as tg:
        for work in (second, third, first):
            tg.create_task(work())
    assert log == ["a", "b", "c", "d"]


async def test_a_block_that_raises_still_passes_the_turn(virtual_clock: VirtualClock) -> None:
    seq = Sequencer()
    log: list[int] = []

    async def later() -> None:
        async with seq(1):
            log.append(1)

    task = asyncio.ensure_future(later())
    with pytest.raises(KeyError):
        async with seq(0):
            raise KeyError("boom")
    await task
    assert log == [1]


async def test_reusing_a_position_is_an_error(virtual_clock: VirtualClock) -> None:
    seq = Sequencer()
    async with seq(0):
        pass
    with pytest.raises(UsageError, match="position 0 was already used"):
        async with seq(0):
            pass


@pytest.mark.parametrize(
    ("position", "error", "match"),
    [
        (-1, InvalidArgumentError, "must not be negative, got -1"),
        (1.0, ArgumentTypeError, r"must be an int, not float \(1.0\)"),
        (True, ArgumentTypeError, "must be an int, not bool"),
    ],
)
def test_bad_positions_are_refused(position: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Sequencer()(position)


async def test_a_cancelled_waiter_breaks_the_order(virtual_clock: VirtualClock) -> None:
    seq = Sequencer()
    outcomes: dict[int, BaseException | None] = {}

    async def wait_for(position: int) -> None:
        try:
            async with seq(position):
                outcomes[position] = None
        except BaseException as error:
            outcomes[position] = error
            raise

    two = asyncio.ensure_future(wait_for(2))
    three = asyncio.ensure_future(wait_for(3))
    await wait_all_tasks_blocked()
    assert seq.statistics() == SequencerStatistics(
        next_position=0, waiting=(2, 3), used=2, broken_at=None
    )
    two.cancel()
    await asyncio.gather(two, three, return_exceptions=True)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    broken = outcomes[3]
    assert isinstance(broken, BrokenResourceError)
    assert "position 2 was cancelled" in str(broken)
    assert isinstance(broken.__cause__, asyncio.CancelledError)
    with pytest.raises(BrokenResourceError):
        async with seq(0):
            pass
    assert seq.statistics().broken_at == 2
    assert repr(seq) == "<Sequencer next=0, waiting=[], broken at 2>"


async def test_cancelling_inside_a_block_passes_the_turn(virtual_clock: VirtualClock) -> None:
    seq = Sequencer()
    entered = asyncio.Event()

    async def stuck() -> None:
        async with seq(0):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(stuck())
    await entered.wait()
    task.cancel()
    async with seq(1):
        assert task.cancelled()
    assert repr(seq) == "<Sequencer next=2, waiting=[]>"
