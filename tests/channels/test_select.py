"""select: Go's select3.go rules, fairness, bias, futures, events, timeouts, bad input,
and cancellation that leaves no trace."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter

import pytest

import corral
from corral import (
    Channel,
    DefaultCase,
    SelectCase,
    Selected,
    TimeoutCase,
    default_case,
    event_case,
    future_case,
    receive_case,
    select,
    send_case,
    timeout_case,
)
from corral.errors import (
    ArgumentTypeError,
    BrokenResourceError,
    ClosedResourceError,
    InvalidArgumentError,
)
from corral.testing import VirtualClock, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")


async def blocks(select_call: object) -> bool:
    """Go's testBlock: does the select still wait after every other task is blocked?"""
    task = asyncio.ensure_future(select_call)  # type: ignore[call-overload]
    await wait_all_tasks_blocked()
    if task.done():
        task.result()
        return False
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return True


def closed_channel() -> Channel[int]:
    channel = Channel[int]()
    channel.close()
    return channel


# -- Go's test/chan/select3.go, assertion by assertion ---------------------------------


async def test_go_empty_select_blocks_until_cancelled() -> None:
    assert await blocks(select())


async def test_go_nil_channel_cases_block() -> None:
    assert await blocks(select(receive_case(None)))
    assert await blocks(select(send_case(None, 7)))
    assert await blocks(select(receive_case(None), send_case(None, 7)))


async def test_go_closed_channel_receive_never_blocks() -> None:
    channel = closed_channel()
    result = await select(channel.receive_case())
    assert result == Selected(0, channel.receive_case(), None, closed=True)
    assert result.closed


async def test_go_send_on_closed_channel_raises() -> None:
    with pytest.raises(ClosedResourceError):
        await select(closed_channel().send_case(7))


async def test_go_select_does_not_match_itself() -> None:
    channel = Channel[int]()
    assert await blocks(select(channel.send_case(1), channel.receive_case()))
    assert not channel._senders
    assert not channel._receivers


async def test_go_default_makes_nil_and_empty_selects_non_blocking() -> None:
    assert (await select(receive_case(None), default_case())).index == 1
    assert (await select(send_case(None, 7), default_case())).index == 1
    assert (await select(default_case())).case is default_case()


async def test_go_buffered_receive_and_send() -> None:
    full = Channel[int](1)
    full.send_nowait(7)
    assert (await select(full.receive_case())).value == 7
    assert await blocks(select(full.receive_case()))
    assert not await blocks(select(full.send_case(8)))
    assert await blocks(select(full.send_case(9)))
    assert full.receive_nowait() == 8


async def test_go_unbuffered_cases_block_without_a_partner() -> None:
    channel = Channel[int]()
    assert await blocks(select(channel.receive_case()))
    assert await blocks(select(channel.send_case(1)))


async def test_go_closed_receive_fires_among_blocking_cases() -> None:
    closed = closed_channel()
    result = await select(Channel[int]().receive_case(), closed.receive_case())
    assert (result.index, result.closed) == (1, True)


# -- blocking, then woken --------------------------------------------------------------


async def test_blocked_select_receives_from_a_later_sender() -> None:
    a, b = Channel[str](), Channel[str]()
    waiting = asyncio.create_task(select(a.receive_case(), b.receive_case()))
    await wait_all_tasks_blocked()
    assert a.statistics().waiting_receivers == 1
    await b.send("hello")
    result = await waiting
    assert (result.index, result.value) == (1, "hello")
    assert a.statistics().waiting_receivers == 0
    assert not a._receivers


async def test_blocked_select_send_is_taken_by_a_receiver() -> None:
    a, b = Channel[str](), Channel[str]()
    waiting = asyncio.create_task(select(a.send_case("x"), b.send_case("y")))
    await wait_all_tasks_blocked()
    assert a.receive_nowait() == "x"
    result = await waiting
    assert result.case is not None
    assert result.index == 0
    # the losing send offered nothing: b stays empty
    with pytest.raises(corral.errors.WouldBlock):
        b.receive_nowait()


async def test_two_selects_rendezvous_with_each_other() -> None:
    channel = Channel[int]()
    receiving = asyncio.create_task(select(channel.receive_case(), timeout_case(5)))
    await wait_all_tasks_blocked()
    sent = await select(channel.send_case(42), timeout_case(5))
    assert sent.index == 0
    assert (await receiving).value == 42


async def test_close_while_waiting_fires_receive_and_fails_send() -> None:
    channel = Channel[int]()
    receiving = asyncio.create_task(select(channel.receive_case()))
    await wait_all_tasks_blocked()
    channel.close()
    assert (await receiving).closed
    other = Channel[int]()
    sending = asyncio.create_task(select(other.send_case(1)))
    await wait_all_tasks_blocked()
    other.close()
    with pytest.raises(ClosedResourceError):
        await sending


async def test_send_case_on_a_broken_channel_raises() -> None:
    tx, rx = Channel[int]().split()
    rx.close()
    with pytest.raises(BrokenResourceError):
        await select(tx.send_case(1))


async def test_closed_end_cases_raise() -> None:
    tx, rx = Channel[int]().split()
    rx_closed = rx.clone()
    rx_closed.close()
    with pytest.raises(ClosedResourceError):
        await select(rx_closed.receive_case())
    tx_closed = tx.clone()
    tx_closed.close()
    with pytest.raises(ClosedResourceError):
        await select(tx_closed.send_case(1))


async def test_timeout_case_fires_on_virtual_time(virtual_clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    channel = Channel[int]()
    result = await select(channel.receive_case(), timeout_case(5))
    assert isinstance(result.case, TimeoutCase)
    assert loop.time() - start == 5
    assert not channel._receivers
    assert (await select(timeout_case(0), channel.receive_case())).index == 0


async def test_future_and_promise_cases() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    loop.call_soon(future.set_result, "done")
    result = await select(Channel[int]().receive_case(), future_case(future))
    assert (result.index, result.value) == (1, "done")
    promise: corral.Promise[int] = corral.Promise()
    loop.call_soon(promise.resolve, 3)
    assert (await select(future_case(promise))).value == 3
    assert (await select(future_case(promise))).value == 3  # ready at once now
    failed: asyncio.Future[int] = loop.create_future()
    failed.set_exception(OSError("boom"))
    with pytest.raises(OSError, match="boom"):
        await select(future_case(failed))


async def test_losing_future_case_leaves_the_future_alone() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    promise: corral.Promise[int] = corral.Promise()
    result = await select(future_case(future), future_case(promise), timeout_case(1))
    assert result.index == 2
    assert not future.done()
    assert not future.cancelled()
    assert promise.statistics().waiters == 0
    future.cancel()


async def test_event_case() -> None:
    event = asyncio.Event()
    waiting = asyncio.create_task(select(event_case(event), timeout_case(10)))
    await wait_all_tasks_blocked()
    event.set()
    assert (await waiting).index == 0
    assert (await select(event_case(event))).index == 0


# -- fairness ---------------------------------------------------------------------------


async def test_ready_cases_are_chosen_uniformly() -> None:
    random.seed(20240611)
    channels = [Channel[int](1) for _ in range(4)]
    cases = [channel.receive_case() for channel in channels]
    trials = 8000
    counts: Counter[int] = Counter()
    for _ in range(trials):
        for channel in channels:
            if not channel.statistics().buffered:
                channel.send_nowait(0)
        counts[(await select(*cases)).index] += 1
    expected = trials / 4
    chi_square = sum((counts[i] - expected) ** 2 / expected for i in range(4))
    assert chi_square < 16.27  # 3 degrees of freedom, p = 0.001


async def test_biased_select_takes_the_first_ready_case() -> None:
    channels = [Channel[int](math.inf) for _ in range(3)]
    for channel in channels:
        for _ in range(10):
            channel.send_nowait(0)
    cases = [channel.receive_case() for channel in channels]
    picks = {(await select(*cases, biased=True)).index for _ in range(10)}
    assert picks == {0}
    assert (await select(cases[2], cases[1], biased=True)).index == 0


# -- bad input --------------------------------------------------------------------------


async def test_non_case_argument_is_a_type_error_naming_its_position() -> None:
    channel = Channel[int](1)
    channel.send_nowait(1)
    with pytest.raises(ArgumentTypeError, match="argument 1 is not a case") as info:
        await select(channel.receive_case(), channel)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    assert channel.statistics().buffered == 1


async def test_non_case_error_is_not_chained_and_case_errors_pass_through() -> None:
    with pytest.raises(ArgumentTypeError, match="argument 0 is not a case") as info:
        await select(object())  # type: ignore[arg-type]
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__

    class Faulty(SelectCase):
        __slots__ = ()

        def _ready(self) -> bool:
            raise AttributeError("from inside the case")

    with pytest.raises(AttributeError, match="from inside the case"):
        await select(Channel[int]().receive_case(), Faulty())


async def test_two_default_cases_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="two default cases"):
        await select(default_case(), DefaultCase())


def test_case_constructors_check_their_arguments() -> None:
    tx, rx = Channel[int]().split()
    with pytest.raises(ArgumentTypeError, match="ReceiveEnd"):
        receive_case(tx)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="SendEnd"):
        send_case(rx, 1)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="future_case"):
        future_case(object())  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"asyncio\.Event"):
        event_case(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="delay"):
        timeout_case(-1)
    assert receive_case(rx).end is rx
    assert send_case(tx, 2).item == 2


# -- cancellation -----------------------------------------------------------------------


async def test_cancelled_select_leaves_no_registration() -> None:
    a, b = Channel[int](), Channel[int]()
    event = asyncio.Event()
    assert await blocks(
        select(a.receive_case(), b.send_case(1), event_case(event), timeout_case(9))
    )
    assert not a._receivers
    assert not b._senders
    assert a.statistics().waiting_receivers == 0
    assert b.statistics().waiting_senders == 0


async def test_item_handed_to_a_cancelled_select_goes_back() -> None:
    channel = Channel[int]()
    waiting = asyncio.create_task(select(channel.receive_case(), timeout_case(9)))
    await wait_all_tasks_blocked()
    channel.send_nowait(5)  # handed to the select, which has not run yet
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert channel.receive_nowait() == 5


async def test_send_case_taken_before_cancellation_reports_it_then_cancels() -> None:
    channel = Channel[int]()
    results: list[Selected] = []

    async def selecting() -> None:
        results.append(await select(channel.send_case(5), timeout_case(9)))
        await asyncio.sleep(0)

    task = asyncio.create_task(selecting())
    await wait_all_tasks_blocked()
    assert channel.receive_nowait() == 5
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.index for r in results] == [0]


async def test_selected_matches_patterns() -> None:
    channel = Channel[str](1)
    channel.send_nowait("job")
    match await select(channel.receive_case(), default_case()):
        case Selected(0, str(job), closed=False):
            assert job == "job"
        case _:
            pytest.fail("the receive case should have matched")
    match await select(channel.receive_case(), default_case()):
        case Selected(case=DefaultCase()):
            pass
        case _:
            pytest.fail("the default case should have matched")
    assert "DefaultCase" in repr(await select(default_case()))
