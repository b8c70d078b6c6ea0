"""The event-store durability contract, tested the hard way: with real processes.

Child processes append and print one line per acknowledged append; the parent then
checks the store against that recorded history: nothing acknowledged is lost, nothing
is partial, versions are contiguous and the global order agrees with every stream's
order. Subclass :class:`EventStoreProcessContract` in a test module (its name must start
with ``Test``), set :attr:`~EventStoreProcessContract.OPEN_STORE` and override the
``locator`` fixture::

    class TestMyStoreProcesses(EventStoreProcessContract):
        OPEN_STORE = '''
    from my_engine import MyEventStore

    async def open_store(locator):
        return await MyEventStore.open(locator)
    '''

        @pytest.fixture
        def locator(self, tmp_path):
            return str(tmp_path / "events.db")  # an existing, empty store

Set :attr:`~EventStoreProcessContract.WAKES_ACROSS_PROCESSES` when the engine wakes a
waiting subscription as soon as another process commits. The tests run child
interpreters and take seconds: they are marked ``slow``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from ...eventsourcing import EventStore, RecordedEvent

__all__ = ("EventStoreProcessContract",)

# Four tasks, each appending one event to its own pair of streams, atomically, forever.
_CRASHING_APPENDER = """
async def pair(store, k):
    version = 0
    while True:
        appends = {f"left-{k}": ([NewEvent("L", b"{}")], version),
                   f"right-{k}": ([NewEvent("R", b"{}")], version)}
        results = await store.append_many(appends)
        version += 1
        left, right = results[f"left-{k}"], results[f"right-{k}"]
        print(k, version, left.positions[0], right.positions[0], flush=True)

async def main():
    store = await open_store(sys.argv[1])
    await asyncio.gather(*(pair(store, k) for k in range(4)))
"""

# Tasks (argv[3], each appending argv[4] events) appending to shared streams, re-reading
# the version after each conflict.
_COMPETING_APPENDER = """
async def appender(store, name, count):
    for index in range(count):
        stream = f"shared-{index % 3}"
        event = NewEvent("E", f"{name}-{index}".encode())
        while True:
            version = (await store.get_stream_metadata(stream)).version
            try:
                result = await store.append(stream, [event], expected_version=version)
            except ConcurrencyError:
                continue
            break
        print(stream, result.version, result.positions[0], event.id, flush=True)

async def main():
    async with await open_store(sys.argv[1]) as store:
        tasks, count = int(sys.argv[3]), int(sys.argv[4])
        await asyncio.gather(*(appender(store, f"{sys.argv[2]}.{k}", count) for k in range(tasks)))
"""

# One task appending argv[2] events, one at a time, to four streams in turn.
_LIVE_APPENDER = """
async def main():
    async with await open_store(sys.argv[1]) as store:
        for index in range(int(sys.argv[2])):
            await store.append(f"live-{index % 4}", [NewEvent("Tick", str(index).encode())])
"""

_CHILD_HEADER = """
import asyncio, sys
from corral.errors import ConcurrencyError
from corral.eventsourcing import NewEvent
"""

# How the competing appenders of the global-order test run: tasks per child, appends per task.
_COMPETING = ("2", "20")
_APPENDS_PER_CHILD = 2 * 20
# Events the live subscription follows, and the bound on waiting for them (seconds).
_LIVE_EVENTS = 300
_LIVE_BOUND = 45.0
# The tailing reader's appenders: three children of four tasks, so that many commits
# race the reader's statements even on an idle machine.
_TAILED = ("4", "40")
History = list[list[str]]
ByStream = dict[str, list[RecordedEvent]]


class EventStoreProcessContract:
    """Kill -9 and several-process tests that every durable event-store engine must pass."""

    #: Source code defining ``async def open_store(locator) -> EventStore`` (with its
    #: imports), run in the child processes and in the test itself.
    OPEN_STORE: ClassVar[str]

    #: Whether the engine wakes a subscription when another process commits (SQLite's
    #: watcher, a server's notifications). If so, the live test subscribes with an hour
    #: between polls, so that only the engine's own wake-up delivers in time; if not, it
    #: relies on polling.
    WAKES_ACROSS_PROCESSES: ClassVar[bool] = False

    @pytest.fixture
    def locator(self) -> str:
        """What ``open_store`` takes: where an existing, empty store lives (override)."""
        raise NotImplementedError

    def _opener(self) -> Callable[[str], Awaitable[EventStore]]:
        namespace: dict[str, Any] = {}
        exec(textwrap.dedent(self.OPEN_STORE), namespace)
        opener: Callable[[str], Awaitable[EventStore]] = namespace["open_store"]
        return opener

    def _spawn(self, program: str, *args: str) -> subprocess.Popen[str]:
        code = "\n".join(
            (_CHILD_HEADER, textwrap.dedent(self.OPEN_STORE), program, "asyncio.run(main())")
        )
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
        )

    def _read_everything(
        self, locator: str, acknowledged: frozenset[int] = frozenset()
    ) -> tuple[list[RecordedEvent], ByStream]:
        """Everything stored, and each stream, after checking versions and global order.

        ``read_all`` returns what lies below the engine's read horizon; a killed
        process's last transaction may still be ending on a database server, holding it
        back for a moment. So the read is repeated, for up to 10 seconds, until every
        ``acknowledged`` position is in it (one that never shows up was lost).
        """

        async def read() -> tuple[list[RecordedEvent], ByStream]:
            async with await self._opener()(locator) as store:
                deadline = time.monotonic() + 10
                while True:
                    everything = await store.read_all().collect()
                    missing = acknowledged - {event.position for event in everything}
                    if not missing or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
                assert not missing, f"acknowledged positions lost: {sorted(missing)[:10]}"
                streams = {event.stream for event in everything}
                by_stream = {name: await store.read_stream(name).collect() for name in streams}
            return everything, by_stream

        everything, by_stream = asyncio.run(read())
        positions = [event.position for event in everything]
        assert positions == sorted(set(positions)), "global order broken"
        for stream, events in by_stream.items():
            assert [e.version for e in events] == list(range(1, len(events) + 1)), stream
            stream_positions = [e.position for e in events]
            assert stream_positions == sorted(stream_positions), f"{stream} against global order"
        return everything, by_stream

    @pytest.mark.slow
    def test_kill_9_loses_nothing_acknowledged_and_commits_nothing_partial(
        self, locator: str
    ) -> None:
        child = self._spawn(_CRASHING_APPENDER, locator)
        assert child.stdout is not None
        acknowledged = []
        try:
            for line in child.stdout:
                acknowledged.append(line)
                if len(acknowledged) >= 200:
                    break
            else:
                pytest.fail(
                    f"the appender stopped early: {child.stderr.read() if child.stderr else ''}"
                )
        finally:
            os.kill(child.pid, signal.SIGKILL)
            rest, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        acknowledged += rest.splitlines(keepends=True)
        history = [line.split() for line in acknowledged if line.endswith("\n")]

        positions_acknowledged = frozenset(int(p) for _, _, *pair in history for p in pair)
        everything, by_stream = self._read_everything(locator, positions_acknowledged)
        for pair in range(4):
            lefts, rights = by_stream.get(f"left-{pair}", []), by_stream.get(f"right-{pair}", [])
            assert len(lefts) == len(rights), "a multi-stream append was committed in part"
            for one, other in zip(lefts, rights, strict=True):
                assert other.position == one.position + 1  # one append, adjacent positions
        positions = {event.position: event for event in everything}
        for k, version, left_position, right_position in history:
            left, right = positions[int(left_position)], positions[int(right_position)]
            assert (left.stream, left.version) == (f"left-{k}", int(version))
            assert (right.stream, right.version) == (f"right-{k}", int(version))

    @pytest.mark.slow
    def test_appenders_in_several_processes_keep_versions_and_global_order(
        self, locator: str
    ) -> None:
        children = [
            self._spawn(_COMPETING_APPENDER, locator, str(n), *_COMPETING) for n in range(3)
        ]
        history: History = []
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            history += [line.split() for line in out.splitlines()]
        assert len(history) == 3 * _APPENDS_PER_CHILD

        everything, _ = self._read_everything(locator)
        assert len(everything) == len(history)  # no event lost, none written twice
        positions = {event.position: event for event in everything}
        for stream, version, position, event_id in history:
            stored = positions[int(position)]
            assert (stored.stream, stored.version, str(stored.id)) == (
                stream,
                int(version),
                event_id,
            )

    @pytest.mark.slow
    def test_a_live_subscription_follows_another_process_appends(self, locator: str) -> None:
        # The parent subscribes and waits; then a child appends one event at a time. The
        # parent must see every event, in order, once, within a generous bound.
        poll_interval = 3600.0 if self.WAKES_ACROSS_PROCESSES else 0.05
        opener = self._opener()
        children: list[subprocess.Popen[str]] = []

        async def follow() -> list[RecordedEvent]:
            seen: list[RecordedEvent] = []
            async with (
                await opener(locator) as store,
                store.subscribe(category="live", poll_interval=poll_interval) as live,
            ):
                first = asyncio.ensure_future(anext(live))
                # Caught up (nothing yet): live from here on. Nothing signals the
                # subscription's state, so look at it.
                while not live.waiting:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                children.append(self._spawn(_LIVE_APPENDER, locator, str(_LIVE_EVENTS)))
                try:
                    async with asyncio.timeout(_LIVE_BOUND):
                        seen.append(await first)
                        while len(seen) < _LIVE_EVENTS:
                            seen.append(await anext(live))
                except TimeoutError:
                    _, err = children[0].communicate(timeout=60)
                    pytest.fail(
                        f"the subscription saw {len(seen)} of {_LIVE_EVENTS} events within "
                        f"{_LIVE_BOUND:g} s (child exit {children[0].returncode}: {err})"
                    )
            return seen

        seen = asyncio.run(follow())
        (child,) = children
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert [event.data for event in seen] == [str(n).encode() for n in range(_LIVE_EVENTS)]
        positions = [event.position for event in seen]
        assert positions == sorted(set(positions)), "out of order or delivered twice"
        everything, _ = self._read_everything(locator)
        assert [event.position for event in everything] == positions, "an event was skipped"

    @pytest.mark.slow
    def test_a_tailing_reader_never_skips_a_commit_from_another_process(self, locator: str) -> None:
        children = [self._spawn(_COMPETING_APPENDER, locator, str(n), *_TAILED) for n in range(3)]
        opener = self._opener()

        async def tail() -> list[int]:
            # Resume after the last position seen, as a subscription with a checkpoint does.
            seen: list[int] = []
            async with await opener(locator) as store:
                while True:
                    running = any(child.poll() is None for child in children)
                    after = (seen or [0])[-1]
                    seen.extend(
                        [event.position async for event in store.read_all(from_position=after + 1)]
                    )
                    if not running:  # this pass started after the last append committed
                        return seen
                    await asyncio.sleep(0.001)  # poll again; correctness does not rest on it

        seen = asyncio.run(tail())
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
        everything, _ = self._read_everything(locator)
        assert seen == [event.position for event in everything]
