"""BlockingPortal: calls from sync threads, cancellation both ways, wrapped context managers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

import corral
from corral import BlockingPortal, start_blocking_portal, to_thread
from corral.errors import ArgumentTypeError, DeadlineExceeded, InvalidArgumentError, UsageError

WAIT = 10.0

var: contextvars.ContextVar[str] = contextvars.ContextVar("portal_var", default="unset")


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def test_call_runs_async_and_sync_functions_in_the_loop_thread() -> None:
    with start_blocking_portal() as portal:
        assert portal.call(add, 2, 3) == 5
        loop_thread = portal.call(threading.get_ident)
        assert loop_thread != threading.get_ident()


def test_errors_propagate_to_the_caller() -> None:
    async def fail() -> None:
        raise ValueError("from the loop")

    with start_blocking_portal() as portal, pytest.raises(ValueError, match="from the loop"):
        portal.call(fail)


def test_context_of_the_calling_thread_is_copied() -> None:
    async def read() -> str:
        return var.get()

    var.set("sync caller")
    with start_blocking_portal() as portal:
        assert portal.call(read) == "sync caller"


def test_start_task_soon_returns_a_concurrent_future() -> None:
    with start_blocking_portal() as portal:
        future = portal.start_task_soon(add, 20, 22, name="adder")
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(WAIT) == 42
        stats = portal.statistics()
        assert stats.state == "open"
        assert stats.started_tasks == 1


def test_cancelling_the_future_cancels_the_task() -> None:
    started = threading.Event()
    cleaned = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    with start_blocking_portal() as portal:
        future = portal.start_task_soon(forever)
        assert started.wait(WAIT)
        assert future.cancel()
        assert cleaned.wait(WAIT)
        with pytest.raises(concurrent.futures.CancelledError):
            future.result()


def test_timeout_in_the_caller_cancels_the_call_and_waits_for_it() -> None:
    started = threading.Event()
    cleaned = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    with start_blocking_portal() as portal:
        portal.call(asyncio.sleep, 0)  # the loop thread is up and running calls
        with pytest.raises(DeadlineExceeded, match="forever"):
            portal.call(forever, timeout=timedelta(milliseconds=20))
        # On a loaded machine the timeout may pass before the task even starts; then it
        # never runs. Either way, a task that started has cleaned up before call() returned.
        assert cleaned.is_set() == started.is_set()
        assert portal.statistics().running_tasks == 0


def test_an_own_timeout_error_is_not_mistaken_for_the_call_timeout() -> None:
    async def own() -> None:
        raise TimeoutError("mine")

    with start_blocking_portal() as portal, pytest.raises(TimeoutError, match="mine"):
        portal.call(own, timeout=WAIT)


def test_keyboard_interrupt_in_the_caller_cancels_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = threading.Event()
    cleaned = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    def interrupted_wait(self: concurrent.futures.Future[object], timeout: object = None) -> object:
        started.wait(WAIT)
        raise KeyboardInterrupt  # what Ctrl-C does to a thread blocked in result()

    with start_blocking_portal() as portal:
        with monkeypatch.context() as patch:
            patch.setattr(concurrent.futures.Future, "result", interrupted_wait)
            with pytest.raises(KeyboardInterrupt):
                portal.call(forever)
        assert cleaned.is_set()  # cancelled, and waited for before the interrupt went on


def test_cancellation_on_the_loop_side_raises_in_the_caller() -> None:
    async def cancelled_there() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    with start_blocking_portal() as portal, pytest.raises(concurrent.futures.CancelledError):
        portal.call(cancelled_there)


def test_leaving_with_an_error_cancels_remaining_tasks() -> None:
    cleaned = threading.Event()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    with pytest.raises(LookupError), start_blocking_portal() as portal:
        future = portal.start_task_soon(forever)
        assert started.wait(WAIT)
        raise LookupError
    assert cleaned.is_set()
    assert future.cancelled()
    assert portal.statistics().state == "stopped"
    with pytest.raises(UsageError, match="does not accept work"):
        portal.call(add, 1, 2)


def test_leaving_normally_waits_for_remaining_tasks() -> None:
    release = threading.Event()

    async def until_released() -> str:
        await to_thread(release.wait, WAIT)
        return "done"

    with start_blocking_portal() as portal:
        future = portal.start_task_soon(until_released)
        threading.Timer(0, release.set).start()
    assert future.result(0) == "done"


def test_uvloop_as_the_loop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    with start_blocking_portal(uvloop.new_event_loop) as portal:
        assert portal.call(loop_type).startswith("uvloop")


def test_wrap_async_context_manager_enters_and_exits_in_one_task() -> None:
    events: list[object] = []

    @contextlib.asynccontextmanager
    async def resource() -> AsyncIterator[str]:
        entered_in = asyncio.current_task()
        with corral.CancelScope():  # a scope held open across the yield
            events.append("enter")
            try:
                yield "handle"
            except KeyError as exc:
                events.append(("error", str(exc)))
            events.append(asyncio.current_task() is entered_in)

    with start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(resource()) as handle:
            assert handle == "handle"
        with portal.wrap_async_context_manager(resource()):
            raise KeyError("suppressed")
    assert events == ["enter", True, "enter", ("error", "'suppressed'"), True]


async def fail_to_open() -> None:
    raise OSError("cannot open")


def test_wrapped_context_manager_errors_propagate() -> None:
    @contextlib.asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        await fail_to_open()
        yield

    @contextlib.asynccontextmanager
    async def passthrough() -> AsyncIterator[None]:
        yield

    with start_blocking_portal() as portal:
        with (
            pytest.raises(OSError, match="cannot open"),
            portal.wrap_async_context_manager(broken()),
        ):
            pass
        with (
            pytest.raises(ValueError, match="kept"),
            portal.wrap_async_context_manager(passthrough()),
        ):
            raise ValueError("kept")
        with pytest.raises(ArgumentTypeError, match="async context manager"):
            portal.wrap_async_context_manager(object())  # type: ignore[arg-type]


async def test_portal_opened_inside_a_running_loop() -> None:
    loop_thread = threading.get_ident()

    async def where() -> int:
        return threading.get_ident()

    async with BlockingPortal() as portal:
        assert repr(portal) == "<BlockingPortal open, 0 tasks>"
        assert await to_thread(lambda: portal.call(where)) == loop_thread
        with pytest.raises(UsageError, match="own loop thread"):
            portal.call(where)
    assert portal.statistics().state == "stopped"


async def test_a_portal_opens_once() -> None:
    portal = BlockingPortal()
    async with portal:
        pass
    with pytest.raises(UsageError, match="opened once"):
        await portal.__aenter__()


def test_unopened_portal_refuses_work() -> None:
    portal = BlockingPortal()
    assert portal.statistics().state == "new"
    with pytest.raises(UsageError, match="does not accept work"):
        portal.start_task_soon(add, 1, 2)
    with pytest.raises(UsageError, match="never opened"):
        asyncio.run(portal.stop())
    with pytest.raises(UsageError, match="never opened"):
        asyncio.run(portal.sleep_until_stopped())


@pytest.mark.parametrize(
    ("bad", "error"),
    [(-1, InvalidArgumentError), (float("nan"), InvalidArgumentError), ("1", ArgumentTypeError)],
)
def test_bad_timeout_is_refused(bad: Any, error: type[Exception]) -> None:
    with start_blocking_portal() as portal, pytest.raises(error, match="timeout"):
        portal.call(add, 1, 2, timeout=bad)


def test_non_callable_is_refused() -> None:
    with start_blocking_portal() as portal, pytest.raises(ArgumentTypeError, match="callable"):
        portal.start_task_soon(42)  # type: ignore[call-overload]
