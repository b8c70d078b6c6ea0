"""Subscriptions on SQLite: appends made through another store object, durable checkpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path

import corral
from corral.eventsourcing import Checkpoints
from corral.testing import VirtualClock
from corral.testing.contracts.eventstore import event


async def test_a_subscription_finds_appends_of_another_store_by_polling(
    tmp_path: Path, virtual_clock: VirtualClock
) -> None:
    # The other store object stands for another process: its appends wake nothing here.
    url = f"sqlite:///{tmp_path}/events.db"
    async with corral.connect(url) as reader, corral.connect(url) as writer:
        loop = asyncio.get_running_loop()
        async with reader.subscribe(category="order", poll_interval=2) as orders:
            waiting = asyncio.ensure_future(anext(orders))
            await asyncio.sleep(0.5)
            started = loop.time()
            await writer.append("user-1", [event()])
            await writer.append("order-1", [event()])
            with corral.fail_after(10):
                found = await waiting
            assert (found.stream, found.version) == ("order-1", 1)
            assert 0 < loop.time() - started <= 2


async def test_a_checkpoint_survives_reopening_the_store(
    tmp_path: Path, virtual_clock: VirtualClock
) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    async with corral.connect(url) as store:
        await store.append("s", [event() for _ in range(3)])
        async with store.subscribe() as subscription:
            second = [await anext(subscription) for _ in range(2)][-1]
        await Checkpoints(store).save("projector", second.position)
    async with corral.connect(url) as store:
        resumed = await Checkpoints(store).load("projector")
        assert resumed == second.position
        async with store.subscribe(from_position=resumed + 1) as subscription:
            assert (await anext(subscription)).version == 3
