"""CancelToken: thread-safe cancellation, linking, callbacks, deadlines, scope binding."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from corral import CancelReason, CancelScope, CancelSource, CancelToken
from corral.errors import ArgumentTypeError, InvalidArgumentError, UsageError
from corral.testing import VirtualClock


def test_cancel_once() -> None:
    token = CancelToken()
    before = token.statistics()
    assert not before.cancelled
    assert before.reason is None
    assert token.cancel("first")
    assert not token.cancel("second")
    assert token.statistics().cancelled
    assert token.reason is not None
    assert token.reason.reason == "first"
    assert token.reason.source is CancelSource.EXPLICIT


def test_raise_if_cancelled_for_sync_code() -> None:
    token = CancelToken()
    token.raise_if_cancelled()
    token.cancel("stop")
    with pytest.raises(asyncio.CancelledError) as info:
        token.raise_if_cancelled()
    reason = CancelReason.of(info.value)
    assert reason is not None
    assert reason.reason == "stop"


def test_callbacks_run_in_order_once() -> None:
    token = CancelToken()
    calls: list[str] = []
    token.on_cancel(calls.append, "a")
    token.on_cancel(lambda: calls.append("b"))
    token.cancel()
    token.cancel()
    assert calls == ["a", "b"]


def test_callback_on_cancelled_token_runs_now() -> None:
    token = CancelToken()
    token.cancel()
    calls: list[int] = []
    registration = token.on_cancel(calls.append, 1)
    assert calls == [1]
    assert not registration.remove()


def test_removed_callback_never_runs() -> None:
    token = CancelToken()
    calls: list[int] = []
    registration = token.on_cancel(calls.append, 1)
    assert registration.remove()
    assert not registration.remove()
    token.cancel()
    assert calls == []


def test_raising_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    token = CancelToken()
    calls: list[int] = []

    def broken() -> None:
        raise RuntimeError("callback bug")

    token.on_cancel(broken)
    token.on_cancel(calls.append, 2)
    token.cancel()
    assert calls == [2]
    assert "callback raised" in caplog.text


def test_on_cancel_needs_a_callable() -> None:
    with pytest.raises(ArgumentTypeError, match="callable"):
        CancelToken().on_cancel(42)  # type: ignore[arg-type]


def test_child_follows_parent_not_the_other_way() -> None:
    parent = CancelToken()
    child = parent.child()
    grandchild = child.child()
    child.cancel()
    assert not parent.cancelled
    assert grandchild.cancelled
    other = parent.child()
    parent.cancel("shutdown")
    assert other.cancelled
    assert other.reason is not None
    assert other.reason.reason == "shutdown"


def test_any_is_cancelled_by_whichever_comes_first() -> None:
    a, b = CancelToken(), CancelToken()
    either = CancelToken.any(a, b)
    b.cancel("b went first")
    assert either.cancelled
    assert either.reason is not None
    assert either.reason.reason == "b went first"
    assert not a.cancelled


def test_linked_token_does_not_keep_growing_its_source() -> None:
    source = CancelToken()
    for _ in range(100):
        source.child().cancel()
    assert source.statistics().callbacks == 0


def test_any_refuses_non_tokens() -> None:
    with pytest.raises(ArgumentTypeError, match="argument 1"):
        CancelToken.any(CancelToken(), "nope")  # type: ignore[arg-type]


def test_cancel_from_many_threads_runs_callbacks_once() -> None:
    token = CancelToken()
    calls: list[int] = []
    lock = threading.Lock()

    def record() -> None:
        with lock:
            calls.append(1)

    token.on_cancel(record)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: token.cancel(), range(64)))
    assert results.count(True) == 1
    assert calls == [1]


async def test_wait_returns_when_cancelled_from_a_thread() -> None:
    token = CancelToken()
    loop = asyncio.get_running_loop()
    loop.call_soon(threading.Thread(target=token.cancel).start)
    await token.wait()
    assert token.cancelled
    await token.wait()  # already cancelled: returns at once


async def test_cancelling_a_waiter_leaves_the_token_alone() -> None:
    token = CancelToken()
    waiter = asyncio.create_task(token.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not token.cancelled
    assert token.statistics().waiters == 0


async def test_bound_scope_is_cancelled_by_the_token() -> None:
    token = CancelToken()
    asyncio.get_running_loop().call_soon(token.cancel, "user pressed stop")
    with CancelScope(token=token) as scope:
        await asyncio.sleep(100)
    assert scope.cancelled_caught
    assert scope.cancel_reason is not None
    assert scope.cancel_reason.source is CancelSource.TOKEN
    assert scope.cancel_reason.reason == "user pressed stop"
    assert token.statistics().callbacks == 0  # the scope unregistered on exit


async def test_bound_scope_cancelled_from_another_thread() -> None:
    token = CancelToken()

    def later() -> None:
        token.cancel("from a thread")

    asyncio.get_running_loop().call_later(0.001, threading.Thread(target=later).start)
    with CancelScope(token=token) as scope:
        await asyncio.sleep(30)
    assert scope.cancelled_caught


async def test_scope_bound_to_a_cancelled_token_starts_cancelled() -> None:
    token = CancelToken()
    token.cancel()
    with CancelScope(token=token) as scope:
        await asyncio.sleep(100)
    assert scope.cancelled_caught


async def test_deadline_cancels_the_token(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    token = CancelToken(timeout=5)
    assert token.deadline == pytest.approx(start + 5)
    await token.wait()
    assert loop.time() - start == pytest.approx(5)
    assert token.reason is not None
    assert token.reason.source is CancelSource.DEADLINE


async def test_deadlines_only_move_earlier(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    token = CancelToken()
    token.cancel_after(10)
    token.cancel_after(20)
    assert token.deadline == pytest.approx(start + 10)
    token.cancel_after(2)
    await token.wait()
    assert loop.time() - start == pytest.approx(2)


async def test_token_deadline_is_part_of_the_effective_deadline(
    virtual_clock: VirtualClock,
) -> None:
    from corral import current_effective_deadline

    token = CancelToken(timeout=3)
    with CancelScope(token=token):
        assert current_effective_deadline() == token.deadline


def test_deadline_needs_a_running_loop() -> None:
    with pytest.raises(UsageError, match="running loop"):
        CancelToken(timeout=1)


async def test_bad_timeouts() -> None:
    with pytest.raises(InvalidArgumentError, match="NaN"):
        CancelToken(timeout=float("nan"))
    with pytest.raises(InvalidArgumentError, match="negative"):
        CancelToken().cancel_after(-1)


async def test_statistics_and_repr() -> None:
    token = CancelToken()
    token.on_cancel(lambda: None)
    stats = token.statistics()
    assert (stats.cancelled, stats.callbacks, stats.waiters) == (False, 1, 0)
    assert repr(token) == "<CancelToken active, 1 callbacks>"
    token.cancel("bye")
    assert repr(token) == "<CancelToken cancelled (explicit: bye), 0 callbacks>"
    assert token.statistics().reason is not None


async def test_deadline_argument_and_cancel_at(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    token = CancelToken(deadline=start + 4)
    assert token.deadline == start + 4
    token.cancel_at(start + 9)  # later: ignored, deadlines only move earlier
    assert token.deadline == start + 4
    await token.wait()
    assert loop.time() - start == pytest.approx(4)
    assert token.reason is not None
    assert token.reason.source is CancelSource.DEADLINE


async def test_cancel_at_refuses_bad_deadlines() -> None:
    with pytest.raises(InvalidArgumentError, match="NaN"):
        CancelToken().cancel_at(float("nan"))
    with pytest.raises(ArgumentTypeError, match="deadline"):
        CancelToken().cancel_at("soon")  # type: ignore[arg-type]


def test_cancel_at_needs_a_running_loop() -> None:
    with pytest.raises(UsageError, match="running loop"):
        CancelToken(deadline=5.0)


def test_cancel_keeps_a_forwarded_source() -> None:
    token = CancelToken()
    token.cancel("caller's deadline", source=CancelSource.DEADLINE)
    assert token.reason is not None
    assert token.reason.source is CancelSource.DEADLINE
    assert token.reason.reason == "caller's deadline"
    with pytest.raises(ArgumentTypeError, match="CancelSource"):
        CancelToken().cancel(source="deadline")  # type: ignore[arg-type]
