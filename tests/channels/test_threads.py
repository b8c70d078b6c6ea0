"""to_thread and from_thread: results, errors, contexts, cancellation both ways, deadlines."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from typing import Any

import pytest

import corral
from corral import CancelReason, CancelSource, ThreadLimiter, from_thread, to_thread
from corral.errors import ArgumentTypeError, UsageError
from corral.testing import VirtualClock

WAIT = 10.0  # real seconds a thread waits for the test before the test counts as failed

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def test_result_and_arguments_come_back() -> None:
    assert await to_thread(divmod, 17, 5) == (3, 2)


async def test_runs_in_another_thread() -> None:
    assert await to_thread(threading.get_ident) != threading.get_ident()


async def test_error_propagates_unchanged() -> None:
    error = KeyError("missing")

    def fail() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        await to_thread(fail)
    assert info.value is error


async def test_base_exception_propagates() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await to_thread(interrupt)


async def test_contextvars_propagate_into_the_thread_not_back() -> None:
    var.set("caller")

    def read_and_write() -> str:
        seen = var.get()
        var.set("thread")
        return seen

    assert await to_thread(read_and_write) == "caller"
    assert var.get() == "caller"


async def test_cancellation_reaches_the_token_and_the_caller_waits() -> None:
    started = asyncio.Event()
    seen: dict[str, Any] = {}

    def worker() -> str:
        token = from_thread.current_token()
        from_thread.run_sync(started.set)
        cancelled = threading.Event()
        token.on_cancel(cancelled.set)
        seen["cancelled"] = cancelled.wait(WAIT)
        seen["reason"] = token.reason
        with pytest.raises(asyncio.CancelledError):
            from_thread.check_cancelled()
        seen["finished"] = True
        return "discarded"

    scope = corral.CancelScope()

    async def caller() -> None:
        with scope:
            seen["returned"] = await to_thread(worker)
        # structured: the call ended only once the thread was done
        seen["finished when the call ended"] = seen.get("finished")

    async with corral.TaskGroup() as tg:
        tg.start_soon(caller)
        await started.wait()
        scope.cancel("enough")
    assert scope.cancelled_caught
    assert "returned" not in seen
    assert seen["finished when the call ended"] is True
    assert seen["cancelled"] is True
    reason = seen["reason"]
    assert isinstance(reason, CancelReason)
    assert reason.reason == "enough"


async def test_caller_waits_for_the_thread_through_repeated_cancellation() -> None:
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def worker() -> None:
        started.set()
        release.wait(WAIT)
        finished.set()

    task = asyncio.ensure_future(to_thread(worker))
    await to_thread(started.wait, WAIT)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


async def test_abandon_on_cancel_returns_at_once() -> None:
    limiter = ThreadLimiter(1)
    started = threading.Event()
    release = threading.Event()
    tokens: list[corral.CancelToken] = []

    def worker() -> None:
        tokens.append(from_thread.current_token())
        started.set()
        release.wait(WAIT)

    with corral.CancelScope() as scope:
        call = asyncio.ensure_future(to_thread(worker, limiter=limiter, abandon_on_cancel=True))
        await to_thread(started.wait, WAIT)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert not scope.cancelled_caught
    assert tokens[0].cancelled
    # the thread still runs and still holds its limiter token
    assert limiter.statistics().borrowed == 1
    release.set()
    await limiter.acquire()  # handed over once the abandoned thread is done
    limiter.release()
    assert limiter.statistics().borrowed == 0


async def test_already_cancelled_scope_never_starts_the_thread() -> None:
    ran = threading.Event()
    with corral.CancelScope() as scope:
        scope.cancel()
        await to_thread(ran.set)
    assert scope.cancelled_caught
    assert not ran.is_set()


async def test_deadline_is_visible_on_the_token() -> None:
    def deadline() -> float:
        return from_thread.current_token().deadline

    assert await to_thread(deadline) == float("inf")
    with corral.move_on_after(30):
        expected = corral.current_effective_deadline()
        assert await to_thread(deadline) == expected


async def test_deadline_cancels_the_token_with_its_source(virtual_clock: VirtualClock) -> None:
    reasons: list[CancelReason | None] = []

    def worker() -> None:
        token = from_thread.current_token()
        cancelled = threading.Event()
        token.on_cancel(cancelled.set)
        # the clock does not move while a thread works: nothing fires before we ask
        assert not token.cancelled
        from_thread.run_sync(virtual_clock.advance, 10)
        cancelled.wait(WAIT)
        reasons.append(token.reason)

    with corral.move_on_after(5) as scope:
        await to_thread(worker)
    assert scope.cancelled_caught
    assert reasons[0] is not None
    assert reasons[0].source is CancelSource.DEADLINE


async def test_virtual_clock_is_held_while_a_thread_works(virtual_clock: VirtualClock) -> None:
    with corral.fail_after(1):
        await to_thread(time.sleep, 0.01)
    assert virtual_clock.time() == 0


async def test_from_thread_run_round_trip_with_context() -> None:
    var.set("outer")
    loop_thread = threading.get_ident()

    async def in_loop(x: int) -> tuple[int, str, bool]:
        await asyncio.sleep(0)
        return x + 1, var.get(), threading.get_ident() == loop_thread

    def worker() -> tuple[int, str, bool]:
        return from_thread.run(in_loop, 41)

    assert await to_thread(worker) == (42, "outer", True)


async def test_from_thread_run_sync_runs_on_the_loop_thread() -> None:
    loop_thread = threading.get_ident()

    def worker() -> bool:
        return from_thread.run_sync(lambda: threading.get_ident() == loop_thread)

    assert await to_thread(worker) is True


async def test_from_thread_errors_propagate() -> None:
    async def fail() -> None:
        raise ValueError("async side")

    def sync_fail() -> None:
        raise LookupError("sync side")

    def worker() -> list[str]:
        seen = []
        try:
            from_thread.run(fail)
        except ValueError as exc:
            seen.append(str(exc))
        try:
            from_thread.run_sync(sync_fail)
        except LookupError as exc:
            seen.append(str(exc))
        return seen

    assert await to_thread(worker) == ["async side", "sync side"]


async def test_from_thread_rejects_the_wrong_kind_of_function() -> None:
    async def coro_fn() -> None:
        return None

    def not_async() -> int:
        return 1

    def worker() -> None:
        with pytest.raises(ArgumentTypeError, match="run_sync"):
            from_thread.run(not_async)  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match=r"from_thread\.run\(\)"):
            from_thread.run_sync(coro_fn)  # type: ignore[unused-coroutine]

    await to_thread(worker)


async def test_cancelling_the_caller_cancels_from_thread_run() -> None:
    started = asyncio.Event()
    outcome: dict[str, object] = {}

    async def in_loop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as exc:
            outcome["async"] = CancelReason.of(exc)
            raise

    def worker() -> None:
        try:
            from_thread.run(in_loop)
        except asyncio.CancelledError:
            outcome["thread"] = "cancelled"
            raise

    with corral.CancelScope() as scope:
        call = asyncio.ensure_future(to_thread(worker))
        await started.wait()
        scope.cancel("stop it")
        with pytest.raises(asyncio.CancelledError):
            await call
    assert outcome["thread"] == "cancelled"
    reason = outcome["async"]
    assert isinstance(reason, CancelReason)
    assert reason.source is CancelSource.TOKEN


async def test_from_thread_run_after_cancellation_raises_without_running() -> None:
    ran: list[bool] = []

    async def in_loop() -> None:
        ran.append(True)

    started = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        started.set()
        release.wait(WAIT)
        try:
            from_thread.run(in_loop)
        except asyncio.CancelledError as exc:
            errors.append(exc)

    call = asyncio.ensure_future(to_thread(worker))
    await to_thread(started.wait, WAIT)
    call.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert ran == []
    assert len(errors) == 1


def test_from_thread_outside_a_worker_thread_is_a_usage_error() -> None:
    async def nothing() -> None:
        return None

    with pytest.raises(UsageError, match="BlockingPortal"):
        from_thread.run(nothing)
    with pytest.raises(UsageError, match="to_thread"):
        from_thread.run_sync(print)
    with pytest.raises(UsageError):
        from_thread.check_cancelled()
    with pytest.raises(UsageError):
        from_thread.current_token()
    with pytest.raises(UsageError, match="namespace"):
        from_thread()


def test_from_thread_after_the_loop_closed_is_a_usage_error() -> None:
    release = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        release.wait(WAIT)
        try:
            from_thread.run_sync(print)
        except UsageError as exc:
            errors.append(exc)
        done.set()

    async def main() -> None:
        call = asyncio.ensure_future(to_thread(worker, abandon_on_cancel=True))
        await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    release.set()  # the abandoned worker now finds its loop closed
    assert done.wait(WAIT)
    assert len(errors) == 1
    assert "closed" in str(errors[0])


async def test_coroutine_function_is_refused() -> None:
    async def fetch() -> int:
        return 1

    with pytest.raises(ArgumentTypeError, match="await fetch"):
        await to_thread(fetch)  # type: ignore[unused-coroutine]


async def test_coroutine_object_is_refused_and_closed() -> None:
    async def fetch() -> int:
        return 1

    coro = fetch()
    with pytest.raises(ArgumentTypeError, match="await it directly"):
        await to_thread(coro)  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coro) == "CORO_CLOSED"  # no "never awaited" warning


async def test_non_callable_and_bad_limiter_are_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="callable"):
        await to_thread(42)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="limiter must be a ThreadLimiter"):
        await to_thread(int, limiter=asyncio.Semaphore(1))  # type: ignore[arg-type]


def test_outside_a_task_is_a_usage_error() -> None:
    coro = to_thread(int)
    with pytest.raises(UsageError, match="inside a running task"):
        coro.send(None)


async def test_instruments_see_the_wait() -> None:
    events: list[tuple[str, object]] = []

    class Recorder:
        def task_parked(self, task: object, on: object) -> None:
            events.append(("parked", on))

        def task_woken(self, task: object, on: object) -> None:
            events.append(("woken", on))

    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        await to_thread(int)
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert [kind for kind, _ in events] == ["parked", "woken"]
    assert isinstance(events[0][1], corral.CancelToken)
