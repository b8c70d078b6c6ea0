"""TaskGroup: structured concurrency, error groups, start(), handles, bad input."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

import corral
from corral import TASK_STATUS_IGNORED, CancelReason, CancelSource, TaskGroup, TaskStatus
from corral.errors import ArgumentTypeError, UsageError
from corral.testing import VirtualClock


async def test_waits_for_every_child(virtual_clock: VirtualClock) -> None:
    done: list[int] = []

    async def child(n: int) -> None:
        await asyncio.sleep(n)
        done.append(n)

    async with TaskGroup() as tg:
        for n in (3, 1, 2):
            tg.start_soon(child, n)
    assert done == [1, 2, 3]


async def test_create_task_returns_awaitable_handle() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async with TaskGroup() as tg:
        handle = tg.create_task(double(21), name="doubler")
        assert handle.name == "doubler"
        assert await handle == 42
    assert handle.done()
    assert handle.result() == 42
    assert handle.exception() is None
    assert not handle.cancelled()
    assert repr(handle) == "<TaskHandle 'doubler' done>"


async def test_child_failure_cancels_siblings_and_body(virtual_clock: VirtualClock) -> None:
    cancelled: list[str] = []

    async def failing() -> None:
        await asyncio.sleep(1)
        raise ValueError("boom")

    async def sibling() -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError as exc:
            reason = CancelReason.of(exc)
            assert reason is not None
            cancelled.append(reason.source.value)
            raise

    with pytest.raises(ExceptionGroup) as info:
        async with TaskGroup() as tg:
            tg.start_soon(failing)
            tg.start_soon(sibling)
            try:
                await asyncio.sleep(100)
            except asyncio.CancelledError:
                cancelled.append("body")
                raise
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert sorted(cancelled) == ["body", CancelSource.SIBLING_FAILED.value]
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_errors_collected_in_order(virtual_clock: VirtualClock) -> None:
    async def fail_after(delay: float, exc: Exception) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            # a child that is already failing when cancelled reports its own error
            raise exc

    with pytest.raises(ExceptionGroup) as info:
        async with TaskGroup() as tg:
            tg.start_soon(fail_after, 2, KeyError("b"))
            tg.start_soon(fail_after, 1, ValueError("a"))
    assert [type(e) for e in info.value.exceptions] == [ValueError, KeyError]


async def test_body_error_comes_first() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await asyncio.sleep(100)
        finally:
            raise KeyError("child")

    with pytest.raises(ExceptionGroup) as info:
        async with TaskGroup() as tg:
            tg.start_soon(fails_when_cancelled)
            await asyncio.sleep(0)
            raise ValueError("body")
    assert [type(e) for e in info.value.exceptions] == [ValueError, KeyError]


async def test_except_star_catches_child_errors() -> None:
    async def failing() -> None:
        raise ValueError("x")

    caught: list[Exception] = []
    try:
        async with TaskGroup() as tg:
            tg.start_soon(failing)
    except* ValueError as group:
        caught.extend(group.exceptions)
    assert [str(e) for e in caught] == ["x"]


async def test_cancel_group_exits_quietly(virtual_clock: VirtualClock) -> None:
    async def forever() -> None:
        await asyncio.sleep(math_inf())

    async with TaskGroup() as tg:
        tg.start_soon(forever)
        tg.start_soon(forever)
        await asyncio.sleep(1)
        tg.cancel("done here")
        await asyncio.sleep(1)
        pytest.fail("the body kept running after tg.cancel()")
    assert tg.cancel_scope.cancelled_caught
    assert tg.statistics().running == 0


def math_inf() -> float:
    return float("inf")


async def test_cancelling_the_host_cancels_children(virtual_clock: VirtualClock) -> None:
    children_cancelled = 0
    started = asyncio.Event()

    async def child() -> None:
        nonlocal children_cancelled
        started.set()
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            children_cancelled += 1
            raise

    async def host() -> None:
        async with TaskGroup() as tg:
            tg.start_soon(child)
            tg.start_soon(child)
            await asyncio.sleep(100)

    task = asyncio.create_task(host())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children_cancelled == 2


async def test_host_cancelled_while_waiting_in_exit(virtual_clock: VirtualClock) -> None:
    async def child() -> None:
        await asyncio.sleep(100)

    async def host() -> None:
        async with TaskGroup() as tg:
            tg.start_soon(child)

    task = asyncio.create_task(host())
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_enclosing_scope_cancels_group(virtual_clock: VirtualClock) -> None:
    async def child() -> None:
        await asyncio.sleep(100)

    with corral.move_on_after(5) as scope:
        async with TaskGroup() as tg:
            tg.start_soon(child)
    assert scope.cancelled_caught


async def test_children_are_level_cancelled(virtual_clock: VirtualClock) -> None:
    attempts = 0

    async def stubborn() -> None:
        nonlocal attempts
        for _ in range(3):
            try:
                await asyncio.sleep(100)
            except asyncio.CancelledError:
                attempts += 1
        await asyncio.sleep(100)

    async with TaskGroup() as tg:
        tg.start_soon(stubborn)
        await asyncio.sleep(1)
        tg.cancel()
    assert attempts == 3


async def test_start_returns_started_value() -> None:
    events: list[str] = []

    async def server(port: int, *, task_status: TaskStatus[int] = TASK_STATUS_IGNORED) -> None:
        events.append("binding")
        await asyncio.sleep(0)
        task_status.started(port)
        events.append("serving")
        await asyncio.sleep(0)
        events.append("stopped")

    async with TaskGroup() as tg:
        port = await tg.start(server, 8080)
        events.append(f"started on {port}")
    assert events[:2] == ["binding", "started on 8080"] or events[:3] == [
        "binding",
        "serving",
        "started on 8080",
    ]
    assert events[-1] == "stopped"


async def test_start_error_is_raised_by_start_not_the_group() -> None:
    async def broken(*, task_status: TaskStatus[None]) -> None:
        raise OSError("port in use")

    async with TaskGroup() as tg:
        with pytest.raises(OSError, match="port in use"):
            await tg.start(broken)
    assert tg.statistics().failed == 0


async def test_start_child_that_never_reports_ready() -> None:
    async def lazy(*, task_status: TaskStatus[None]) -> None:
        await asyncio.sleep(0)

    async with TaskGroup() as tg:
        with pytest.raises(UsageError, match=r"without calling task_status\.started"):
            await tg.start(lazy)


async def test_started_twice_is_refused() -> None:
    async def twice(*, task_status: TaskStatus[int]) -> None:
        task_status.started(1)
        with pytest.raises(UsageError, match="twice"):
            task_status.started(2)

    async with TaskGroup() as tg:
        assert await tg.start(twice) == 1


async def test_cancelling_start_cancels_the_child(virtual_clock: VirtualClock) -> None:
    child_cancelled = False

    async def slow_start(*, task_status: TaskStatus[None]) -> None:
        nonlocal child_cancelled
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            child_cancelled = True
            raise

    async with TaskGroup() as tg:
        with corral.move_on_after(1):
            await tg.start(slow_start)
    assert child_cancelled


async def test_task_status_ignored_makes_started_a_no_op() -> None:
    TASK_STATUS_IGNORED.started(5)
    assert repr(TASK_STATUS_IGNORED) == "<TaskStatus ignored>"


async def test_children_may_spawn_siblings_while_the_group_waits() -> None:
    order: list[str] = []

    async def second() -> None:
        order.append("second")

    async def first(tg: TaskGroup) -> None:
        await asyncio.sleep(0)
        order.append("first")
        tg.start_soon(second)  # the body has finished: the group is waiting in its exit

    async with TaskGroup() as tg:
        tg.start_soon(first, tg)
    assert order == ["first", "second"]


async def test_handle_cancel_is_not_a_group_failure() -> None:
    async with TaskGroup() as tg:
        handle = tg.create_task(asyncio.sleep(100))
        await asyncio.sleep(0)
        assert handle.cancel("not needed")
    assert handle.cancelled()
    assert repr(handle).endswith("cancelled>")
    assert tg.statistics().failed == 0


async def test_awaiting_a_handle_is_cancel_safe(virtual_clock: VirtualClock) -> None:
    async def slow() -> str:
        await asyncio.sleep(10)
        return "done"

    async with TaskGroup() as tg:
        handle = tg.create_task(slow())
        with corral.move_on_after(1):
            await handle
        assert not handle.done()
    assert handle.result() == "done"


async def test_children_are_not_garbage_collected_while_running() -> None:
    refs: list[weakref.ref[Any]] = []
    release = asyncio.Event()

    async def child() -> None:
        await release.wait()

    async with TaskGroup() as tg:
        for _ in range(10):
            tg.start_soon(child)
        await asyncio.sleep(0)
        refs.extend(weakref.ref(task) for task in tg._children)
        gc.collect()
        assert all(ref() is not None for ref in refs)
        release.set()


async def test_nested_groups() -> None:
    results: list[str] = []

    async def leaf(name: str) -> None:
        await asyncio.sleep(0)
        results.append(name)

    async def branch(name: str) -> None:
        async with TaskGroup() as inner:
            inner.start_soon(leaf, f"{name}.1")
            inner.start_soon(leaf, f"{name}.2")

    async with TaskGroup() as tg:
        tg.start_soon(branch, "a")
        tg.start_soon(branch, "b")
    assert sorted(results) == ["a.1", "a.2", "b.1", "b.2"]


async def test_inner_group_failure_propagates_as_nested_group() -> None:
    async def failing() -> None:
        raise ValueError("deep")

    async def branch() -> None:
        async with TaskGroup() as inner:
            inner.start_soon(failing)

    with pytest.raises(ExceptionGroup) as info:
        async with TaskGroup() as tg:
            tg.start_soon(branch)
    inner_group = info.value.exceptions[0]
    assert isinstance(inner_group, ExceptionGroup)
    assert isinstance(inner_group.exceptions[0], ValueError)


async def test_statistics_and_repr() -> None:
    release = asyncio.Event()

    async def child() -> None:
        await release.wait()

    tg = TaskGroup()
    assert repr(tg) == "<TaskGroup new, 0 running>"
    async with tg:
        tg.start_soon(child)
        tg.start_soon(child)
        stats = tg.statistics()
        assert (stats.state, stats.running, stats.spawned) == ("active", 2, 2)
        assert repr(tg) == "<TaskGroup active, 2 running>"
        release.set()
    assert tg.statistics().state == "closed"
    assert repr(tg) == "<TaskGroup closed, 0 running>"


async def test_start_soon_refuses_a_coroutine_object() -> None:
    async def work() -> None:
        pass

    async with TaskGroup() as tg:
        coro = work()
        with pytest.raises(ArgumentTypeError, match=r"not a coroutine object.*start_soon\(fn"):
            tg.start_soon(coro)  # type: ignore[arg-type]


async def test_start_soon_refuses_a_sync_function() -> None:
    def sync(x: int, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> int:
        return x

    async with TaskGroup() as tg:
        with pytest.raises(ArgumentTypeError, match=r"needs an async function.*returned int"):
            tg.start_soon(sync, 1)  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="async function"):
            await tg.start(sync, 1)  # type: ignore[arg-type]


async def test_start_needs_a_task_status_parameter() -> None:
    async def plain() -> None:
        pass

    async with TaskGroup() as tg:
        with pytest.raises(ArgumentTypeError, match="task_status"):
            await tg.start(plain)


async def test_start_soon_keeps_other_type_errors() -> None:
    async def needs_two(a: int, b: int) -> None:
        pass

    async with TaskGroup() as tg:
        with pytest.raises(TypeError, match="missing 1 required positional argument"):
            tg.start_soon(needs_two, 1)


async def test_create_task_refuses_a_function() -> None:
    async def work() -> None:
        pass

    async with TaskGroup() as tg:
        with pytest.raises(ArgumentTypeError, match=r"create_task\(\) takes a coroutine object"):
            tg.create_task(work)  # type: ignore[arg-type]


async def test_use_after_exit_is_refused() -> None:
    async def work() -> None:
        pass

    async with TaskGroup() as tg:
        pass
    with pytest.raises(UsageError, match="already exited"):
        tg.start_soon(work)
    coro = work()
    with pytest.raises(UsageError, match="already exited"):
        tg.create_task(coro)
    with pytest.raises(UsageError, match="already exited"):
        await tg.start(work)
    with pytest.raises(UsageError, match="single use"):
        async with tg:
            pass


async def test_use_before_enter_is_refused() -> None:
    async def work() -> None:
        pass

    with pytest.raises(UsageError, match="not entered"):
        TaskGroup().start_soon(work)


async def test_group_with_no_children_and_a_cancelled_scope() -> None:
    async with TaskGroup() as tg:
        tg.cancel()
    assert not tg.cancel_scope.cancelled_caught


@pytest.mark.corral_loops("eager")
async def test_eager_children_that_enter_scopes() -> None:
    async def child() -> bool:
        with corral.move_on_after(10) as scope:
            scope.cancel()
            await asyncio.sleep(1)
        return scope.cancelled_caught

    async with TaskGroup() as tg:
        handle = tg.create_task(child())
        tg.cancel_scope.deadline = asyncio.get_running_loop().time() + 100
    assert handle.result() is True


@pytest.mark.corral_loops("eager")
async def test_an_eager_child_that_cancels_its_group_leaves_no_cancellation_behind() -> None:
    # The child runs to its end inside start_soon(), while the host is on the stack; the
    # host then leaves the group without waiting. Its next wait must not be cancelled.
    async def winner(group: TaskGroup) -> None:
        group.cancel("done early")

    async with TaskGroup() as tg:
        tg.start_soon(winner, tg)
    assert tg.cancel_scope.cancel_called
    assert await asyncio.sleep(0, "after") == "after"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
