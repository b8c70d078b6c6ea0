"""CancelScope: level-triggered cancellation, deadlines, shielding, asyncio interop."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

import pytest

import corral
from corral import CancelReason, CancelScope, CancelSource
from corral.errors import ArgumentTypeError, DeadlineExceeded, InvalidArgumentError, UsageError
from corral.testing import VirtualClock


def cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


async def test_cancelled_scope_is_level_triggered() -> None:
    caught = []
    with CancelScope() as scope:
        scope.cancel("enough")
        for _ in range(3):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as exc:
                caught.append(CancelReason.of(exc))
        await asyncio.sleep(10)
        pytest.fail("a wait inside a cancelled scope returned")
    assert len(caught) == 3
    assert all(reason is not None and reason.reason == "enough" for reason in caught)
    assert scope.cancelled_caught
    assert cancelling() == 0


async def test_plain_asyncio_primitives_inside_are_cancelled_too() -> None:
    event = asyncio.Event()
    queue: asyncio.Queue[int] = asyncio.Queue()
    with CancelScope() as scope:
        scope.cancel()
        with pytest.raises(asyncio.CancelledError):
            await event.wait()
        with pytest.raises(asyncio.CancelledError):
            await queue.get()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.sleep(0)
    # every error was caught inside, so the block ended normally
    assert not scope.cancelled_caught
    assert cancelling() == 0
    await asyncio.sleep(0)  # and nothing is left pending against this task


async def test_uncancelled_scope_lets_the_block_finish() -> None:
    with CancelScope() as scope:
        await asyncio.sleep(0)
    assert not scope.cancelled_caught
    assert not scope.cancel_called


async def test_move_on_after_cuts_the_block_short(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with corral.move_on_after(30) as scope:
        await asyncio.sleep(3600)
    assert scope.cancelled_caught
    assert loop.time() - start == pytest.approx(30)
    reason = scope.cancel_reason
    assert reason is not None
    assert reason.source is CancelSource.DEADLINE


async def test_move_on_after_accepts_timedelta(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with corral.move_on_after(timedelta(minutes=2)):
        await asyncio.sleep(3600)
    assert loop.time() - start == pytest.approx(120)


async def test_move_on_at_uses_absolute_loop_time(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    with corral.move_on_at(deadline) as scope:
        await asyncio.sleep(100)
    assert scope.cancelled_caught
    assert loop.time() == pytest.approx(deadline)


async def test_fail_after_raises_deadline_exceeded(virtual_clock: VirtualClock) -> None:
    with pytest.raises(DeadlineExceeded) as info, corral.fail_after(1):
        await asyncio.sleep(10)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    assert cancelling() == 0


async def test_fail_at_raises_timeout_error(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError), corral.fail_at(loop.time() + 1):
        await asyncio.sleep(10)


async def test_fail_after_is_silent_when_cancelled_explicitly() -> None:
    with corral.fail_after(100) as scope:
        scope.cancel()
        await asyncio.sleep(10)
    assert scope.cancelled_caught


async def test_fail_after_does_not_raise_when_the_block_finishes(
    virtual_clock: VirtualClock,
) -> None:
    with corral.fail_after(10) as scope:
        await asyncio.sleep(1)
    assert not scope.cancelled_caught


async def test_deadline_can_move_while_active(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with CancelScope(deadline=start + 100) as scope:
        scope.deadline = start + 3
        await asyncio.sleep(50)
    assert loop.time() - start == pytest.approx(3)
    with CancelScope(deadline=loop.time() + 1) as later:
        later.deadline = math.inf
        await asyncio.sleep(5)
    assert not later.cancelled_caught


async def test_deadline_in_the_past_cancels_at_once() -> None:
    loop = asyncio.get_running_loop()
    with CancelScope(deadline=loop.time() - 1) as scope:
        await asyncio.sleep(10)
    assert scope.cancelled_caught
    with CancelScope() as moved:
        moved.deadline = loop.time() - 1
        await asyncio.sleep(10)
    assert moved.cancelled_caught


async def test_cancel_before_enter_starts_cancelled() -> None:
    scope = CancelScope()
    scope.cancel("early")
    with scope:
        await asyncio.sleep(10)
    assert scope.cancelled_caught


async def test_cancel_after_exit_does_nothing() -> None:
    with CancelScope() as scope:
        pass
    scope.cancel()
    assert scope.cancel_called
    assert not scope.cancelled_caught
    await asyncio.sleep(0)  # no stray cancellation reaches us


async def test_first_reason_wins() -> None:
    with CancelScope() as scope:
        scope.cancel("first")
        scope.cancel("second")
        await asyncio.sleep(1)
    assert scope.cancel_reason is not None
    assert scope.cancel_reason.reason == "first"


async def test_async_with_form() -> None:
    async with CancelScope() as scope:
        scope.cancel()
        await asyncio.sleep(10)
    assert scope.cancelled_caught


async def test_outermost_cancelled_scope_catches() -> None:
    reached_after_inner = False
    with CancelScope() as outer:
        with CancelScope() as inner:
            outer.cancel()
            inner.cancel()
            await asyncio.sleep(10)
        reached_after_inner = True
    assert not reached_after_inner
    assert outer.cancelled_caught
    assert not inner.cancelled_caught
    assert cancelling() == 0


async def test_outer_cancellation_passes_through_inner_scope() -> None:
    with CancelScope() as outer:
        with CancelScope() as inner:
            outer.cancel()
            await asyncio.sleep(10)
    assert outer.cancelled_caught
    assert not inner.cancelled_caught
    assert not inner.cancel_called


async def test_cancellation_returns_after_leaving_a_cancelled_inner_scope() -> None:
    with CancelScope() as outer:
        with CancelScope() as inner:
            inner.cancel()
            await asyncio.sleep(10)
        assert inner.cancelled_caught
        outer.cancel()
        await asyncio.sleep(10)
    assert outer.cancelled_caught


async def test_shield_keeps_outer_cancellation_out(virtual_clock: VirtualClock) -> None:
    shielded_work_done = False
    with CancelScope() as outer:
        outer.cancel()
        with CancelScope(shield=True):
            await asyncio.sleep(5)
            shielded_work_done = True
        await asyncio.sleep(10)
        pytest.fail("the cancellation did not come back after the shield")
    assert shielded_work_done
    assert outer.cancelled_caught


async def test_shielded_scope_still_obeys_its_own_deadline(virtual_clock: VirtualClock) -> None:
    with CancelScope() as outer:
        outer.cancel()
        with corral.move_on_after(1, shield=True) as inner:
            await asyncio.sleep(10)
        assert inner.cancelled_caught
    assert outer.cancelled_caught


async def test_lowering_the_shield_lets_cancellation_in() -> None:
    with CancelScope() as outer:
        with CancelScope(shield=True) as inner:
            outer.cancel()
            await asyncio.sleep(0)
            inner.shield = False
            await asyncio.sleep(10)
            pytest.fail("lowered shield did not let the cancellation in")
    assert outer.cancelled_caught


async def test_scope_inside_asyncio_timeout(virtual_clock: VirtualClock) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            with CancelScope() as scope:
                await asyncio.sleep(10)
    assert not scope.cancelled_caught
    assert cancelling() == 0


async def test_asyncio_timeout_inside_scope(virtual_clock: VirtualClock) -> None:
    with corral.move_on_after(1) as scope:
        async with asyncio.timeout(10):
            await asyncio.sleep(100)
    assert scope.cancelled_caught
    assert cancelling() == 0


async def test_inner_asyncio_timeout_fires_first(virtual_clock: VirtualClock) -> None:
    with corral.move_on_after(10) as scope:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await asyncio.sleep(100)
    assert not scope.cancelled_caught


async def test_external_task_cancel_is_not_swallowed() -> None:
    entered = asyncio.Event()

    async def victim() -> None:
        with CancelScope() as scope:
            entered.set()
            scope.cancel()
            try:
                await asyncio.sleep(10)
            finally:
                asyncio.current_task().cancel()  # type: ignore[union-attr]
        pytest.fail("an outside Task.cancel() was swallowed by the scope")

    task = asyncio.create_task(victim())
    await entered.wait()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_task_cancel_from_outside_passes_through_scope() -> None:
    started = asyncio.Event()

    async def victim() -> None:
        with CancelScope():
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(victim())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_asyncio_taskgroup_inside_scope(virtual_clock: VirtualClock) -> None:
    finished = []

    async def child(delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            finished.append(delay)

    with corral.move_on_after(1) as scope:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(child(5))
            tg.create_task(child(10))
    assert scope.cancelled_caught
    assert sorted(finished) == [5, 10]
    assert cancelling() == 0


async def test_scope_inside_asyncio_taskgroup_child(virtual_clock: VirtualClock) -> None:
    async def child() -> bool:
        with corral.move_on_after(1) as scope:
            await asyncio.sleep(10)
        return scope.cancelled_caught

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(child())
    assert task.result() is True


async def test_cancel_message_carries_reason_and_source() -> None:
    with CancelScope() as scope:
        scope.cancel("shutting down")
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError as exc:
            reason = CancelReason.of(exc)
            assert isinstance(exc.args[0], str)
            assert "shutting down" in str(exc)
            raise
    assert reason is not None
    assert reason.source is CancelSource.EXPLICIT
    assert reason.origin is scope
    assert CancelReason.of(asyncio.CancelledError()) is None


async def test_current_effective_deadline(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    now = loop.time()
    assert corral.current_effective_deadline() == math.inf
    with CancelScope(deadline=now + 10):
        assert corral.current_effective_deadline() == now + 10
        with CancelScope(deadline=now + 20):
            assert corral.current_effective_deadline() == now + 10  # inner never extends
            with CancelScope(deadline=now + 30, shield=True):
                assert corral.current_effective_deadline() == now + 30
        with CancelScope(deadline=now + 5):
            assert corral.current_effective_deadline() == now + 5
    with CancelScope() as scope:
        scope.cancel()
        assert corral.current_effective_deadline() == -math.inf
        await asyncio.sleep(0)


async def test_effective_deadline_reaches_task_group_children(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    seen: list[float] = []

    async def child() -> None:
        seen.append(corral.current_effective_deadline())

    with corral.move_on_after(7):
        async with corral.TaskGroup() as tg:
            tg.start_soon(child)
    assert seen == [pytest.approx(loop.time() + 7)]


def test_bad_deadlines_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="NaN"):
        CancelScope(deadline=math.nan)
    with pytest.raises(ArgumentTypeError, match="deadline"):
        CancelScope(deadline="soon")  # type: ignore[arg-type]


async def test_bad_delays_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="NaN"):
        corral.move_on_after(math.nan)
    with pytest.raises(InvalidArgumentError, match="negative"):
        corral.fail_after(-1)
    with pytest.raises(ArgumentTypeError, match="delay"):
        corral.move_on_after("5")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="NaN"):
        corral.move_on_at(math.nan)
    scope = CancelScope()
    with pytest.raises(InvalidArgumentError):
        scope.deadline = math.nan


def test_timeouts_need_a_running_loop() -> None:
    with pytest.raises(UsageError, match="async code"):
        corral.move_on_after(1)


async def test_entering_twice_is_refused() -> None:
    scope = CancelScope()
    with scope:
        pass
    with pytest.raises(UsageError, match="already entered"), scope:
        pass


def test_entering_outside_a_task_is_refused() -> None:
    with pytest.raises(UsageError, match="inside a running asyncio task"), CancelScope():
        pass


async def test_exiting_in_another_task_is_refused() -> None:
    scope = CancelScope()
    scope.__enter__()

    async def other() -> None:
        scope.__exit__(None, None, None)

    with pytest.raises(UsageError, match="task that entered it"):
        await asyncio.create_task(other())
    scope.__exit__(None, None, None)


async def test_exiting_out_of_order_is_refused() -> None:
    outer = CancelScope()
    inner = CancelScope()
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(UsageError, match="out of order"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)
    with pytest.raises(UsageError, match="not active"):
        outer.__exit__(None, None, None)


async def test_repr_and_state() -> None:
    scope = CancelScope(deadline=1e9, shield=True)
    assert repr(scope) == "<CancelScope new, deadline=1e+09, shielded>"
    states = [scope.active]
    with scope:
        states.append(scope.active)
        scope.cancel()
        assert "active, cancelled (explicit)" in repr(scope)
        await asyncio.sleep(0)
    states.append(scope.active)
    assert states == [False, True, False]
    assert repr(scope).startswith("<CancelScope exited")


async def test_statistics() -> None:
    scope = CancelScope(deadline=1e9)
    assert scope.statistics().state == "new"
    with scope:
        with CancelScope():
            inner_view = scope.statistics()
        own_view = scope.statistics()
        scope.cancel("stop")
        await asyncio.sleep(0)
    assert (inner_view.tasks, inner_view.child_scopes) == (0, 1)
    assert (own_view.tasks, own_view.child_scopes) == (1, 0)
    done = scope.statistics()
    assert done.state == "exited"
    assert done.cancel_called
    assert done.cancelled_caught
    assert done.reason is not None
    assert "stop" in done.reason


async def test_corral_group_under_asyncio_timeout(virtual_clock: VirtualClock) -> None:
    cancelled = []

    async def child() -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1), corral.TaskGroup() as tg:
            tg.start_soon(child)
            tg.start_soon(child)
    assert cancelled == [True, True]
    assert cancelling() == 0


async def test_scope_in_a_task_that_asyncio_taskgroup_cancels(
    virtual_clock: VirtualClock,
) -> None:
    async def failing() -> None:
        await asyncio.sleep(1)
        raise ValueError("sibling failed")

    async def scoped() -> None:
        with CancelScope() as scope:
            scope.deadline = asyncio.get_running_loop().time() + 50
            await asyncio.sleep(100)
        pytest.fail("the scope swallowed asyncio.TaskGroup's cancellation")

    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(failing())
            tg.create_task(scoped())
    assert [type(e) for e in info.value.exceptions] == [ValueError]


async def test_many_scopes_with_deadlines_fire_in_order(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    fired: list[float] = []

    async def sleeper(delay: float) -> None:
        with corral.move_on_after(delay):
            await asyncio.sleep(1000)
        fired.append(loop.time() - start)

    async with corral.TaskGroup() as tg:
        for delay in (5, 1, 3, 2, 4):
            tg.start_soon(sleeper, delay)
        # plenty of scopes that exit early leave dead entries in the deadline queue
        for _ in range(500):
            with corral.move_on_after(0.5):
                pass
    assert fired == [pytest.approx(d) for d in (1, 2, 3, 4, 5)]


@pytest.mark.corral_loops("eager")
async def test_a_scope_cancelled_by_an_eager_task_leaves_its_host_no_cancellation() -> None:
    # Under an eager task factory the new task runs inside create_task(), while the
    # scope's host is on the stack. The host leaves the scope without waiting, so the
    # cancellation never reaches it, and its next wait must not be cancelled either.
    async def cancel(scope: CancelScope) -> None:
        scope.cancel("from an eager task")

    with CancelScope() as scope:
        task = asyncio.get_running_loop().create_task(cancel(scope))
        assert task.done()
    assert scope.cancel_called
    assert not scope.cancelled_caught
    assert await asyncio.sleep(0, "after") == "after"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


@pytest.mark.corral_loops("eager")
async def test_a_host_that_waits_after_an_eager_task_cancelled_its_scope_is_cancelled() -> None:
    async def cancel(scope: CancelScope) -> None:
        scope.cancel("from an eager task")

    reached = []
    with CancelScope() as scope:
        asyncio.get_running_loop().create_task(cancel(scope))
        await asyncio.sleep(1)
        reached.append("after the wait")
    assert scope.cancelled_caught
    assert reached == []
