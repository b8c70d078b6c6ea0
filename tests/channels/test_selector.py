"""Selector: select()'s rules on both of its paths (channel receives only, and any
cases), uniform and biased choice, bad input at construction, statistics, and
cancellation that loses and invents nothing, pinned by random interleavings."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
from corral import (
    Channel,
    DefaultCase,
    Selected,
    Selector,
    SelectorStatistics,
    default_case,
    event_case,
    receive_case,
    send_case,
    timeout_case,
)
from corral.errors import (
    ArgumentTypeError,
    ClosedResourceError,
    InvalidArgumentError,
    WouldBlock,
)
from corral.testing import VirtualClock, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")


async def blocks(selector: Selector) -> bool:
    """Does a select still wait once every other task is blocked? (cancels it if so)"""
    task = asyncio.ensure_future(selector.select())
    await wait_all_tasks_blocked()
    if task.done():
        task.result()
        return False
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return True


def chi_square(counts: Counter[int], cells: int, trials: int) -> float:
    expected = trials / cells
    return sum((counts[i] - expected) ** 2 / expected for i in range(cells))


# -- the channel-receive path -----------------------------------------------------------


async def test_receives_the_buffered_item_and_says_which_case() -> None:
    channels = [Channel[str](math.inf) for _ in range(4)]
    channels[2].send_nowait("a")
    channels[2].send_nowait("b")
    selector = Selector(*(channel.receive_case() for channel in channels))
    first = await selector.select()
    assert first == Selected(2, channels[2].receive_case(), "a")
    assert first.case is selector.cases[2]
    assert (await selector.select()).value == "b"
    assert await blocks(selector)
    assert all(not channel._receivers for channel in channels)


async def test_closed_drained_channel_fires_closed_after_its_items() -> None:
    open_channel, closing = Channel[int](), Channel[int](2)
    closing.send_nowait(1)
    closing.close()
    selector = Selector(open_channel.receive_case(), closing.receive_case())
    assert (await selector.select()).value == 1
    result = await selector.select()
    assert (result.index, result.value, result.closed) == (1, None, True)


async def test_takes_the_item_of_a_blocked_sender_and_completes_its_send() -> None:
    rendezvous = Channel[int]()
    sender = asyncio.create_task(rendezvous.send(5))
    await wait_all_tasks_blocked()
    selector = Selector(Channel[int]().receive_case(), rendezvous.receive_case())
    assert (await selector.select()).value == 5
    await sender
    assert rendezvous.statistics().waiting_senders == 0


async def test_a_full_buffer_takes_in_the_blocked_senders_item() -> None:
    full = Channel[int](1)
    full.send_nowait(1)
    sender = asyncio.create_task(full.send(2))
    await wait_all_tasks_blocked()
    selector = Selector(full.receive_case())
    assert (await selector.select()).value == 1
    await sender  # its item moved into the buffer
    assert full.statistics().buffered == 1
    assert (await selector.select()).value == 2


async def test_waits_for_a_later_sender() -> None:
    a, b = Channel[int](), Channel[int]()
    selector = Selector(a.receive_case(), b.receive_case())
    waiting = asyncio.create_task(selector.select())
    await wait_all_tasks_blocked()
    assert a.statistics().waiting_receivers == 1
    await b.send(9)
    result = await waiting
    assert (result.index, result.value) == (1, 9)
    assert not a._receivers
    assert not b._receivers


async def test_the_same_channel_twice_is_chosen_evenly() -> None:
    random.seed(7)
    channel = Channel[int](math.inf)
    selector = Selector(channel.receive_case(), channel.receive_case())
    trials = 2000
    for i in range(trials):
        channel.send_nowait(i)
    counts = Counter([(await selector.select()).index for _ in range(trials)])
    assert chi_square(counts, 2, trials) < 10.83  # 1 degree of freedom, p = 0.001


async def test_ready_channels_are_chosen_uniformly() -> None:
    random.seed(20240611)
    channels = [Channel[int](1) for _ in range(4)]
    selector = Selector(*(channel.receive_case() for channel in channels))
    trials = 8000
    counts: Counter[int] = Counter()
    for _ in range(trials):
        for channel in channels:
            if not channel.statistics().buffered:
                channel.send_nowait(0)
        counts[(await selector.select()).index] += 1
    assert chi_square(counts, 4, trials) < 16.27  # 3 degrees of freedom, p = 0.001


async def test_biased_takes_the_first_ready_channel() -> None:
    channels = [Channel[int](math.inf) for _ in range(3)]
    for channel in channels[1:]:
        for i in range(10):
            channel.send_nowait(i)
    selector = Selector(*(channel.receive_case() for channel in channels), biased=True)
    assert {(await selector.select()).index for _ in range(10)} == {1}
    assert (await selector.select()).index == 2


async def test_readiness_hints_follow_every_way_a_channel_becomes_ready() -> None:
    buffered, rendezvous, closing, broken = (
        Channel[int](4),
        Channel[int](),
        Channel[int](),
        Channel[int](),
    )
    tx, rx = broken.split()
    selector = Selector(
        buffered.receive_case(),
        rendezvous.receive_case(),
        closing.receive_case(),
        broken.receive_case(),
    )
    assert await blocks(selector)  # every hint dropped: nothing was ready
    assert selector._maybe_ready == set()
    buffered.send_nowait(1)
    assert (await selector.select()).value == 1
    buffered.send_nowait(2)
    assert buffered.receive_nowait() == 2  # taken behind the selector's back
    assert await blocks(selector)
    sender = asyncio.create_task(rendezvous.send(3))
    await wait_all_tasks_blocked()
    assert (await selector.select()).value == 3
    await sender
    other = asyncio.create_task(corral.select(buffered.send_case(4), timeout_case(9)))
    assert (await selector.select()).value == 4  # a select's send case is noticed too
    await other
    closing.close()
    assert (await selector.select()).closed
    closing_case = closing.receive_case()
    selector = Selector(buffered.receive_case(), broken.receive_case())
    assert await blocks(selector)
    rx.close()  # breaks the channel: a receive raises instead of waiting
    with pytest.raises(ClosedResourceError):
        await selector.select()
    del tx, closing_case


async def test_a_selector_that_is_gone_stops_watching_its_channels() -> None:
    channel = Channel[int](1)
    first = Selector(channel.receive_case())
    second = Selector(channel.receive_case())  # an equal set of hints, a distinct watch
    assert channel._watchers is not None
    assert len(channel._watchers) == 2
    del first
    gc.collect()
    assert channel._watchers is not None
    assert len(channel._watchers) == 1
    channel.send_nowait(1)
    assert (await second.select()).value == 1
    assert second._maybe_ready == {0}
    del second
    gc.collect()
    assert channel._watchers is None


# -- the path for any cases -------------------------------------------------------------


async def test_mixed_cases_are_chosen_uniformly() -> None:
    random.seed(11)
    sources = [Channel[int](1) for _ in range(2)]
    sinks = [Channel[int](1) for _ in range(2)]
    selector = Selector(
        sources[0].receive_case(),
        sinks[0].send_case(0),
        sources[1].receive_case(),
        sinks[1].send_case(0),
    )
    trials = 8000
    counts: Counter[int] = Counter()
    for _ in range(trials):
        for channel in sources:
            if not channel.statistics().buffered:
                channel.send_nowait(0)
        for channel in sinks:
            if channel.statistics().buffered:
                channel.receive_nowait()
        counts[(await selector.select()).index] += 1
    assert chi_square(counts, 4, trials) < 16.27


async def test_go_rules_hold_on_the_general_path() -> None:
    assert await blocks(Selector())
    assert await blocks(Selector(receive_case(None), send_case(None, 1)))
    assert (await Selector(receive_case(None), default_case()).select()).index == 1
    rendezvous = Channel[int]()
    assert await blocks(Selector(rendezvous.send_case(1), rendezvous.receive_case()))
    assert not rendezvous._senders
    assert not rendezvous._receivers
    closed = Channel[int](1)
    closed.close()
    with pytest.raises(ClosedResourceError):
        await Selector(closed.send_case(1)).select()
    buffered = Channel[int](1)
    selector = Selector(buffered.send_case(4), buffered.receive_case(), biased=True)
    assert (await selector.select()).index == 0
    assert (await selector.select()).index == 1  # full now: the receive is the ready one


async def test_default_fires_only_when_nothing_is_ready() -> None:
    channel = Channel[int](1)
    selector = Selector(channel.receive_case(), default_case())
    assert isinstance((await selector.select()).case, DefaultCase)
    channel.send_nowait(3)
    assert (await selector.select()).value == 3


async def test_timeout_and_event_cases(virtual_clock: VirtualClock) -> None:
    event = asyncio.Event()
    channel = Channel[int]()
    selector = Selector(channel.receive_case(), event_case(event), timeout_case(5))
    start = virtual_clock.time()
    assert (await selector.select()).index == 2
    assert virtual_clock.time() - start == 5
    event.set()
    assert (await selector.select()).index == 1


async def test_a_closed_end_raises() -> None:
    _, rx = Channel[int](1).split()
    selector = Selector(rx.receive_case())
    rx.close()
    with pytest.raises(ClosedResourceError):
        await selector.select()


# -- bad input, statistics --------------------------------------------------------------


def test_bad_input_is_refused_when_built() -> None:
    channel = Channel[int]()
    with pytest.raises(ArgumentTypeError, match=r"Selector\(\) argument 1 is not a case"):
        Selector(channel.receive_case(), channel)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="two default cases"):
        Selector(default_case(), DefaultCase())
    with pytest.raises(ArgumentTypeError, match="biased must be a bool, not str"):
        Selector(channel.receive_case(), biased="yes")  # type: ignore[arg-type]


async def test_statistics_and_repr() -> None:
    a, b = Channel[int](1), Channel[int](1)
    selector = Selector(a.receive_case(), b.receive_case())
    assert selector.statistics() == SelectorStatistics(cases=2, ready=0, channels_only=True)
    b.send_nowait(1)
    assert selector.statistics().ready == 1
    assert repr(selector) == "<Selector 2 channel receives, 1 ready>"
    mixed = Selector(a.receive_case(), a.send_case(2), timeout_case(0), biased=True)
    assert mixed.statistics() == SelectorStatistics(cases=3, ready=2, channels_only=False)
    assert repr(mixed) == "<Selector 3 cases, 2 ready, biased>"
    assert mixed.biased
    _, rx = Channel[int]().split()
    rx_selector = Selector(rx.receive_case())
    rx.close()
    assert rx_selector.statistics().ready == 1  # a select would raise, not wait


# -- cancellation -----------------------------------------------------------------------


async def test_item_handed_to_a_cancelled_select_goes_back() -> None:
    channel = Channel[int]()
    selector = Selector(Channel[int]().receive_case(), channel.receive_case())
    waiting = asyncio.create_task(selector.select())
    await wait_all_tasks_blocked()
    channel.send_nowait(5)  # handed to the select, which has not run yet
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert channel.receive_nowait() == 5
    assert not channel._receivers


operations = st.lists(
    st.tuples(
        st.sampled_from(["send", "select", "cancel", "tick", "steal", "close"]),
        st.integers(0, 5),
    ),
    max_size=60,
)


async def interleave(capacity: int, plan: list[tuple[str, int]]) -> None:
    channels = [Channel[tuple[int, int]](capacity) for _ in range(3)]
    selectors = [
        Selector(*(channel.receive_case() for channel in channels)),
        Selector(*(channel.receive_case() for channel in channels)),
    ]
    sent: list[tuple[int, int]] = []
    received: list[tuple[int, int]] = []
    tasks: list[asyncio.Task[None]] = []
    counter = iter(range(10_000))

    async def send(which: int, item: int) -> None:
        with contextlib.suppress(corral.errors.ClosedResourceError):
            await channels[which].send((which, item))
            sent.append((which, item))

    async def select(selector: Selector) -> None:
        result = await selector.select()
        if not result.closed:
            assert result.value[0] == result.index
            received.append(result.value)

    selecting: asyncio.Task[None] | None = None
    for op, arg in plan:
        if op == "send":
            tasks.append(asyncio.create_task(send(arg % 3, next(counter))))
        elif op == "select" and (selecting is None or selecting.done()):
            # one select at a time, so each channel's items are taken in order
            selecting = asyncio.create_task(select(selectors[arg % 2]))
            tasks.append(selecting)
        elif op == "cancel" and tasks:
            tasks[arg % len(tasks)].cancel()
        elif op == "steal" and (selecting is None or selecting.done()):
            with contextlib.suppress(WouldBlock, corral.errors.EndOfChannel):
                received.append(channels[arg % 3].receive_nowait())
        elif op == "close":
            channels[arg % 3].close()
        for _ in range(arg if op == "tick" else 1):
            await asyncio.sleep(0)
        if selecting is not None and not selecting.done():
            await wait_all_tasks_blocked()
            # a select that still waits has nothing it could take
            assert all(selector.statistics().ready == 0 for selector in selectors)
    await wait_all_tasks_blocked()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        while True:
            try:
                received.append(channel.receive_nowait())
            except (WouldBlock, corral.errors.EndOfChannel):
                break
        assert not channel._senders
        assert not channel._receivers
    # every item sent is received exactly once, each channel's in FIFO order
    assert sorted(received) == sorted(sent)
    for which in range(3):
        mine = [item for item in received if item[0] == which]
        assert mine == sorted(mine)


@settings(max_examples=150, deadline=None)
@given(capacity=st.sampled_from([0, 1, 3]), plan=operations)
def test_interleavings_with_cancellation_lose_and_invent_nothing(
    capacity: int, plan: list[tuple[str, int]]
) -> None:
    corral.testing.run(interleave, capacity, plan)
