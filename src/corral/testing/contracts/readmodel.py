"""The read-model contract: what every :class:`~corral.eventsourcing.ReadModel` must do.

Subclass :class:`ReadModelContract` in a test module (its name must start with
``Test``) and implement its hooks: :meth:`~ReadModelContract.make_read_model` and the
four that write and read one table of ``(key text, value integer)`` rows through the
engine's own transaction handle. The tests run projectors over a memory event store,
so what they check is the read model: atomic batches, checkpoints kept with the state,
rollback on failure and cancellation, and exactly-once effects. Every test makes its
own read models and closes them::

    class TestMyReadModel(ReadModelContract):
        async def make_read_model(self):
            return await MyReadModel.open(...)

        async def create_table(self, tx): ...
        async def drop_rows(self, tx): ...
        async def insert(self, tx, key, value): ...
        async def rows(self, read_model): ...  # {key: value} as committed
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ...backends.memory import MemoryEventStore
from ...errors import ArgumentTypeError, ClosedResourceError, InvalidArgumentError, ProjectionError
from ...eventsourcing import EventStore, NewEvent, Projection, Projector, ReadModel, RecordedEvent

__all__ = ("ReadModelContract",)


class _Boom(Exception):
    pass


class _Rows(Projection[Any]):
    """Inserts one row per event: its id -> its position (a second insert would fail)."""

    def __init__(
        self, contract: ReadModelContract, name: str = "rows", fail_at: int | None = None
    ) -> None:
        self.contract = contract
        self.name = name
        self.fail_at = fail_at
        self.setups = 0
        self.resets = 0

    async def setup(self, tx: Any) -> None:
        self.setups += 1
        await self.contract.create_table(tx)

    async def reset(self, tx: Any) -> None:
        self.resets += 1
        await self.contract.drop_rows(tx)

    async def apply(self, event: RecordedEvent, tx: Any) -> None:
        if event.position == self.fail_at:
            raise _Boom(f"refused position {event.position}")
        await self.contract.insert(tx, str(event.id), event.position)


class _BatchedRows(_Rows):
    """As :class:`_Rows`, a whole batch per ``apply_batch`` call (sizes recorded)."""

    def __init__(self, contract: ReadModelContract, fail_at: int | None = None) -> None:
        super().__init__(contract, "batched-rows", fail_at)
        self.batch_sizes: list[int] = []

    async def apply_batch(self, events: Sequence[RecordedEvent], tx: Any) -> None:
        self.batch_sizes.append(len(events))
        for event in events:
            await self.apply(event, tx)


async def _append(store: EventStore, count: int, stream: str = "item-1") -> list[int]:
    positions: list[int] = []
    for _ in range(count):
        result = await store.append(stream, [NewEvent("Added", b"{}")])
        positions.extend(result.positions)
    return positions


class ReadModelContract:
    """The tests every read-model engine passes; subclass and implement the hooks.

    ``self.tmp_path`` is a fresh directory for the running test, for engines that need
    files.
    """

    tmp_path: Path

    # -- hooks -----------------------------------------------------------------------

    async def make_read_model(self) -> ReadModel[Any]:
        """A read model of the engine under test; each call opens the SAME database
        (a durable engine) or a new one (memory)."""
        raise NotImplementedError

    async def create_table(self, tx: Any) -> None:
        """Create the test table (``key`` text primary key, ``value`` integer) if missing."""
        raise NotImplementedError

    async def drop_rows(self, tx: Any) -> None:
        """Delete every row of the test table."""
        raise NotImplementedError

    async def insert(self, tx: Any, key: str, value: int) -> None:
        """Insert a row; a key inserted twice must raise."""
        raise NotImplementedError

    async def rows(self, read_model: ReadModel[Any]) -> dict[str, int]:
        """The committed rows of the test table (empty if it does not exist yet)."""
        raise NotImplementedError

    #: Whether a second :meth:`make_read_model` sees what the first committed.
    durable = True

    # -- fixtures --------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _remember_tmp_path(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @pytest.fixture
    async def read_model(self) -> AsyncIterator[ReadModel[Any]]:
        read_model = await self.make_read_model()
        try:
            yield read_model
        finally:
            await read_model.close()

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        store = MemoryEventStore()
        try:
            yield store
        finally:
            await store.close()

    # -- transactions ----------------------------------------------------------------

    async def test_a_transaction_commits_when_its_block_ends(
        self, read_model: ReadModel[Any]
    ) -> None:
        async with read_model.transaction() as tx:
            await self.create_table(tx)
            await self.insert(tx, "a", 1)
            await self.insert(tx, "b", 2)
        assert await self.rows(read_model) == {"a": 1, "b": 2}
        statistics = read_model.statistics()
        assert (statistics.commits, statistics.rollbacks, statistics.active) == (1, 0, 0)
        assert statistics.engine == read_model.engine
        assert "1 commits" in repr(read_model)

    async def test_an_exception_rolls_back_writes_and_checkpoint(
        self, read_model: ReadModel[Any]
    ) -> None:
        async with read_model.transaction() as tx:
            await self.create_table(tx)

        async def write_then_fail() -> None:
            async with read_model.transaction() as tx:
                await self.insert(tx, "a", 1)
                assert await read_model._store_checkpoint(tx, "p", 5, 0)
                raise _Boom

        with pytest.raises(_Boom):
            await write_then_fail()
        assert await self.rows(read_model) == {}
        assert await read_model.checkpoint("p") == 0
        assert read_model.statistics().rollbacks == 1

    async def test_a_cancelled_transaction_rolls_back(self, read_model: ReadModel[Any]) -> None:
        async with read_model.transaction() as tx:
            await self.create_table(tx)
        inside = asyncio.Event()

        async def write_then_hang() -> None:
            async with read_model.transaction() as tx:
                await self.insert(tx, "a", 1)
                inside.set()
                await asyncio.Event().wait()

        task = asyncio.ensure_future(write_then_hang())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await self.rows(read_model) == {}
        # The read model is usable afterwards.
        async with read_model.transaction() as tx:
            await self.insert(tx, "b", 2)
        assert await self.rows(read_model) == {"b": 2}

    async def test_checkpoints_are_compared_and_set(self, read_model: ReadModel[Any]) -> None:
        assert await read_model.checkpoint("p") == 0
        async with read_model.transaction() as tx:
            assert await read_model._load_checkpoint(tx, "p") == 0
            assert await read_model._store_checkpoint(tx, "p", 7, 0)
            assert await read_model._load_checkpoint(tx, "p") == 7
            assert not await read_model._store_checkpoint(tx, "p", 9, 3)
            assert await read_model._store_checkpoint(tx, "q", 2, None)
        assert await read_model.checkpoint("p") == 7
        assert await read_model.checkpoint("q") == 2
        async with read_model.transaction() as tx:
            assert await read_model._store_checkpoint(tx, "p", 0, None)
        assert await read_model.checkpoint("p") == 0

    async def test_bad_checkpoint_names(self, read_model: ReadModel[Any]) -> None:
        with pytest.raises(ArgumentTypeError, match="name must be a str"):
            await read_model.checkpoint(3)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="name must not be empty"):
            await read_model.checkpoint("")

    async def test_closed(self) -> None:
        read_model = await self.make_read_model()
        async with read_model as entered:
            assert entered is read_model
        assert read_model.closed
        await read_model.close()  # idempotent
        assert read_model.statistics().closed
        assert "closed" in repr(read_model)
        with pytest.raises(ClosedResourceError):
            await read_model.checkpoint("p")
        with pytest.raises(ClosedResourceError):
            async with read_model.transaction():
                pass

    # -- projections on it -----------------------------------------------------------

    async def test_a_projector_applies_every_event_once_in_batches(
        self, read_model: ReadModel[Any], store: EventStore
    ) -> None:
        positions = await _append(store, 10)
        await store.append("$system", [NewEvent("Ignored", b"{}")])
        projection = _Rows(self)
        projector = Projector(store, projection, read_model, batch_size=3)
        seen: list[tuple[int, int, int]] = []
        assert await projector.catch_up(lambda *args: seen.append(args)) == 10
        assert sorted((await self.rows(read_model)).values()) == positions
        head = await store.head_position()
        assert await read_model.checkpoint("rows") == head == projector.position
        assert seen == [(3, 3, 11), (6, 6, 11), (9, 9, 11), (10, 11, 11)]
        assert projection.setups == 1
        # Nothing new: nothing applied, no new transaction.
        commits = read_model.statistics().commits
        assert await projector.catch_up() == 0
        assert read_model.statistics().commits == commits

    async def test_a_failing_apply_rolls_its_batch_back(
        self, read_model: ReadModel[Any], store: EventStore
    ) -> None:
        positions = await _append(store, 6)
        projection = _Rows(self, fail_at=positions[4])
        projector = Projector(store, projection, read_model, batch_size=3)
        with pytest.raises(ProjectionError) as caught:
            await projector.catch_up()
        error = caught.value
        assert (error.projection, error.stream, error.position) == ("rows", "item-1", positions[4])
        assert isinstance(error.__cause__, _Boom)
        assert f"position {positions[4]}" in str(error)
        # The first batch stays; the failing one left nothing, not even its first event.
        assert sorted((await self.rows(read_model)).values()) == positions[:3]
        assert await read_model.checkpoint("rows") == positions[2]
        assert projector.statistics().failed_batches == 1
        projection.fail_at = None
        assert await projector.catch_up() == 3
        assert sorted((await self.rows(read_model)).values()) == positions

    async def test_apply_batch_takes_each_batch_and_a_failure_rolls_it_back(
        self, read_model: ReadModel[Any], store: EventStore
    ) -> None:
        positions = await _append(store, 7)
        projection = _BatchedRows(self, fail_at=positions[4])
        projector = Projector(store, projection, read_model, batch_size=3)
        with pytest.raises(ProjectionError) as caught:
            await projector.catch_up()
        error = caught.value
        assert (error.position, error.events) == (positions[3], 3)  # the batch's first
        assert isinstance(error.__cause__, _Boom)
        # The first batch stays; the failing one wrote nothing through the transaction.
        assert sorted((await self.rows(read_model)).values()) == positions[:3]
        assert await read_model.checkpoint("batched-rows") == positions[2]
        projection.fail_at = None
        assert await projector.catch_up() == 4
        assert sorted((await self.rows(read_model)).values()) == positions
        assert projection.batch_sizes == [3, 3, 3, 1]

    async def test_a_restarted_projector_resumes_from_the_checkpoint(
        self, read_model: ReadModel[Any], store: EventStore
    ) -> None:
        positions = await _append(store, 5)
        assert await Projector(store, _Rows(self), read_model).catch_up() == 5
        positions += await _append(store, 3)
        if self.durable:
            await read_model.close()
            read_model = await self.make_read_model()
        try:
            projector = Projector(store, _Rows(self), read_model)
            assert await projector.catch_up() == 3
            assert sorted((await self.rows(read_model)).values()) == positions
        finally:
            await read_model.close()

    async def test_two_projectors_of_one_projection_never_apply_a_batch_twice(
        self, read_model: ReadModel[Any], store: EventStore
    ) -> None:
        positions = await _append(store, 40)
        first = Projector(store, _Rows(self), read_model, batch_size=4)
        second = Projector(store, _Rows(self), read_model, batch_size=7)
        await asyncio.gather(first.catch_up(), second.catch_up())
        assert sorted((await self.rows(read_model)).values()) == positions
        applied = first.statistics().events_applied + second.statistics().events_applied
        assert applied == 40

    async def test_rebuild_starts_over(self, read_model: ReadModel[Any], store: EventStore) -> None:
        positions = await _append(store, 5)
        projection = _Rows(self)
        projector = Projector(store, projection, read_model, batch_size=2)
        await projector.catch_up()
        seen: list[tuple[int, int, int]] = []
        assert await projector.rebuild(lambda *args: seen.append(args)) == 5
        assert sorted((await self.rows(read_model)).values()) == positions
        assert (projection.resets, projection.setups) == (1, 2)
        assert seen[-1] == (5, positions[-1], positions[-1])
        assert projector.statistics().rebuilds == 1
        assert await read_model.checkpoint("rows") == positions[-1]
