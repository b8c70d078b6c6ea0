"""Once: at most one run, shared outcome, cancellation is not an outcome."""

from __future__ import annotations

import asyncio

import pytest

import corral
from corral import Once
from corral.errors import ArgumentTypeError
from corral.testing import VirtualClock


async def test_runs_once_and_shares_the_result(virtual_clock: VirtualClock) -> None:
    once: Once[str] = Once()
    calls = 0

    async def connect(host: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(1)
        return f"connection to {host}"

    results = await corral.all([once.do(connect, "db") for _ in range(5)])
    assert results == ["connection to db"] * 5
    assert await once.do(connect, "other") == "connection to db"
    assert calls == 1
    assert once.done
    stats = once.statistics()
    assert (stats.state, stats.failed, stats.attempts) == ("done", False, 1)
    assert repr(once) == "<Once done>"


async def test_error_is_the_outcome_for_everyone() -> None:
    once: Once[None] = Once()
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("refused")

    for _ in range(3):
        with pytest.raises(ConnectionError, match="refused"):
            await once.do(broken)
    assert calls == 1
    assert once.statistics().failed
    assert repr(once) == "<Once done, failed ConnectionError>"


async def test_cancelled_run_is_retried_by_a_waiter(virtual_clock: VirtualClock) -> None:
    once: Once[int] = Once()
    attempts = 0

    async def slow() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(10)
        return attempts

    first = asyncio.create_task(once.do(slow))
    await asyncio.sleep(1)
    second = asyncio.create_task(once.do(slow))
    await asyncio.sleep(1)
    assert repr(once) == "<Once running, 1 waiting>"
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 2
    assert once.statistics().attempts == 2


async def test_cancelled_waiter_does_not_disturb_the_run(virtual_clock: VirtualClock) -> None:
    once: Once[str] = Once()

    async def slow() -> str:
        await asyncio.sleep(10)
        return "ok"

    runner = asyncio.create_task(once.do(slow))
    await asyncio.sleep(0)
    with corral.move_on_after(1):
        await once.do(slow)
    assert await runner == "ok"
    assert once.statistics().waiters == 0


async def test_bad_input() -> None:
    once: Once[int] = Once()

    async def work() -> int:
        return 1

    coro = work()
    with pytest.raises(ArgumentTypeError, match="not a coroutine object"):
        await once.do(coro)  # type: ignore[arg-type]

    def sync() -> int:
        return 1

    with pytest.raises(ArgumentTypeError, match="returned int"):
        await once.do(sync)  # type: ignore[arg-type]
    assert not once.done
