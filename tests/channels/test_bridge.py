"""BridgeChannel: threads and tasks in any mix, exactly-once FIFO delivery, close, timeouts."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import timedelta
from typing import Any

import pytest

import corral
from corral import BridgeChannel, to_thread
from corral.errors import (
    ArgumentTypeError,
    ClosedResourceError,
    DeadlineExceeded,
    EndOfChannel,
    InvalidArgumentError,
    UsageError,
    WouldBlock,
)

WAIT = 10.0


async def test_several_producer_threads_and_consumer_tasks_exactly_once_fifo() -> None:
    channel: BridgeChannel[tuple[int, int]] = BridgeChannel(8)
    producers, per_producer, consumers = 4, 2_000, 3
    received: list[list[tuple[int, int]]] = [[] for _ in range(consumers)]

    def produce(p: int) -> None:
        for i in range(per_producer):
            channel.put((p, i))

    async def consume(c: int) -> None:
        async for item in channel:
            received[c].append(item)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    async with corral.TaskGroup() as tg:
        for c in range(consumers):
            tg.start_soon(consume, c)
        for thread in threads:
            thread.start()
        for thread in threads:
            await to_thread(thread.join, WAIT)
        channel.close()
    every = sorted(item for part in received for item in part)
    assert every == [(p, i) for p in range(producers) for i in range(per_producer)]
    for part in received:  # each consumer sees each producer's items in order
        for p in range(producers):
            mine = [i for q, i in part if q == p]
            assert mine == sorted(mine)
    stats = channel.statistics()
    assert (stats.sent, stats.received, stats.buffered) == (8_000, 8_000, 0)


async def test_task_to_thread_direction_with_back_pressure() -> None:
    channel: BridgeChannel[int] = BridgeChannel(1)

    def consume() -> list[int]:
        return list(channel)

    consumer = asyncio.ensure_future(to_thread(consume))
    for i in range(200):
        await channel.send(i)
    channel.close()
    assert await consumer == list(range(200))


def test_threads_on_both_sides() -> None:
    channel: BridgeChannel[int] = BridgeChannel(2)
    out: list[int] = []
    consumer = threading.Thread(target=lambda: out.extend(channel))
    consumer.start()
    for i in range(500):
        channel.put(i)
    channel.close()
    consumer.join(WAIT)
    assert out == list(range(500))


def test_tasks_on_two_loops() -> None:
    channel: BridgeChannel[int] = BridgeChannel(4)

    async def produce() -> None:
        for i in range(300):
            await channel.send(i)
        channel.close()

    async def consume() -> list[int]:
        return [item async for item in channel]

    result: list[list[int]] = []
    consumer = threading.Thread(target=lambda: result.append(asyncio.run(consume())))
    consumer.start()
    asyncio.run(produce())
    consumer.join(WAIT)
    assert result == [list(range(300))]


async def test_close_lets_receivers_drain_then_end() -> None:
    channel: BridgeChannel[str] = BridgeChannel()
    channel.put_nowait("a")
    channel.put_nowait("b")
    channel.close()
    channel.close()  # closing twice is harmless
    with pytest.raises(ClosedResourceError):
        channel.put_nowait("c")
    with pytest.raises(ClosedResourceError):
        await channel.send("c")
    with pytest.raises(ClosedResourceError):
        channel.put("c")
    assert await channel.receive() == "a"
    assert channel.get() == "b"
    with pytest.raises(EndOfChannel):
        await channel.receive()
    with pytest.raises(EndOfChannel):
        channel.get_nowait()
    with pytest.raises(EndOfChannel):
        channel.get()
    assert channel.closed


async def test_close_wakes_waiting_receivers_and_senders() -> None:
    empty: BridgeChannel[int] = BridgeChannel(1)
    full: BridgeChannel[int] = BridgeChannel(1)
    full.put_nowait(0)
    receiver = asyncio.ensure_future(empty.receive())
    sender = asyncio.ensure_future(full.send(1))
    while empty.statistics().waiting_receivers == 0 or full.statistics().waiting_senders == 0:
        await asyncio.sleep(0)
    await to_thread(empty.close)
    await to_thread(full.close)
    with pytest.raises(EndOfChannel):
        await receiver
    with pytest.raises(ClosedResourceError):
        await sender


def test_close_wakes_a_blocked_thread() -> None:
    channel: BridgeChannel[int] = BridgeChannel(1)
    errors: list[BaseException] = []

    def get() -> None:
        try:
            channel.get()
        except EndOfChannel as exc:
            errors.append(exc)

    thread = threading.Thread(target=get)
    thread.start()
    while channel.statistics().waiting_receivers == 0:
        thread.join(0.001)
    channel.close()
    thread.join(WAIT)
    assert len(errors) == 1


def test_timeouts_on_blocking_get_and_put() -> None:
    channel: BridgeChannel[int] = BridgeChannel(1)
    with pytest.raises(DeadlineExceeded, match=r"get\(\) timed out"):
        channel.get(timeout=0.01)
    channel.put(1, timeout=0)
    with pytest.raises(DeadlineExceeded, match=r"put\(\) timed out"):
        channel.put(2, timeout=timedelta(milliseconds=10))
    with pytest.raises(TimeoutError):  # DeadlineExceeded is a TimeoutError
        channel.put(2, timeout=0)
    stats = channel.statistics()
    assert (stats.waiting_receivers, stats.waiting_senders, stats.buffered) == (0, 0, 1)
    assert channel.get(timeout=0) == 1


def test_blocked_put_resumes_when_a_task_receives() -> None:
    channel: BridgeChannel[int] = BridgeChannel(1)
    channel.put_nowait(0)
    done = threading.Event()

    def put() -> None:
        channel.put(1, timeout=WAIT)
        done.set()

    thread = threading.Thread(target=put)
    thread.start()

    async def drain() -> list[int]:
        while channel.statistics().waiting_senders == 0:
            await asyncio.sleep(0)
        return [await channel.receive(), await channel.receive()]

    assert asyncio.run(drain()) == [0, 1]
    thread.join(WAIT)
    assert done.is_set()


async def test_nowait_twins() -> None:
    channel: BridgeChannel[int] = BridgeChannel(1)
    with pytest.raises(WouldBlock):
        channel.get_nowait()
    channel.put_nowait(1)
    with pytest.raises(WouldBlock):
        channel.put_nowait(2)
    assert len(channel) == 1
    assert channel.get_nowait() == 1


async def test_cancelled_receiver_takes_nothing_and_passes_its_wake_up_on() -> None:
    channel: BridgeChannel[int] = BridgeChannel()
    first = asyncio.ensure_future(channel.receive())
    second = asyncio.ensure_future(channel.receive())
    while channel.statistics().waiting_receivers < 2:
        await asyncio.sleep(0)
    channel.put_nowait(7)  # wakes `first`...
    first.cancel()  # ...which gives up before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 7


async def test_cancelled_waiter_leaves_the_line() -> None:
    channel: BridgeChannel[int] = BridgeChannel(1)
    with corral.move_on_after(0):
        await channel.receive()
    channel.put_nowait(1)
    with corral.move_on_after(0):
        await channel.send(2)
    stats = channel.statistics()
    assert (stats.waiting_receivers, stats.waiting_senders) == (0, 0)
    assert channel.get_nowait() == 1


async def test_blocking_calls_refuse_to_freeze_a_loop() -> None:
    channel: BridgeChannel[int] = BridgeChannel(1)
    with pytest.raises(UsageError, match="await receive"):
        channel.get()
    channel.put(1)  # room in the buffer: no wait, no error
    with pytest.raises(UsageError, match="await send"):
        channel.put(2)


async def test_statistics_and_repr() -> None:
    channel: BridgeChannel[int] = BridgeChannel(3)
    channel.put_nowait(1)
    assert repr(channel) == "<BridgeChannel 1/3 buffered, 0 receiving, 0 sending, open>"
    assert channel.capacity == 3
    unbounded: BridgeChannel[int] = BridgeChannel()
    unbounded.close()
    assert repr(unbounded) == "<BridgeChannel 0/unbounded buffered, 0 receiving, 0 sending, closed>"
    assert unbounded.statistics().capacity == math.inf


@pytest.mark.parametrize("bad", [0, -1, float("nan"), 2.5])
def test_bad_capacity_is_refused(bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match="capacity"):
        BridgeChannel(bad)


@pytest.mark.parametrize("bad", ["10", None, True])
def test_non_number_capacity_is_refused(bad: Any) -> None:
    with pytest.raises(ArgumentTypeError, match="capacity"):
        BridgeChannel(bad)


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_bad_timeout_is_refused(bad: float) -> None:
    channel: BridgeChannel[int] = BridgeChannel(1)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        channel.get(timeout=bad)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        channel.put(1, timeout=bad)
