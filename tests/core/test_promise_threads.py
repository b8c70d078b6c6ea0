"""Promise across threads: settle anywhere, await from any loop, reactions stay home."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from corral._core import _promise, _promise_jobs
from corral._core._promise import Promise

TIMEOUT = 10.0  # a safety net for a broken build; no test waits for it to pass


def in_thread(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def joined(thread: threading.Thread) -> None:
    thread.join(TIMEOUT)
    assert not thread.is_alive()


async def test_settle_from_another_thread_wakes_the_awaiting_loop() -> None:
    promise: Promise[str] = Promise()
    waiter = asyncio.ensure_future(promise)
    await asyncio.sleep(0)
    assert promise.statistics().waiters == 1
    thread = in_thread(lambda: promise.resolve("from a thread"))
    assert await waiter == "from a thread"
    joined(thread)


async def test_reject_from_another_thread_raises_in_the_awaiting_task() -> None:
    promise: Promise[str] = Promise()
    error = KeyError("remote")
    waiter = asyncio.ensure_future(promise)
    await asyncio.sleep(0)
    thread = in_thread(lambda: promise.reject(error))
    try:
        await waiter
    except KeyError as raised:
        assert raised is error
    else:
        raise AssertionError("the rejection did not reach the waiter")
    joined(thread)


async def test_reactions_run_on_the_loop_that_registered_them() -> None:
    loop_thread = threading.get_ident()
    promise: Promise[int] = Promise()
    ran_in: list[int] = []

    def record(value: int) -> int:
        ran_in.append(threading.get_ident())
        return value + 1

    derived = promise.then(record)
    thread = in_thread(lambda: promise.resolve(1))
    assert await derived == 2
    joined(thread)
    assert ran_in == [loop_thread]


async def test_registration_order_holds_when_another_thread_settles() -> None:
    promise: Promise[int] = Promise()
    events: list[str] = []
    promise.then(lambda _: events.append("registered before"))
    # The settling thread finishes before this task registers again, so the promise is
    # already fulfilled when the second reaction arrives; it must still run second.
    joined(in_thread(lambda: promise.resolve(1)))
    assert promise.done()
    last = promise.then(lambda _: events.append("registered after"))
    await last
    assert events == ["registered before", "registered after"]


async def test_two_loops_in_two_threads_await_one_promise() -> None:
    promise: Promise[str] = Promise()
    parked = [threading.Event(), threading.Event()]
    results: list[object] = [None, None]
    loop_threads: list[int] = [0, 0]

    def run(index: int) -> None:
        async def wait() -> str:
            waiter = asyncio.ensure_future(promise)
            await asyncio.sleep(0)  # the waiter parks on the promise first
            parked[index].set()
            return await waiter

        loop_threads[index] = threading.get_ident()
        results[index] = asyncio.run(wait())

    threads = [in_thread(lambda i=i: run(i)) for i in range(2)]  # type: ignore[misc]
    for event in parked:
        assert await asyncio.to_thread(event.wait, TIMEOUT)
    assert promise.statistics().waiters == 2
    promise.resolve("everyone")
    for thread in threads:
        await asyncio.to_thread(joined, thread)
    assert results == ["everyone", "everyone"]
    assert loop_threads[0] != loop_threads[1]


async def test_reactions_from_several_loops_each_run_at_home() -> None:
    promise: Promise[int] = Promise()
    registered = threading.Event()
    ran_in: dict[str, int] = {}
    other_thread: list[int] = []

    def other_loop() -> None:
        async def register_and_wait() -> None:
            other_thread.append(threading.get_ident())
            derived = promise.then(lambda _: ran_in.setdefault("other", threading.get_ident()))
            registered.set()
            await derived

        asyncio.run(register_and_wait())

    thread = in_thread(other_loop)
    assert await asyncio.to_thread(registered.wait, TIMEOUT)
    mine = promise.then(lambda _: ran_in.setdefault("mine", threading.get_ident()))
    promise.resolve(1)
    await mine
    await asyncio.to_thread(joined, thread)
    assert ran_in == {"mine": threading.get_ident(), "other": other_thread[0]}


def test_concurrent_settlers_exactly_one_wins() -> None:
    for _ in range(20):
        promise: Promise[int] = Promise()
        barrier = threading.Barrier(8)
        wins: list[int] = []

        def settle(
            index: int,
            promise: Promise[int] = promise,
            barrier: threading.Barrier = barrier,
            wins: list[int] = wins,
        ) -> None:
            barrier.wait(TIMEOUT)
            won = promise.resolve(index) if index % 2 else promise.reject(KeyError(index))
            if won:
                wins.append(index)

        threads = [in_thread(lambda i=i: settle(i)) for i in range(8)]  # type: ignore[misc]
        for thread in threads:
            joined(thread)
        assert len(wins) == 1
        if wins[0] % 2:
            assert promise.result() == wins[0]
        else:
            error = promise.exception()
            assert isinstance(error, KeyError)
            assert error.args == (wins[0],)


def test_loopless_reactions_run_on_the_settling_thread() -> None:
    promise: Promise[int] = Promise()
    ran_in: list[int] = []

    def record(value: int) -> int:
        ran_in.append(threading.get_ident())
        return value

    derived = promise.then(record)
    settler: list[int] = []

    def settle() -> None:
        settler.append(threading.get_ident())
        promise.resolve(5)

    joined(in_thread(settle))
    assert ran_in == settler
    assert derived.result() == 5


async def test_loopless_reactions_run_on_the_settling_loop() -> None:
    promise: Promise[int] = Promise()
    registered: list[Promise[Any]] = []
    ran_in: list[int] = []
    joined(
        in_thread(
            lambda: registered.append(promise.then(lambda _: ran_in.append(threading.get_ident())))
        )
    )
    promise.resolve(1)
    assert ran_in == []  # a microtask of this loop: not inside resolve()
    await registered[0]
    assert ran_in == [threading.get_ident()]


def test_waiters_and_reactions_of_a_closed_loop_do_not_break_settling() -> None:
    promise: Promise[int] = Promise()
    ran: list[int] = []

    async def register() -> asyncio.Future[int]:
        promise.then(ran.append)
        return promise.as_future()

    loop = asyncio.new_event_loop()
    future = loop.run_until_complete(register())
    loop.close()
    assert promise.resolve(7)
    assert ran == [7]  # its loop is gone, so the reaction ran here
    assert not future.done()


async def test_a_job_handed_to_another_loop_sees_the_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The other loop may run the job the moment it is in its queue, so the outcome must
    # be published before the hand-over.
    seen: list[tuple[bool, object]] = []
    real_push = _promise_jobs.push_foreign

    def push_and_look(job: Promise[Any], loop: asyncio.AbstractEventLoop) -> bool:
        source = job._source
        assert source is not None
        seen.append((source.done(), source._value))
        return real_push(job, loop)

    monkeypatch.setattr(_promise, "push_foreign", push_and_look)
    promise: Promise[int] = Promise()
    derived = promise.then(lambda v: v + 1)
    joined(in_thread(lambda: promise.resolve(41)))
    assert await derived == 42
    assert seen == [(True, 41)]
