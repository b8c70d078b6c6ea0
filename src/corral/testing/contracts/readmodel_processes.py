"""The projection durability contract, tested the hard way: a projector killed mid-batch.

A child process runs a :class:`~corral.eventsourcing.Projector` over a SQLite event
store and the read model under test, with a projection that logs each event it
applies in a table without a unique key. At a chosen event, in the middle of a batch,
the projection stops (the batch's transaction is open, with writes in it) and the
parent kills the child with ``SIGKILL``. Then the parent checks that the read model
holds exactly the committed batches, runs the projector again (killed once more in a
later batch), finishes it, and checks that every event was applied exactly once: as
many rows as events, no gaps, no doubles, and the checkpoint at the store's head.

Subclass :class:`ReadModelProcessContract` in a test module (its name must start with
``Test``), set :attr:`~ReadModelProcessContract.READ_MODEL` and override the
``locator`` fixture::

    class TestMyReadModelProcesses(ReadModelProcessContract):
        READ_MODEL = '''
    from my_engine import MyReadModel

    async def open_read_model(locator):
        return await MyReadModel.open(locator)

    async def create(tx):            # the log table, if missing: one integer column
        ...

    async def record(tx, position):  # one more row
        ...

    async def recorded(read_model):  # every position logged, committed, in any order
        ...
    '''

        @pytest.fixture
        def locator(self, tmp_path):
            return str(tmp_path / "views.db")

The tests run child interpreters and take seconds: they are marked ``slow``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...backends.sqlite import SqliteEventStore
from ...eventsourcing import NewEvent, Projection, Projector, RecordedEvent

__all__ = ("ReadModelProcessContract",)

#: Events per batch in the children.
BATCH_SIZE = 16

_CHILD = """
import asyncio, sys
from corral.backends.sqlite import SqliteEventStore
from corral.eventsourcing import Projection, Projector

class Logged(Projection):
    name = "logged"
    categories = ("item",)

    def __init__(self, stop_at):
        self.stop_at = stop_at

    async def setup(self, tx):
        await create(tx)

    async def apply(self, event, tx):
        await record(tx, event.position)
        if event.position == self.stop_at:
            print("stopped", event.position, flush=True)
            await asyncio.Event().wait()  # mid-batch, its transaction open: kill me here

async def main():
    store = await SqliteEventStore.open(sys.argv[1])
    read_model = await open_read_model(sys.argv[2])
    projector = Projector(store, Logged(int(sys.argv[3])), read_model, batch_size=BATCH_SIZE)
    await projector.catch_up(lambda applied, position, head: print(
        "committed", position, flush=True))
    print("done", flush=True)

asyncio.run(main())
"""


class ReadModelProcessContract:
    """Kill -9 tests that every durable read-model engine passes."""

    #: Source code defining ``open_read_model(locator)``, ``create(tx)``,
    #: ``record(tx, position)`` and ``recorded(read_model)`` (with their imports).
    READ_MODEL: ClassVar[str]

    @pytest.fixture
    def locator(self) -> str:
        """What ``open_read_model`` takes: where the read model lives (override)."""
        raise NotImplementedError

    def _namespace(self) -> dict[str, Any]:
        namespace: dict[str, Any] = {}
        exec(textwrap.dedent(self.READ_MODEL), namespace)
        return namespace

    def _run_child(self, store_path: Path, locator: str, stop_at: int) -> list[int]:
        """Run the projector in a child until it stops at ``stop_at``; kill it there.

        Returns the positions the child reported committed.
        """
        code = "\n".join(
            (
                textwrap.dedent(self.READ_MODEL),
                f"BATCH_SIZE = {BATCH_SIZE}",
                _CHILD,
            )
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(store_path), locator, str(stop_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        assert child.stdout is not None
        committed: list[int] = []
        try:
            for line in child.stdout:
                word, _, number = line.partition(" ")
                if word == "committed":
                    committed.append(int(number))
                elif word == "stopped":
                    assert int(number) == stop_at
                    break
            else:
                pytest.fail(
                    "the projector did not stop mid-batch: "
                    f"{child.stderr.read() if child.stderr else ''}"
                )
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.communicate()
        assert child.returncode == -signal.SIGKILL
        return committed

    def _check(
        self, locator: str, log: list[RecordedEvent], upto: int | None
    ) -> tuple[int, list[int]]:
        """The checkpoint and the positions logged; asserts they agree exactly."""
        namespace = self._namespace()

        async def read() -> tuple[int, list[int]]:
            read_model = await namespace["open_read_model"](locator)
            try:
                checkpoint = await read_model.checkpoint("logged")
                try:
                    positions = await namespace["recorded"](read_model)
                except Exception:
                    positions = []  # no table yet: nothing was committed
                return checkpoint, positions
            finally:
                await read_model.close()

        checkpoint, positions = asyncio.run(read())
        if upto is not None:
            assert checkpoint == upto
        doubles = [p for p, n in collections.Counter(positions).items() if n > 1]
        assert not doubles, f"applied twice: {doubles}"
        wanted = [e.position for e in log if e.stream.startswith("item-")]
        assert sorted(positions) == [p for p in wanted if p <= checkpoint], "gaps or extras"
        return checkpoint, positions

    @pytest.mark.slow
    def test_kill_9_mid_batch_then_restart_applies_every_event_exactly_once(
        self, locator: str, tmp_path: Path
    ) -> None:
        store_path = tmp_path / "events.db"

        async def fill() -> list[RecordedEvent]:
            async with await SqliteEventStore.open(store_path) as store:
                for k in range(120):
                    stream = "other-1" if k % 10 == 3 else f"item-{k % 7}"
                    await store.append(stream, [NewEvent("Added", b"{}")])
                return await store.read_all().collect()

        log = asyncio.run(fill())
        items = [e.position for e in log if e.stream.startswith("item-")]
        # Stop in the middle of the third batch, then of the sixth.
        first_stop = log[2 * BATCH_SIZE + BATCH_SIZE // 2].position
        second_stop = log[5 * BATCH_SIZE + 5].position
        assert first_stop in items
        assert second_stop in items

        committed = self._run_child(store_path, locator, first_stop)
        assert committed == [log[BATCH_SIZE - 1].position, log[2 * BATCH_SIZE - 1].position]
        self._check(locator, log, committed[-1])

        committed = self._run_child(store_path, locator, second_stop)
        assert committed[-1] == log[5 * BATCH_SIZE - 1].position
        self._check(locator, log, committed[-1])

        namespace = self._namespace()

        class Logged(Projection[Any]):
            name = "logged"
            categories = ("item",)

            async def setup(self, tx: Any) -> None:
                await namespace["create"](tx)

            async def apply(self, event: RecordedEvent, tx: Any) -> None:
                await namespace["record"](tx, event.position)

        async def finish() -> int:
            async with await SqliteEventStore.open(store_path) as store:
                read_model = await namespace["open_read_model"](locator)
                try:
                    projector = Projector(store, Logged(), read_model, batch_size=BATCH_SIZE)
                    return await projector.catch_up()
                finally:
                    await read_model.close()

        applied = asyncio.run(finish())
        assert applied == len([p for p in items if p > log[5 * BATCH_SIZE - 1].position])
        _checkpoint, positions = self._check(locator, log, log[-1].position)
        assert sorted(positions) == items
