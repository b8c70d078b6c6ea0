"""Pool: reuse, FIFO waiting, broken and unhealthy objects, idle expiry, warm objects,
factory errors, cancellation, closing, bad input."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral import Pool, PoolStatistics
from corral.errors import ArgumentTypeError, ClosedResourceError, InvalidArgumentError, UsageError
from corral.testing import VirtualClock, wait_all_tasks_blocked

virtual_time = pytest.mark.usefixtures("virtual_clock")


class Conn:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.healthy = True

    def __repr__(self) -> str:
        return f"Conn({self.number})"


class Factory:
    """Makes numbered connections; can be told to wait or to fail; closes them."""

    def __init__(self, delay: float = 0.0) -> None:
        self.made: list[Conn] = []
        self.delay = delay
        self.error: Exception | None = None
        self.closed: list[int] = []

    async def __call__(self) -> Conn:
        error = self.error  # as it was when the call began
        if self.delay:
            await asyncio.sleep(self.delay)
        if error is not None:
            raise error
        conn = Conn(len(self.made))
        self.made.append(conn)
        return conn

    async def close(self, conn: Conn) -> None:
        await asyncio.sleep(0)
        conn.closed = True
        self.closed.append(conn.number)


def counts(pool: Pool[Any]) -> tuple[int, int, int, int]:
    """(size, idle, in_use, waiting)."""
    snapshot = pool.statistics()
    return snapshot.size, snapshot.idle, snapshot.in_use, snapshot.waiting


async def test_a_returned_object_is_reused() -> None:
    factory = Factory()
    pool = Pool(factory, max_size=2, close=factory.close)
    async with pool.acquire() as first:
        assert counts(pool) == (1, 0, 1, 0)
    async with pool.acquire() as again:
        assert again is first
    assert pool.statistics() == PoolStatistics(
        max_size=2, min_size=0, size=1, idle=1, in_use=0, waiting=0, created=1, discarded=0
    )
    assert repr(pool) == "<Pool 1/2 objects, 0 in use, 1 idle, 0 waiting>"
    await pool.aclose()
    assert factory.closed == [0]


async def test_the_most_recently_returned_object_goes_out_first() -> None:
    pool = Pool(Factory(), max_size=3)
    async with pool.acquire() as a, pool.acquire() as b:
        pass
    async with pool.acquire() as c:
        assert c is a  # a was returned last (inner block exits first: b, then a)
    assert b is not a


@virtual_time
async def test_callers_beyond_max_size_wait_in_line_first_come_first_served(
    virtual_clock: VirtualClock,
) -> None:
    pool = Pool(Factory(), max_size=2)
    order: list[tuple[int, int]] = []

    async def use(caller: int) -> None:
        async with pool.acquire() as conn:
            order.append((caller, conn.number))
            await asyncio.sleep(1)

    async with corral.TaskGroup() as tg:
        for caller in range(5):
            tg.start_soon(use, caller)
            await asyncio.sleep(0)
        await wait_all_tasks_blocked()
        assert counts(pool) == (2, 0, 2, 3)
        assert repr(pool) == "<Pool 2/2 objects, 2 in use, 0 idle, 3 waiting>"
    assert [caller for caller, _ in order] == [0, 1, 2, 3, 4]
    assert {conn for _, conn in order} == {0, 1}
    assert virtual_clock.time() == 3
    assert pool.statistics().created == 2


@virtual_time
async def test_an_error_escaping_the_block_closes_and_drops_the_object() -> None:
    factory = Factory()
    pool = Pool(factory, max_size=1, close=factory.close)
    with pytest.raises(OSError, match="reset"):
        async with pool.acquire():
            raise OSError("reset")
    await wait_all_tasks_blocked()
    assert factory.closed == [0]
    assert counts(pool) == (0, 0, 0, 0)
    async with pool.acquire() as conn:
        assert conn.number == 1
    assert pool.statistics().discarded == 1


@virtual_time
async def test_a_dropped_object_makes_room_for_a_waiter() -> None:
    pool = Pool(Factory(), max_size=1)
    got: list[int] = []

    async def waiter() -> None:
        async with pool.acquire() as conn:
            got.append(conn.number)

    async with corral.TaskGroup() as tg:
        with pytest.raises(KeyError):
            async with pool.acquire():
                tg.start_soon(waiter)
                await wait_all_tasks_blocked()
                assert counts(pool) == (1, 0, 1, 1)
                raise KeyError("broken")
    assert got == [1]


@virtual_time
async def test_an_unhealthy_object_is_replaced_at_checkout() -> None:
    factory = Factory()

    async def healthy(conn: Conn) -> bool:
        await asyncio.sleep(0.1)
        return conn.healthy

    pool = Pool(factory, max_size=2, health_check=healthy, close=factory.close)
    async with pool.acquire() as conn:
        assert conn.number == 0  # a new object is not checked
    conn.healthy = False
    async with pool.acquire() as replacement:
        assert replacement.number == 1
    await wait_all_tasks_blocked()
    assert factory.closed == [0]
    assert pool.statistics().discarded == 1
    async with pool.acquire() as same:
        assert same is replacement


async def test_a_health_check_that_raises_counts_as_unhealthy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_check(conn: Conn) -> bool:
        raise ConnectionError("ping failed")

    pool = Pool(Factory(), max_size=1, health_check=broken_check)
    async with pool.acquire():
        pass
    with caplog.at_level(logging.DEBUG, logger="corral.pool"):
        async with pool.acquire() as conn:
            assert conn.number == 1
    assert "ping failed" in caplog.text


@virtual_time
async def test_idle_objects_are_closed_after_max_idle_down_to_min_size() -> None:
    factory = Factory()
    pool = Pool(factory, max_size=3, min_size=1, max_idle=10, close=factory.close)
    async with pool.acquire(), pool.acquire(), pool.acquire():
        pass
    assert counts(pool) == (3, 3, 0, 0)
    await asyncio.sleep(9.9)
    assert counts(pool) == (3, 3, 0, 0)
    await asyncio.sleep(0.1)
    await wait_all_tasks_blocked()
    assert counts(pool) == (1, 1, 0, 0)
    assert sorted(factory.closed) == [1, 2]  # the oldest idle ones; the newest stays
    await asyncio.sleep(100)
    assert counts(pool) == (1, 1, 0, 0)


@virtual_time
async def test_an_object_idle_past_max_idle_is_not_lent() -> None:
    factory = Factory()
    pool = Pool(factory, max_size=1, min_size=1, max_idle=5)
    async with pool.acquire():
        pass
    await asyncio.sleep(5)  # min_size keeps it from the reaper, not from expiring
    async with pool.acquire() as conn:
        assert conn.number == 1
    assert pool.statistics().discarded == 1


@virtual_time
async def test_entering_the_pool_warms_min_size_objects_and_leaving_closes_it() -> None:
    factory = Factory(delay=1)
    async with Pool(factory, max_size=4, min_size=2, close=factory.close) as pool:
        assert counts(pool) == (2, 2, 0, 0)
        async with pool.acquire() as conn:
            assert conn.number in (0, 1)
    assert sorted(factory.closed) == [0, 1]
    with pytest.raises(ClosedResourceError):
        async with pool.acquire():
            pass


@virtual_time
async def test_a_warm_pool_replaces_dropped_objects_up_to_min_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = Factory(delay=1)
    async with Pool(factory, max_size=3, min_size=2) as pool:
        with pytest.raises(KeyError):
            async with pool.acquire():
                raise KeyError
        assert pool.statistics().discarded == 1
        await asyncio.sleep(1.5)  # the replacement takes 1 s
        assert counts(pool) == (2, 2, 0, 0)
        assert pool.statistics().created == 3
        factory.error = ConnectionRefusedError("no server")
        with caplog.at_level(logging.WARNING, logger="corral.pool"):
            with pytest.raises(KeyError):
                async with pool.acquire():
                    raise KeyError
            await asyncio.sleep(1.5)
        assert "refilling <Pool" in caplog.text
        assert counts(pool) == (1, 1, 0, 0)


async def test_a_factory_error_reaches_the_caller_and_frees_the_slot() -> None:
    factory = Factory()
    factory.error = ConnectionRefusedError("no server")
    pool = Pool(factory, max_size=1)
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            async with pool.acquire():
                pass
    assert counts(pool) == (0, 0, 0, 0)
    factory.error = None
    async with pool.acquire() as conn:
        assert conn.number == 0


async def test_a_failed_warm_up_closes_the_pool() -> None:
    factory = Factory()
    pool = Pool(factory, max_size=2, min_size=2, close=factory.close)
    original = factory.__call__

    async def second_fails() -> Conn:
        if factory.made:
            raise ConnectionRefusedError
        return await original()

    pool._factory = second_fails
    with pytest.raises(ConnectionRefusedError):
        async with pool:
            pass
    assert factory.closed == [0]
    assert counts(pool) == (0, 0, 0, 0)


@virtual_time
async def test_a_factory_error_lets_the_next_waiter_try() -> None:
    factory = Factory(delay=1)
    pool = Pool(factory, max_size=1)
    factory.error = TimeoutError("slow")
    first = asyncio.create_task(pool.acquire().__aenter__())
    await wait_all_tasks_blocked()

    async def second() -> int:
        async with pool.acquire() as conn:
            return conn.number

    waiter = asyncio.create_task(second())
    await wait_all_tasks_blocked()
    factory.error = None
    with pytest.raises(TimeoutError):
        await first
    assert await waiter == 0


# -- cancellation -----------------------------------------------------------------------------


@virtual_time
async def test_a_caller_cancelled_while_waiting_holds_nothing() -> None:
    pool = Pool(Factory(), max_size=1)
    async with pool.acquire():
        with corral.move_on_after(5) as scope:
            async with pool.acquire():
                pytest.fail("the only object is in use")
        assert scope.cancelled_caught
        assert counts(pool) == (1, 0, 1, 0)
    assert counts(pool) == (1, 1, 0, 0)


@virtual_time
@pytest.mark.parametrize(
    ("error", "next_gets"),
    [(None, 0), (KeyError, 1)],
    ids=["object handed over", "room to make one handed over"],
)
async def test_what_a_cancelled_waiter_was_handed_goes_to_the_next_one(
    error: type[BaseException] | None, next_gets: int
) -> None:
    pool = Pool(Factory(), max_size=1)
    got: list[int] = []

    async def use() -> None:
        async with pool.acquire() as conn:
            got.append(conn.number)

    lease = pool.acquire()
    await lease.__aenter__()
    first = asyncio.create_task(use())
    second = asyncio.create_task(use())
    await wait_all_tasks_blocked()
    # Returned (or, with an error, dropped: room to make one), handed to first...
    await lease.__aexit__(error, None if error is None else error(), None)
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(first, second, return_exceptions=True)
    assert first.cancelled()
    assert got == [next_gets]
    assert counts(pool) == (1, 1, 0, 0)


@virtual_time
async def test_a_caller_cancelled_while_the_factory_runs_frees_the_slot() -> None:
    factory = Factory(delay=10)
    pool = Pool(factory, max_size=1)
    with corral.move_on_after(1):
        async with pool.acquire():
            pytest.fail("the factory takes 10 s")
    assert counts(pool) == (0, 0, 0, 0)
    factory.delay = 0
    async with pool.acquire() as conn:
        assert conn.number == 0


@virtual_time
async def test_a_caller_cancelled_during_the_health_check_drops_the_object() -> None:
    async def slow_check(conn: Conn) -> bool:
        await asyncio.sleep(10)
        return True

    factory = Factory()
    pool = Pool(factory, max_size=1, health_check=slow_check, close=factory.close)
    async with pool.acquire():
        pass
    with corral.move_on_after(1):
        async with pool.acquire():
            pytest.fail("the check takes 10 s")
    await wait_all_tasks_blocked()
    assert counts(pool) == (0, 0, 0, 0)
    assert factory.closed == [0]


@virtual_time
async def test_cancellation_inside_the_block_drops_the_object() -> None:
    pool = Pool(Factory(), max_size=1)
    with corral.move_on_after(1):
        async with pool.acquire():
            await asyncio.sleep(5)
    assert pool.statistics().discarded == 1
    assert counts(pool) == (0, 0, 0, 0)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=12))
def test_no_slot_leaks_whoever_is_cancelled_and_whatever_breaks(
    script: list[tuple[bool, int]],
) -> None:
    """Callers that each hold an object for a while, may be cancelled early or break it;
    afterwards every object is idle, the pool never exceeded max_size, and the line is
    empty."""

    async def run() -> None:
        factory = Factory(delay=0.5)
        pool = Pool(factory, max_size=2)
        most = 0

        async def caller(breaks: bool, hold: int) -> None:
            nonlocal most
            async with pool.acquire():
                most = max(most, pool.statistics().in_use)
                await asyncio.sleep(hold)
                if breaks:
                    raise KeyError

        tasks = [asyncio.create_task(caller(breaks, hold)) for breaks, hold in script]
        await asyncio.sleep(1.25)
        for index, task in enumerate(tasks):
            if index % 3 == 1:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        size, idle, in_use, waiting = counts(pool)
        assert (in_use, waiting) == (0, 0)
        assert size == idle <= 2
        assert most <= 2
        snapshot = pool.statistics()
        assert snapshot.created - snapshot.discarded == size

    corral.testing.run(run)


# -- closing ----------------------------------------------------------------------------------


@virtual_time
async def test_aclose_fails_waiters_closes_idle_objects_and_in_use_ones_on_return() -> None:
    factory = Factory()
    pool = Pool(factory, max_size=2, close=factory.close)
    async with pool.acquire():
        pass
    lease = pool.acquire()
    held = await lease.__aenter__()
    other = await pool.acquire().__aenter__()
    waiter = asyncio.create_task(pool.acquire().__aenter__())
    await wait_all_tasks_blocked()
    await pool.aclose()
    with pytest.raises(ClosedResourceError, match="was closed"):
        await waiter
    assert factory.closed == []  # both objects are in use
    await lease.__aexit__(None, None, None)
    await wait_all_tasks_blocked()
    assert factory.closed == [held.number]
    assert repr(pool).startswith("<Pool closed 1/2 objects, 1 in use")
    assert other.number != held.number
    await pool.aclose()  # closing twice is fine


async def test_a_close_function_that_fails_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def close(conn: Conn) -> None:
        raise RuntimeError("already gone")

    pool = Pool(Factory(), max_size=1, close=close)
    async with pool.acquire():
        pass
    with caplog.at_level(logging.WARNING, logger="corral.pool"):
        await pool.aclose()
    assert "closing pooled object Conn(0) failed" in caplog.text


async def test_a_lease_cannot_be_entered_twice() -> None:
    pool = Pool(Factory(), max_size=2)
    lease = pool.acquire()
    async with lease:
        with pytest.raises(UsageError, match="already been entered"):
            await lease.__aenter__()


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, Pool):
            self.events.append(name)

    def task_parked(self, task: object, on: object) -> None:
        if isinstance(on, Pool):
            self.events.append("parked")

    def task_woken(self, task: object, on: object) -> None:
        if isinstance(on, Pool):
            self.events.append("woken")


async def test_reports_objects_made_lent_and_dropped() -> None:
    pool = Pool(Factory(), max_size=1)
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        async with pool.acquire():
            pass
        with pytest.raises(KeyError):
            async with pool.acquire():
                raise KeyError
        await pool.aclose()
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.events == ["created", "acquired", "acquired", "discarded", "closed"]


@virtual_time
async def test_a_waiting_caller_is_reported_parked_on_the_pool() -> None:
    pool = Pool(Factory(), max_size=1)
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        async with pool.acquire():
            waiter = asyncio.create_task(pool.acquire().__aenter__())
            await wait_all_tasks_blocked()
            assert recorder.events[-1] == "parked"
        await waiter
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.events == ["created", "acquired", "parked", "woken", "acquired"]


# -- bad input ----------------------------------------------------------------------------------


async def _make() -> int:
    return 1


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_size": 0}, InvalidArgumentError, "max_size must be at least 1, got 0"),
        ({"max_size": math.nan}, InvalidArgumentError, "max_size must be a whole number"),
        ({"max_size": "2"}, ArgumentTypeError, "max_size must be an int"),
        ({"max_size": 1, "min_size": -1}, InvalidArgumentError, "min_size must be at least 0"),
        ({"max_size": 1, "min_size": 2}, InvalidArgumentError, "min_size must not exceed"),
        ({"max_size": 1, "max_idle": 0}, InvalidArgumentError, "max_idle must be above zero"),
        ({"max_size": 1, "max_idle": -1}, InvalidArgumentError, "max_idle must not be negative"),
        ({"max_size": 1, "health_check": 1}, ArgumentTypeError, "health_check must be"),
        ({"max_size": 1, "close": "x"}, ArgumentTypeError, "close must be a function"),
    ],
)
def test_bad_options_are_refused(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Pool(_make, **options)


async def test_a_coroutine_object_as_factory_is_refused() -> None:
    coroutine = _make()
    with pytest.raises(ArgumentTypeError, match="coroutine object"):
        Pool(coroutine, max_size=1)  # type: ignore[arg-type]
