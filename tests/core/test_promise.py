"""Promise: settling, reacting, awaiting, conversions, inspection and bad input."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import traceback
from typing import Any

import pytest

from corral import INSTRUMENTS
from corral._core._promise import Promise, PromiseState, PromiseStatistics, Resolvers
from corral.errors import ArgumentTypeError, UsageError


class Boom(Exception):
    pass


async def flush() -> None:
    """Wait until every queued microtask, and every one they queue, has run."""
    await Promise.resolved(None).then(lambda _: None)


async def outcome(promise: Promise[Any]) -> tuple[str, object]:
    try:
        return ("fulfilled", await promise)
    except BaseException as error:
        return ("rejected", error)


# ------------------------------------------------------------------- settling


async def test_with_resolvers_is_a_named_tuple_of_the_promise_and_its_settlers() -> None:
    resolvers: Resolvers[int] = Promise.with_resolvers()
    promise, resolve, reject = resolvers
    assert resolvers.promise is promise
    assert resolve == promise.resolve
    assert reject == promise.reject
    assert promise.state is PromiseState.PENDING
    assert resolve(3)
    assert await promise == 3


async def test_resolve_and_reject_settle_once_and_say_so() -> None:
    promise: Promise[int] = Promise()
    assert promise.resolve(1) is True
    assert promise.resolve(2) is False
    assert promise.reject(Boom()) is False
    assert promise.result() == 1

    failed: Promise[int] = Promise()
    error = Boom()
    assert failed.reject(error) is True
    assert failed.reject(Boom()) is False
    assert failed.resolve(1) is False
    assert failed.exception() is error


async def test_resolving_with_a_pending_promise_locks_the_outcome_in() -> None:
    inner: Promise[str] = Promise()
    outer: Promise[str] = Promise()
    assert outer.resolve(inner)
    assert outer.state is PromiseState.PENDING
    assert not outer.resolve("too late")
    assert not outer.reject(Boom())
    assert repr(outer) == "<Promise pending (following another)>"
    inner.resolve("inner")
    assert await outer == "inner"


async def test_resolve_runs_a_coroutine_as_a_task() -> None:
    ran_in: list[asyncio.Task[Any] | None] = []

    async def work() -> str:
        ran_in.append(asyncio.current_task())
        return "done"

    promise: Promise[str] = Promise()
    promise.resolve(work())
    assert await promise == "done"
    assert ran_in[0] is not None
    assert ran_in[0] is not asyncio.current_task()


async def test_a_callback_returning_a_pending_future_is_followed() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    derived = Promise.resolved(1).then(lambda _: future)
    await flush()
    assert not derived.done()
    future.set_result(8)
    assert await derived == 8


async def test_resolve_with_a_future_follows_it() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    promise: Promise[int] = Promise()
    promise.resolve(future)
    await flush()
    assert not promise.done()
    future.set_result(7)
    assert await promise == 7


def test_resolve_with_a_coroutine_and_no_loop_rejects_and_closes_it() -> None:
    async def work() -> int:
        return 1

    coroutine = work()
    promise: Promise[int] = Promise()
    assert promise.resolve(coroutine)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
    error = promise.exception()
    assert isinstance(error, UsageError)
    assert "no event loop runs" in str(error)


def test_resolve_with_a_coroutine_from_a_thread_runs_on_the_promises_loop() -> None:
    async def work() -> str:
        return "ran on the loop"

    async def main() -> str:
        promise: Promise[str] = Promise()
        waiter = asyncio.ensure_future(outcome(promise))
        await asyncio.sleep(0)  # parks the waiter: the promise now knows its loop
        await asyncio.to_thread(promise.resolve, work())
        return str(await waiter)

    assert asyncio.run(main()) == str(("fulfilled", "ran on the loop"))


async def test_resolving_a_settled_promise_again_starts_nothing() -> None:
    class Thenable:
        calls = 0

        def then(self, resolve: Any, reject: Any) -> None:
            Thenable.calls += 1

    class Awaitable:
        def __await__(self) -> Any:
            raise AssertionError("never awaited")

    async def work() -> int:
        raise AssertionError("never run")

    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    coroutine = work()
    promise = Promise.resolved(1)
    following: Promise[int] = Promise()
    following.resolve(Promise())
    for settled in (promise, following):
        assert not settled.resolve(Promise.resolved(2))
        assert not settled.resolve(future)
        assert not settled.resolve(Thenable())  # type: ignore[arg-type]
        assert not settled.resolve(Awaitable())
    assert not promise.resolve(coroutine)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
    future.set_result(3)
    await flush()
    assert Thenable.calls == 0
    assert promise.result() == 1
    assert not following.done()


async def test_a_derived_promise_settles_from_its_reaction_only() -> None:
    source: Promise[int] = Promise()
    derived = source.then(lambda v: v + 1)
    assert not derived.resolve(100)
    assert not derived.reject(Boom())
    assert derived.state is PromiseState.PENDING
    source.resolve(1)
    assert await derived == 2


def test_promise_cannot_be_subclassed() -> None:
    with pytest.raises(ArgumentTypeError, match=r"Promise cannot be subclassed \(by .*Custom\)"):

        class Custom(Promise[int]):  # type: ignore[misc]
            pass


async def test_reject_refuses_what_is_not_an_exception_instance() -> None:
    promise: Promise[int] = Promise()
    with pytest.raises(ArgumentTypeError, match=r"not str \('oops'\)"):
        promise.reject("oops")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"not the class Boom; .*Boom\(\.\.\.\)"):
        promise.reject(Boom)  # type: ignore[arg-type]
    assert promise.state is PromiseState.PENDING


async def test_resolved_and_rejected() -> None:
    promise = Promise.resolved(5)
    assert Promise.resolved(promise) is promise
    assert await promise == 5
    error = Boom()
    assert (await outcome(Promise.rejected(error))) == ("rejected", error)
    with pytest.raises(ArgumentTypeError, match="exception instance"):
        Promise.rejected(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- try_


async def test_try_runs_the_function_now() -> None:
    calls: list[tuple[Any, ...]] = []

    def record(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "result"

    promise = Promise.try_(record, 1, 2, key="value")
    assert calls == [((1, 2), {"key": "value"})]
    assert promise.result() == "result"


async def test_try_turns_a_raise_into_a_rejection() -> None:
    error = Boom()

    def fail() -> None:
        raise error

    assert (await outcome(Promise.try_(fail))) == ("rejected", error)


async def test_try_follows_the_awaitable_an_async_function_returns() -> None:
    async def double(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    assert await Promise.try_(double, 21) == 42


async def test_try_refuses_a_coroutine_object_and_closes_it() -> None:
    async def fetch(url: str) -> str:
        return url

    coroutine = fetch("x")
    with pytest.raises(ArgumentTypeError, match=r"not a coroutine object.*Promise\.try_\(fetch"):
        Promise.try_(coroutine)  # type: ignore[call-overload]
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


async def test_try_refuses_a_non_callable() -> None:
    with pytest.raises(ArgumentTypeError, match=r"fn must be callable.*int \(3\)"):
        Promise.try_(3)  # type: ignore[call-overload]


def test_try_lets_keyboard_interrupt_through() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Promise.try_(interrupt)


# ------------------------------------------------------------------ catch


async def test_catch_handles_matching_errors() -> None:
    recovered = Promise.rejected(Boom("x")).catch(lambda error: f"caught {error}")
    assert await recovered == "caught x"


async def test_catch_passes_fulfillment_and_other_errors_through() -> None:
    calls: list[BaseException] = []
    assert await Promise.resolved(1).catch(calls.append) == 1
    other = KeyError("k")
    passed = Promise.rejected(other).catch(calls.append, on=Boom)
    assert (await outcome(passed)) == ("rejected", other)
    assert calls == []


async def test_catch_filters_on_a_tuple_of_types() -> None:
    caught = Promise.rejected(KeyError("k")).catch(lambda e: type(e).__name__, on=(Boom, KeyError))
    assert await caught == "KeyError"


async def test_catch_by_default_lets_cancellation_through() -> None:
    cancelled = asyncio.CancelledError()
    passed = Promise.rejected(cancelled).catch(lambda _: "caught")
    assert (await outcome(passed)) == ("rejected", cancelled)
    caught = Promise.rejected(cancelled).catch(lambda _: "caught", on=asyncio.CancelledError)
    assert await caught == "caught"


async def test_catch_handler_can_be_async_and_can_fail() -> None:
    async def retry(_: BaseException) -> str:
        await asyncio.sleep(0)
        return "second try"

    assert await Promise.rejected(Boom()).catch(retry) == "second try"
    error = KeyError()

    def rethrow(_: BaseException) -> None:
        raise error

    assert (await outcome(Promise.rejected(Boom()).catch(rethrow))) == ("rejected", error)


@pytest.mark.parametrize("on", [ValueError(), "Boom", (), (Boom, 3), int])
async def test_catch_refuses_a_bad_filter(on: Any) -> None:
    with pytest.raises(ArgumentTypeError, match="on must be an exception class or a non-empty"):
        Promise.resolved(1).catch(print, on=on)


async def test_catch_refuses_a_non_callable() -> None:
    with pytest.raises(ArgumentTypeError, match=r"fn must be callable.*None"):
        Promise.resolved(1).catch(None)  # type: ignore[call-overload]


# ---------------------------------------------------------------- finally_


async def test_finally_runs_on_either_outcome_and_passes_it_on() -> None:
    calls: list[str] = []
    assert await Promise.resolved(1).finally_(lambda: calls.append("after value")) == 1
    error = Boom()
    failed = Promise.rejected(error).finally_(lambda: calls.append("after error"))
    assert (await outcome(failed)) == ("rejected", error)
    assert calls == ["after value", "after error"]


async def test_finally_waits_for_what_the_callback_returns() -> None:
    events: list[str] = []

    async def cleanup() -> str:
        await asyncio.sleep(0)
        events.append("cleanup finished")
        return "ignored"

    derived = Promise.resolved("value").finally_(cleanup)
    derived.then(lambda _: events.append("derived settled"))
    assert await derived == "value"
    await flush()
    assert events == ["cleanup finished", "derived settled"]


async def test_finally_failure_replaces_the_outcome() -> None:
    error = Boom()

    def fail() -> None:
        raise error

    assert (await outcome(Promise.resolved(1).finally_(fail))) == ("rejected", error)
    inner = KeyError()
    replaced = Promise.rejected(Boom()).finally_(lambda: Promise.rejected(inner))
    assert (await outcome(replaced)) == ("rejected", inner)


async def test_finally_refuses_a_non_callable() -> None:
    with pytest.raises(ArgumentTypeError, match="fn must be callable"):
        Promise.resolved(1).finally_("cleanup")  # type: ignore[arg-type]


# ---------------------------------------------------------------- awaiting


async def test_await_a_rejected_promise_raises_with_the_original_traceback() -> None:
    def fail() -> None:
        raise Boom("original")

    promise = Promise.try_(fail)
    depths = []
    for _ in range(3):
        with pytest.raises(Boom) as info:
            await promise
        depths.append(len(traceback.extract_tb(info.value.__traceback__)))
        assert "fail" in [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert depths[0] == depths[1] == depths[2]


async def test_await_from_several_tasks() -> None:
    promise: Promise[str] = Promise()
    waiters = [asyncio.ensure_future(outcome(promise)) for _ in range(3)]
    await asyncio.sleep(0)
    assert promise.statistics().waiters == 3
    promise.resolve("shared")
    assert [await waiter for waiter in waiters] == [("fulfilled", "shared")] * 3


async def test_cancelling_a_waiting_task_cancels_only_its_wait() -> None:
    promise: Promise[str] = Promise()
    cancelled = asyncio.ensure_future(promise)
    patient = asyncio.ensure_future(outcome(promise))
    await asyncio.sleep(0)
    assert promise.statistics().waiters == 2
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert promise.state is PromiseState.PENDING
    assert promise.statistics().waiters == 1
    promise.resolve("still delivered")
    assert await patient == ("fulfilled", "still delivered")


async def test_a_timeout_around_await_leaves_the_promise_pending(virtual_clock: Any) -> None:
    promise: Promise[int] = Promise()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5):
            await promise
    assert promise.statistics() == PromiseStatistics(PromiseState.PENDING, 0, 0)
    promise.resolve(1)
    assert await promise == 1


async def test_repeated_cancelled_waits_leave_nothing_behind(virtual_clock: Any) -> None:
    promise: Promise[int] = Promise()
    other = asyncio.ensure_future(promise)
    for _ in range(50):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await promise
    # Only the one live waiter is still registered: cancelled waits removed themselves.
    registered = promise._reactions
    entries = registered if isinstance(registered, list) else [registered]
    assert len(entries) == 1
    assert not entries[0].done()
    promise.resolve(1)
    assert await other == 1


def test_awaiting_without_an_event_loop_is_a_usage_error() -> None:
    async def wait(promise: Promise[int]) -> int:
        return await promise

    coroutine = wait(Promise())
    with pytest.raises(UsageError, match="needs a running asyncio event loop"):
        coroutine.send(None)


async def test_stop_iteration_rejection_reaches_waiters_as_runtime_error() -> None:
    promise: Promise[int] = Promise()
    waiter = asyncio.ensure_future(promise)
    await asyncio.sleep(0)
    promise.reject(StopIteration())
    with pytest.raises(RuntimeError) as info:
        await waiter
    assert isinstance(info.value.__cause__, StopIteration)
    with pytest.raises(RuntimeError):
        await promise


async def test_instruments_see_a_task_park_and_wake_on_a_promise() -> None:
    events: list[tuple[str, object, object]] = []

    class Recorder:
        def task_parked(self, task: object, on: object) -> None:
            events.append(("parked", task, on))

        def task_woken(self, task: object, on: object) -> None:
            events.append(("woken", task, on))

    recorder = Recorder()
    promise: Promise[int] = Promise()
    INSTRUMENTS.add(recorder)
    try:
        waiter = asyncio.ensure_future(promise)
        await asyncio.sleep(0)
        assert events == [("parked", waiter, promise)]
        promise.resolve(1)
        assert await waiter == 1
    finally:
        INSTRUMENTS.remove(recorder)
    assert events == [("parked", waiter, promise), ("woken", waiter, promise)]


async def test_instrumented_wait_can_be_cancelled() -> None:
    woken: list[object] = []

    class Recorder:
        def task_woken(self, task: object, on: object) -> None:
            woken.append(on)

    recorder = Recorder()
    promise: Promise[int] = Promise()
    INSTRUMENTS.add(recorder)
    try:
        waiter = asyncio.ensure_future(promise)
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    finally:
        INSTRUMENTS.remove(recorder)
    assert woken == [promise]
    assert promise.statistics().waiters == 0


# ------------------------------------------------------------- conversions


async def test_as_future_of_pending_and_settled_promises() -> None:
    promise: Promise[int] = Promise()
    future = promise.as_future()
    assert isinstance(future, asyncio.Future)
    assert future.get_loop() is asyncio.get_running_loop()
    promise.resolve(3)
    assert await future == 3
    assert await Promise.resolved(4).as_future() == 4
    error = Boom()
    with pytest.raises(Boom) as info:
        await Promise.rejected(error).as_future()
    assert info.value is error


async def test_cancelling_the_future_from_as_future_leaves_the_promise() -> None:
    promise: Promise[int] = Promise()
    future = promise.as_future()
    assert promise.statistics().waiters == 1
    future.cancel()
    await asyncio.sleep(0)
    assert promise.statistics().waiters == 0
    assert promise.state is PromiseState.PENDING


async def test_a_future_cancelled_just_before_settling_is_left_alone() -> None:
    promise: Promise[int] = Promise()
    cancelled = promise.as_future()
    kept = promise.as_future()
    cancelled.cancel()
    promise.resolve(5)  # before the cancelled future's done callback ran
    assert cancelled.cancelled()
    assert await kept == 5

    alone: Promise[int] = Promise()
    only = alone.as_future()
    only.cancel()
    alone.resolve(6)
    assert only.cancelled()
    assert alone.result() == 6


def test_as_future_needs_a_loop() -> None:
    with pytest.raises(UsageError, match="needs a running asyncio event loop"):
        Promise.resolved(1).as_future()


async def test_from_future_follows_an_asyncio_future() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    promise = Promise.from_future(future)
    assert not promise.resolve(0)  # it follows the future only
    future.set_result(9)
    assert await promise == 9

    failing: asyncio.Future[int] = loop.create_future()
    error = Boom()
    failing.set_exception(error)
    assert (await outcome(Promise.from_future(failing))) == ("rejected", error)


async def test_from_future_of_a_cancelled_future_rejects_with_cancelled_error() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    promise = Promise.from_future(future)
    future.cancel("stop")
    state, error = await outcome(promise)
    assert state == "rejected"
    assert isinstance(error, asyncio.CancelledError)
    assert error.args == ("stop",)


async def test_from_future_follows_a_task() -> None:
    async def work() -> str:
        return "task result"

    assert await Promise.from_future(asyncio.ensure_future(work())) == "task result"


async def test_from_future_follows_a_concurrent_future() -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        promise = Promise.from_future(pool.submit(sum, [1, 2, 3]))
        assert await promise == 6
        gate = concurrent.futures.Future[None]()
        blocked = pool.submit(gate.result)
        queued = pool.submit(int, "1")
        cancelled = Promise.from_future(queued)
        assert queued.cancel()
        gate.set_result(None)
        blocked.result()
    state, error = await outcome(cancelled)
    assert state == "rejected"
    assert isinstance(error, asyncio.CancelledError)
    assert isinstance(error.__cause__, concurrent.futures.CancelledError)


async def test_from_future_follows_a_future_of_another_loop() -> None:
    other = asyncio.new_event_loop()
    try:
        future: asyncio.Future[str] = other.create_future()
        promise = Promise.from_future(future)
        thread = threading.Thread(target=other.run_forever)
        thread.start()
        try:
            other.call_soon_threadsafe(future.set_result, "from the other loop")
            assert await promise == "from the other loop"
        finally:
            other.call_soon_threadsafe(other.stop)
            await asyncio.to_thread(thread.join)
    finally:
        other.close()


async def test_from_future_of_a_closed_loop_rejects() -> None:
    other = asyncio.new_event_loop()
    future: asyncio.Future[int] = other.create_future()
    other.close()
    state, error = await outcome(Promise.from_future(future))
    assert state == "rejected"
    assert isinstance(error, UsageError)
    assert "its event loop is closed" in str(error)


async def test_from_future_refuses_other_objects() -> None:
    with pytest.raises(ArgumentTypeError, match=r"asyncio\.Future or a concurrent.*not int \(3\)"):
        Promise.from_future(3)  # type: ignore[arg-type]


# -------------------------------------------------------------- inspection


async def test_result_and_exception_of_each_state() -> None:
    pending: Promise[int] = Promise()
    with pytest.raises(UsageError, match=r"result\(\) of a pending promise"):
        pending.result()
    with pytest.raises(UsageError, match=r"exception\(\) of a pending promise"):
        pending.exception()
    assert not pending.done()

    fulfilled = Promise.resolved(1)
    assert fulfilled.done()
    assert fulfilled.state is PromiseState.FULFILLED
    assert fulfilled.exception() is None

    error = Boom()
    failed = Promise.rejected(error)
    assert failed.state is PromiseState.REJECTED
    with pytest.raises(Boom):
        failed.result()
    assert failed.exception() is error


async def test_repr_tells_the_state() -> None:
    promise: Promise[object] = Promise()
    assert repr(promise) == "<Promise pending>"
    promise.then(print)
    promise.then(print)
    waiter = asyncio.ensure_future(promise)
    await asyncio.sleep(0)
    assert repr(promise) == "<Promise pending, 2 reactions, 1 waiter>"
    promise.resolve(42)
    await waiter
    assert repr(promise) == "<Promise fulfilled 42>"
    assert repr(Promise.resolved("x" * 100)).startswith("<Promise fulfilled 'xxxx")
    assert len(repr(Promise.resolved("x" * 100))) < 60
    failed = Promise.rejected(Boom("bad"))
    assert repr(failed) == "<Promise rejected Boom('bad')>"
    failed.exception()


async def test_statistics_counts_reactions_and_waiters() -> None:
    promise: Promise[int] = Promise()
    assert promise.statistics() == PromiseStatistics(PromiseState.PENDING, 0, 0)
    promise.then(print)
    promise.catch(print)
    promise.finally_(lambda: None)
    waiters = [asyncio.ensure_future(promise) for _ in range(2)]
    await asyncio.sleep(0)
    assert promise.statistics() == PromiseStatistics(PromiseState.PENDING, 3, 2)
    promise.resolve(1)
    assert promise.statistics() == PromiseStatistics(PromiseState.FULFILLED, 0, 0)
    await asyncio.gather(*waiters)
    with pytest.raises(AttributeError):
        promise.statistics().state = PromiseState.REJECTED  # type: ignore[misc]


# ------------------------------------------------------ outside an event loop


def test_without_a_loop_reactions_run_when_the_outermost_call_returns() -> None:
    events: list[str] = []
    promise = Promise.resolved(1)

    def outer(value: int) -> int:
        promise.then(lambda _: events.append("registered inside"))
        events.append("outer done")
        return value + 1

    derived = promise.then(outer)
    assert events == ["outer done", "registered inside"]
    assert derived.result() == 2


def test_without_a_loop_settling_runs_reactions_before_returning() -> None:
    events: list[str] = []
    promise: Promise[int] = Promise()

    def record(value: int) -> int:
        events.append(f"got {value}")
        return value * 10

    derived = promise.then(record)
    assert events == []
    promise.resolve(3)
    assert events == ["got 3"]
    assert derived.result() == 30


def test_without_a_loop_try_runs_inner_reactions_after_the_function() -> None:
    events: list[str] = []

    def body() -> str:
        Promise.resolved(None).then(lambda _: events.append("reaction"))
        events.append("body done")
        return "value"

    promise = Promise.try_(body)
    assert events == ["body done", "reaction"]
    assert promise.result() == "value"


def test_without_a_loop_thenables_are_assimilated() -> None:
    class Thenable:
        def then(self, resolve: Any, reject: Any) -> None:
            resolve("from thenable")

    promise: Promise[str] = Promise()
    promise.resolve(Thenable())  # type: ignore[arg-type]
    assert promise.result() == "from thenable"


def test_keyboard_interrupt_in_a_thenable_propagates_and_rejects() -> None:
    class Interrupting:
        def then(self, resolve: Any, reject: Any) -> None:
            raise KeyboardInterrupt

    promise: Promise[int] = Promise()
    with pytest.raises(KeyboardInterrupt):
        promise.resolve(Interrupting())  # type: ignore[arg-type]
    assert isinstance(promise.exception(), KeyboardInterrupt)


def test_keyboard_interrupt_in_a_callback_propagates_and_later_jobs_still_run() -> None:
    events: list[str] = []
    holder: list[Promise[Any]] = []

    def interrupt(_: object) -> None:
        raise KeyboardInterrupt

    async def main() -> None:
        promise = Promise.resolved(1)
        holder.append(promise.then(interrupt))
        promise.then(lambda _: events.append("next job"))
        await asyncio.Event().wait()

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(main())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        assert events == []
        assert isinstance(holder[0].exception(), KeyboardInterrupt)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
        assert events == ["next job"]
    finally:
        loop.close()
