"""Rejected promises that nobody handled are reported when collected; handled ones not."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from corral._core._promise import Promise, set_unhandled_rejection_handler
from corral.errors import ArgumentTypeError

Report = tuple[BaseException, "asyncio.AbstractEventLoop | None"]


class Boom(Exception):
    pass


@pytest.fixture
def reports() -> Iterator[list[Report]]:
    """Unhandled rejections reported during the test (collected before reading)."""
    seen: list[Report] = []
    previous = set_unhandled_rejection_handler(lambda error, loop: seen.append((error, loop)))
    try:
        yield seen
    finally:
        gc.collect()
        set_unhandled_rejection_handler(previous)


def collect() -> None:
    gc.collect()


async def test_an_unhandled_rejection_is_reported_when_collected(
    reports: list[Report],
) -> None:
    error = Boom("lost")
    promise = Promise.rejected(error)
    collect()
    assert reports == []  # still referenced: someone may handle it yet
    del promise
    collect()
    assert reports == [(error, asyncio.get_running_loop())]


async def test_the_end_of_a_chain_that_passes_a_rejection_on_is_reported(
    reports: list[Report],
) -> None:
    error = Boom()
    source = Promise.rejected(error)
    derived = source.then(lambda value: value)
    await asyncio.sleep(0)
    assert derived.done()
    del source, derived
    collect()
    assert [reported for reported, _ in reports] == [error]


async def test_a_promise_adopting_a_rejection_is_reported(reports: list[Report]) -> None:
    error = Boom()
    promise: Promise[int] = Promise()
    promise.resolve(Promise.rejected(error))
    await Promise.resolved(None).then(lambda _: None)
    assert promise.done()
    del promise
    collect()
    assert reports == [(error, asyncio.get_running_loop())]


def test_a_rejection_outside_any_loop_is_reported_without_a_loop(reports: list[Report]) -> None:
    error = Boom()
    Promise.rejected(error)
    collect()
    assert reports == [(error, None)]


@pytest.mark.parametrize(
    "handle",
    [
        lambda p: p.then(None, lambda _: None),
        lambda p: p.catch(lambda _: None),
        lambda p: p.exception(),
        lambda p: Promise.try_(p.result).catch(lambda _: None),
        lambda p: p.then(lambda _: None).catch(lambda _: None),
        lambda p: p.finally_(lambda: None).catch(lambda _: None),
    ],
    ids=["then", "catch", "exception", "result", "then-catch", "finally-catch"],
)
async def test_handled_rejections_are_not_reported(
    reports: list[Report], handle: Callable[[Promise[Any]], object]
) -> None:
    promise = Promise.rejected(Boom())
    handle(promise)
    await Promise.resolved(None).then(lambda _: None)
    del promise
    collect()
    assert reports == []


async def test_awaiting_handles_a_rejection(reports: list[Report]) -> None:
    promise: Promise[int] = Promise()
    waiter = asyncio.ensure_future(promise)
    await asyncio.sleep(0)
    promise.reject(Boom())
    with pytest.raises(Boom):
        await waiter
    with pytest.raises(Boom):
        await Promise.rejected(Boom())
    del promise, waiter
    collect()
    assert reports == []


async def test_as_future_hands_the_rejection_to_the_future(reports: list[Report]) -> None:
    future = Promise.rejected(Boom()).as_future()
    with pytest.raises(Boom):
        await future
    collect()
    assert reports == []


async def test_reactions_registered_before_the_rejection_count(reports: list[Report]) -> None:
    promise: Promise[int] = Promise()
    handled = promise.catch(lambda _: "handled")
    promise.reject(Boom())
    assert await handled == "handled"
    del promise
    collect()
    assert reports == []


async def test_cancellation_is_never_reported(reports: list[Report]) -> None:
    Promise.rejected(asyncio.CancelledError())
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    Promise.from_future(future)
    future.cancel()
    await asyncio.sleep(0)
    collect()
    assert reports == []


async def test_default_handler_uses_the_loop_exception_handler() -> None:
    assert set_unhandled_rejection_handler(None) is None
    loop = asyncio.get_running_loop()
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: contexts.append(context))
    try:
        error = Boom()
        Promise.rejected(error)
        collect()
    finally:
        loop.set_exception_handler(None)
    assert contexts == [{"message": "Promise rejection was never handled", "exception": error}]


def test_default_handler_logs_when_no_loop_is_known(caplog: pytest.LogCaptureFixture) -> None:
    error = Boom("nobody looked")
    with caplog.at_level(logging.ERROR, logger="corral"):
        Promise.rejected(error)
        collect()
    [record] = [record for record in caplog.records if record.name == "corral"]
    assert record.getMessage() == "Promise rejection was never handled"
    assert record.exc_info is not None
    assert record.exc_info[1] is error


def test_setting_a_handler_returns_the_previous_one() -> None:
    def first(error: BaseException, loop: object) -> None:
        raise AssertionError("not called")

    def second(error: BaseException, loop: object) -> None:
        raise AssertionError("not called")

    assert set_unhandled_rejection_handler(first) is None
    try:
        assert set_unhandled_rejection_handler(second) is first
    finally:
        assert set_unhandled_rejection_handler(None) is second


def test_the_handler_must_be_callable() -> None:
    with pytest.raises(ArgumentTypeError, match=r"handler must be a callable.*not str \('log'\)"):
        set_unhandled_rejection_handler("log")  # type: ignore[arg-type]
    assert set_unhandled_rejection_handler(None) is None
