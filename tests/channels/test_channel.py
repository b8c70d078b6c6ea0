"""Channel: rendezvous, buffering, closing, counted ends, bad input, statistics."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

import corral
from corral import Channel, ChannelStatistics
from corral.errors import (
    ArgumentTypeError,
    BrokenResourceError,
    ClosedResourceError,
    EndOfChannel,
    InvalidArgumentError,
    WouldBlock,
)
from corral.testing import wait_all_tasks_blocked

#: Every test here runs on the virtual-clock loop (it can tell when all tasks wait).
pytestmark = pytest.mark.usefixtures("virtual_clock")


async def test_rendezvous_send_waits_for_a_receiver() -> None:
    channel = Channel[str]()
    sent: list[str] = []

    async def producer() -> None:
        await channel.send("a")
        sent.append("a")

    task = asyncio.create_task(producer())
    await wait_all_tasks_blocked()
    assert sent == []
    assert channel.statistics().waiting_senders == 1
    assert channel.statistics().buffered == 0
    assert await channel.receive() == "a"
    await task
    assert sent == ["a"]


async def test_rendezvous_nowait_needs_a_partner() -> None:
    channel = Channel[int](0)
    with pytest.raises(WouldBlock):
        channel.send_nowait(1)
    with pytest.raises(WouldBlock):
        channel.receive_nowait()
    receiver = asyncio.create_task(channel.receive())
    await wait_all_tasks_blocked()
    channel.send_nowait(7)
    assert await receiver == 7


async def test_buffered_channel_fills_then_blocks() -> None:
    channel = Channel[int](2)
    channel.send_nowait(1)
    channel.send_nowait(2)
    with pytest.raises(WouldBlock):
        channel.send_nowait(3)
    blocked = asyncio.create_task(channel.send(3))
    await wait_all_tasks_blocked()
    assert not blocked.done()
    assert channel.receive_nowait() == 1
    # the waiting sender's item moved into the freed slot, in order
    await blocked
    assert [channel.receive_nowait(), channel.receive_nowait()] == [2, 3]
    assert channel.statistics().peak == 2


async def test_unbounded_channel_never_blocks_a_sender() -> None:
    channel = Channel[int](math.inf)
    for i in range(1000):
        await channel.send(i)
    assert channel.statistics().buffered == 1000
    assert [channel.receive_nowait() for _ in range(1000)] == list(range(1000))


async def test_close_lets_receivers_drain_then_end() -> None:
    channel = Channel[int](3)
    for i in range(3):
        channel.send_nowait(i)
    channel.close()
    channel.close()  # idempotent
    with pytest.raises(ClosedResourceError):
        await channel.send(9)
    with pytest.raises(ClosedResourceError):
        channel.send_nowait(9)
    assert [item async for item in channel] == [0, 1, 2]
    with pytest.raises(EndOfChannel):
        await channel.receive()
    with pytest.raises(EndOfChannel):
        channel.receive_nowait()


async def test_close_wakes_blocked_receivers_and_senders() -> None:
    channel = Channel[int]()
    receiver = asyncio.create_task(channel.receive())
    other = Channel[int]()
    sender = asyncio.create_task(other.send(1))
    await wait_all_tasks_blocked()
    channel.close()
    other.close()
    with pytest.raises(EndOfChannel):
        await receiver
    with pytest.raises(ClosedResourceError):
        await sender
    assert other.statistics().waiting_senders == 0


async def test_split_ends_count_and_close_the_channel_with_the_last_send_end() -> None:
    tx, rx = Channel[int](4).split()
    tx2 = tx.clone()
    async with tx:
        await tx.send(1)
    assert rx.statistics().open_send_ends == 1
    assert not rx.statistics().closed
    with tx2:
        await tx2.send(2)
    assert rx.statistics().closed
    assert [item async for item in rx] == [1, 2]


async def test_receivers_end_only_when_every_send_clone_is_closed() -> None:
    tx, rx = Channel[int]().split()
    clones = [tx.clone() for _ in range(3)]
    received: list[int] = []

    async def consume() -> None:
        async for item in rx:
            received.append(item)

    consumer = asyncio.create_task(consume())
    tx.close()
    for n, clone in enumerate(clones):
        await clone.send(n)
        await wait_all_tasks_blocked()
        assert not consumer.done()
        clone.close()
    await consumer
    assert received == [0, 1, 2]


async def test_closing_the_last_receive_end_breaks_the_channel() -> None:
    tx, rx = Channel[int](1).split()
    rx2 = rx.clone()
    tx.send_nowait(1)
    blocked = asyncio.create_task(tx.send(2))
    await wait_all_tasks_blocked()
    rx.close()
    assert not blocked.done()
    rx2.close()
    with pytest.raises(BrokenResourceError):
        await blocked
    with pytest.raises(BrokenResourceError):
        await tx.send(3)
    with pytest.raises(BrokenResourceError):
        tx.send_nowait(3)
    stats = tx.statistics()
    assert (stats.broken, stats.buffered, stats.open_receive_ends) == (True, 0, 0)


async def test_closed_end_refuses_every_operation() -> None:
    tx, rx = Channel[int](1).split()
    tx.close()
    rx.close()
    with pytest.raises(ClosedResourceError):
        await tx.send(1)
    with pytest.raises(ClosedResourceError):
        tx.send_nowait(1)
    with pytest.raises(ClosedResourceError):
        tx.clone()
    with pytest.raises(ClosedResourceError):
        await rx.receive()
    with pytest.raises(ClosedResourceError):
        rx.receive_nowait()
    with pytest.raises(ClosedResourceError):
        rx.clone()
    assert tx.closed
    assert rx.closed


async def test_closing_an_end_wakes_the_tasks_waiting_on_it() -> None:
    channel = Channel[int]()
    rx, rx_other = channel.receive_end(), channel.receive_end()
    tx, tx_other = channel.send_end(), channel.send_end()
    receiving = asyncio.create_task(rx.receive())
    await wait_all_tasks_blocked()
    rx.close()
    with pytest.raises(ClosedResourceError, match="closed while this task waited"):
        await receiving
    full = Channel[int]()
    tx_full = full.send_end()
    sending = asyncio.create_task(tx_full.send(1))
    await wait_all_tasks_blocked()
    tx_full.close()
    with pytest.raises(ClosedResourceError, match="closed while this task waited"):
        await sending
    assert full.statistics().waiting_senders == 0
    # the other ends of the first channel still work
    other = asyncio.create_task(rx_other.receive())
    await tx.send(5)
    assert await other == 5
    tx_other.close()


def test_wrong_end_operations_say_which_end_to_use() -> None:
    tx, rx = Channel[int]().split()
    with pytest.raises(TypeError, match="receive through the ReceiveEnd"):
        tx.receive  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ArgumentTypeError, match="send through the SendEnd"):
        rx.send_nowait  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(TypeError, match="iterate the channel's ReceiveEnd"):
        tx.__aiter__()  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        tx.nothing_like_this  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("capacity", [-1, -0.5, math.nan, -math.inf, 1.5])
def test_bad_capacity_is_refused_by_name(capacity: float) -> None:
    with pytest.raises(InvalidArgumentError, match="capacity") as info:
        Channel[int](capacity)
    assert isinstance(info.value, ValueError)
    assert repr(capacity) in str(info.value)


@pytest.mark.parametrize("capacity", ["3", None, True])
def test_capacity_must_be_a_number(capacity: Any) -> None:
    with pytest.raises(ArgumentTypeError, match="capacity"):
        Channel[int](capacity)


def test_capacity_normalised() -> None:
    assert Channel[int](3.0).capacity == 3
    assert Channel[int](math.inf).capacity == math.inf


def test_new_ends_of_closed_or_broken_channels_are_refused() -> None:
    channel = Channel[int]()
    channel.receive_end().close()
    with pytest.raises(ClosedResourceError):
        channel.receive_end()
    closed = Channel[int]()
    closed.close()
    with pytest.raises(ClosedResourceError):
        closed.split()


async def test_direct_receive_on_a_broken_channel_is_refused() -> None:
    channel = Channel[int]()
    waiting = asyncio.create_task(channel.receive())
    await wait_all_tasks_blocked()
    channel.receive_end().close()
    with pytest.raises(ClosedResourceError, match="every receive end"):
        await waiting
    with pytest.raises(ClosedResourceError):
        channel.receive_nowait()


async def test_statistics_and_repr_tell_the_state() -> None:
    tx, rx = Channel[str](4).split()
    tx.send_nowait("x")
    assert tx.statistics() == ChannelStatistics(
        capacity=4,
        buffered=1,
        peak=1,
        waiting_senders=0,
        waiting_receivers=0,
        open_send_ends=1,
        open_receive_ends=1,
        closed=False,
        broken=False,
    )
    assert repr(rx) == (
        "<ReceiveEnd open of channel: 1/4 buffered, 0 waiting to send, "
        "0 waiting to receive, ends 1 send/1 receive>"
    )
    plain = Channel[int]()
    waiter = asyncio.create_task(plain.receive())
    await wait_all_tasks_blocked()
    assert repr(plain) == "<Channel rendezvous, 0 waiting to send, 1 waiting to receive>"
    plain.close()
    with pytest.raises(EndOfChannel):
        await waiter
    assert repr(plain).endswith("closed>")
    tx.close()
    assert repr(tx).startswith("<SendEnd closed")
    assert "unbounded" in repr(Channel[int](math.inf))


async def test_fault_points_announce_send_and_receive() -> None:
    from corral._core._faults import FAULTS

    seen: list[tuple[str, object]] = []

    async def injector(point: str, target: object) -> None:
        seen.append((point, target))
        if len(seen) == 3:
            raise OSError("injected")

    channel = Channel[int](1)
    uninstall = FAULTS.install(injector)
    try:
        await channel.send(1)
        assert await channel.receive() == 1
        with pytest.raises(OSError, match="injected"):
            await channel.send(2)
    finally:
        uninstall()
    assert seen == [
        ("channel.send", channel),
        ("channel.receive", channel),
        ("channel.send", channel),
    ]
    assert channel.statistics().buffered == 0


async def test_instruments_see_tasks_park_and_wake() -> None:
    events: list[tuple[str, object]] = []

    class Recorder:
        def task_parked(self, task: object, on: object) -> None:
            events.append(("parked", on))

        def task_woken(self, task: object, on: object) -> None:
            events.append(("woken", on))

        def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
            events.append((name, source))

    channel = Channel[int]()
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        receiver = asyncio.create_task(channel.receive())
        await wait_all_tasks_blocked()
        await channel.send(1)
        assert await receiver == 1
        channel.close()
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert events == [("parked", channel), ("woken", channel), ("channel.closed", channel)]
