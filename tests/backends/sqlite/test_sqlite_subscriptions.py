"""Subscriptions on SQLite: appends made through another store object, durable checkpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import corral
from corral.backends.sqlite import SqliteEventStore
from corral.errors import ArgumentTypeError, InvalidArgumentError
from corral.eventsourcing import Checkpoints
from corral.testing import VirtualClock
from corral.testing.contracts.eventstore import event


async def test_a_subscription_finds_appends_of_another_store_by_polling(
    tmp_path: Path, virtual_clock: VirtualClock
) -> None:
    # The other store object stands for another process; with the watcher stopped, only
    # the subscription's own polling can find its appends.
    url = f"sqlite:///{tmp_path}/events.db"
    unwatched = await SqliteEventStore.open(tmp_path / "events.db")
    unwatched._watcher.stop()
    async with unwatched as reader, corral.connect(url) as writer:
        loop = asyncio.get_running_loop()
        async with reader.subscribe(category="order", poll_interval=2) as orders:
            waiting = asyncio.ensure_future(anext(orders))
            # Its reads run on a reader thread the virtual clock does not wait for: append
            # only once it has read and waits.
            while not orders.waiting:
                await asyncio.sleep(0.001)
            started = loop.time()
            await writer.append("user-1", [event()])
            await writer.append("order-1", [event()])
            with corral.fail_after(10):
                found = await waiting
            assert (found.stream, found.version) == ("order-1", 1)
            assert 0 < loop.time() - started <= 2
        assert unwatched._watcher.checks == 0


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


async def test_the_watcher_wakes_a_subscription_on_another_store_objects_commit(
    tmp_path: Path,
) -> None:
    # Real time: the watcher thread checks PRAGMA data_version; the subscription's own
    # polling is an hour away, so only the watcher can deliver within the bound.
    url = f"sqlite:///{tmp_path}/events.db"
    async with corral.connect(url) as reader, corral.connect(url) as writer:
        assert isinstance(reader, SqliteEventStore)
        async with reader.subscribe(category="order", poll_interval=3600) as orders:
            for number in range(1, 4):
                waiting = asyncio.ensure_future(anext(orders))
                while not orders.waiting:
                    await asyncio.sleep(0.001)
                await writer.append(f"order-{number}", [event()])
                with corral.fail_after(30):
                    found = await waiting
                assert (found.stream, found.version) == (f"order-{number}", 1)
        assert reader._watcher.wakeups >= 3


async def test_the_watcher_checks_only_while_a_subscription_waits(tmp_path: Path) -> None:
    store = await SqliteEventStore.open(tmp_path / "events.db", watch_interval=0.001)
    async with store:
        await store.append("s", [event()])
        assert store._watcher.checks == 0  # no subscription has waited: no thread yet
        async with store.subscribe() as subscription:
            await anext(subscription)
            waiting = asyncio.ensure_future(anext(subscription))
            while store._watcher.checks < 3:
                await asyncio.sleep(0.001)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        assert not subscription.waiting
        # Nothing waits: the checks stop (a check already under way may still finish).
        for _ in range(200):
            checks = store._watcher.checks
            await asyncio.sleep(0.05)
            if store._watcher.checks == checks:
                break
        else:
            pytest.fail("the watcher kept checking with no subscription waiting")
    assert not store._watcher._thread or not store._watcher._thread.is_alive()


async def test_watch_interval_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with pytest.raises(ArgumentTypeError, match=r"watch_interval must be a number of seconds, "):
        await SqliteEventStore.open(path, watch_interval="1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="watch_interval must be more than 0 seconds"):
        await SqliteEventStore.open(path, watch_interval=0)
    assert not path.exists()  # refused before the file was made
