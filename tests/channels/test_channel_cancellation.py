"""Channel cancellation safety: a cancelled send never delivers, a cancelled receive
never consumes, no waiter is left behind; pinned by races and random interleavings."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
from corral import Channel
from corral.testing import wait_all_tasks_blocked

#: Every test here runs on the virtual-clock loop (it can tell when all tasks wait).
pytestmark = pytest.mark.usefixtures("virtual_clock")


async def test_cancelled_blocked_send_does_not_deliver() -> None:
    channel = Channel[int]()
    sender = asyncio.create_task(channel.send(1))
    await wait_all_tasks_blocked()
    sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sender
    assert channel.statistics().waiting_senders == 0
    assert len(channel._senders) == 0
    with pytest.raises(corral.errors.WouldBlock):
        channel.receive_nowait()


async def test_cancelled_blocked_receive_consumes_nothing() -> None:
    channel = Channel[int](1)
    receiver = asyncio.create_task(channel.receive())
    await wait_all_tasks_blocked()
    receiver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiver
    assert len(channel._receivers) == 0
    channel.send_nowait(5)
    assert channel.receive_nowait() == 5


async def test_item_handed_to_a_receiver_cancelled_before_it_ran_goes_back() -> None:
    channel = Channel[int]()
    receiver = asyncio.create_task(channel.receive())
    await wait_all_tasks_blocked()
    channel.send_nowait(1)  # handed over: the receiver's future holds the item
    receiver.cancel()  # ...but the receiver has not run yet
    with pytest.raises(asyncio.CancelledError):
        await receiver
    # the item is back at the head of the channel, ahead of later items
    later = asyncio.create_task(channel.send(2))
    await wait_all_tasks_blocked()
    assert channel.receive_nowait() == 1
    assert channel.receive_nowait() == 2
    await later


async def test_item_goes_back_to_the_next_waiting_receiver() -> None:
    channel = Channel[int]()
    first = asyncio.create_task(channel.receive())
    await wait_all_tasks_blocked()
    second = asyncio.create_task(channel.receive())
    await wait_all_tasks_blocked()
    channel.send_nowait(1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 1


async def test_send_taken_just_before_cancellation_completes_then_cancels() -> None:
    channel = Channel[int]()
    progress: list[str] = []

    async def producer() -> None:
        await channel.send(1)
        progress.append("sent")
        await asyncio.sleep(0)
        progress.append("not reached")

    sender = asyncio.create_task(producer())
    await wait_all_tasks_blocked()
    assert channel.receive_nowait() == 1  # took the item: the sender's future is done
    sender.cancel()  # before the sender ran
    with pytest.raises(asyncio.CancelledError):
        await sender
    assert progress == ["sent"]


async def test_deferred_cancellation_keeps_the_timeout_accounting() -> None:
    channel = Channel[int]()

    async def producer() -> None:
        async with asyncio.timeout(10):
            await channel.send(1)

    sender = asyncio.create_task(producer())
    await wait_all_tasks_blocked()
    assert channel.receive_nowait() == 1
    sender.cancel("outer")
    with pytest.raises(asyncio.CancelledError):
        await sender
    assert sender.cancelling() == 1


async def test_cancel_scope_never_steals_a_handed_item() -> None:
    channel = Channel[int]()
    got: list[int] = []

    async def consumer() -> None:
        with corral.CancelScope() as scope:
            scopes.append(scope)
            got.append(await channel.receive())

    scopes: list[corral.CancelScope] = []
    task = asyncio.create_task(consumer())
    await wait_all_tasks_blocked()
    channel.send_nowait(3)
    scopes[0].cancel()
    await task
    assert got == [3]


# -- random interleavings with cancellations on the virtual loop -------------------------

operations = st.lists(
    st.tuples(st.sampled_from(["send", "receive", "cancel", "tick"]), st.integers(0, 5)),
    max_size=60,
)


async def interleave(capacity: int, plan: list[tuple[str, int]]) -> None:
    channel = Channel[int](capacity)
    sent: list[int] = []
    received: list[int] = []
    tasks: list[asyncio.Task[None]] = []
    counter = iter(range(10_000))

    async def send(item: int) -> None:
        await channel.send(item)
        sent.append(item)

    async def receive() -> None:
        received.append(await channel.receive())

    receiver: asyncio.Task[None] | None = None
    for op, arg in plan:
        if op == "send":
            tasks.append(asyncio.create_task(send(next(counter))))
        elif op == "receive" and (receiver is None or receiver.done()):
            # one receiver at a time, so the order of completion is the order of taking
            receiver = asyncio.create_task(receive())
            tasks.append(receiver)
        elif op == "cancel" and tasks:
            tasks[arg % len(tasks)].cancel()
        for _ in range(arg if op == "tick" else 1):
            await asyncio.sleep(0)
    await wait_all_tasks_blocked()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    while True:
        try:
            received.append(channel.receive_nowait())
        except corral.errors.WouldBlock:
            break
    stats = channel.statistics()
    assert (stats.waiting_senders, stats.waiting_receivers) == (0, 0)
    assert not channel._senders
    assert not channel._receivers
    # every item sent successfully is received exactly once, in FIFO order, nothing else
    assert sorted(received) == sorted(sent)
    assert received == sorted(received)


@settings(max_examples=150, deadline=None)
@given(capacity=st.sampled_from([0, 1, 3]), plan=operations)
def test_interleavings_with_cancellation_lose_and_invent_nothing(
    capacity: int, plan: list[tuple[str, int]]
) -> None:
    corral.testing.run(interleave, capacity, plan)
