"""The process-manager contract: exactly-once effects on every event-store engine.

:class:`ProcessManagerContract` runs process managers over a store made by
:meth:`~ProcessManagerContract.make_store` in one process: effects committed with the
checkpoint, conflicts, competing runners, failures. :class:`ProcessManagerProcessContract`
does it the hard way, with child processes killed ``-9`` mid-stream and runners racing
in two processes. Subclass them as the event-store contracts
(:mod:`corral.testing.contracts.eventstore`, ``eventstore_processes``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ...errors import (
    ArgumentTypeError,
    ConcurrencyError,
    InvalidArgumentError,
    ProcessManagerError,
    UsageError,
)
from ...eventsourcing import (
    ANY,
    NO_STREAM,
    Aggregate,
    Checkpoints,
    Decider,
    DeciderRepository,
    EventCodec,
    EventStore,
    NewEvent,
    ProcessContext,
    ProcessManager,
    ProcessRunner,
    RecordedEvent,
    Repository,
    when,
)
from ...eventsourcing._rules import StreamAppend
from ...eventsourcing._tracking import Tracking

__all__ = ("Payments", "ProcessManagerContract", "ProcessManagerProcessContract", "placed")


def placed(order: int, total: int = 10) -> NewEvent:
    """An ``OrderPlaced`` event for ``order`` (a ``total`` of 0 asks for no payment)."""
    return NewEvent("OrderPlaced", json.dumps({"order": order, "total": total}).encode())


class Payments(ProcessManager):
    """For each order placed with a total, a ``PaymentRequested`` in ``payment-<order>``."""

    name = "payments"
    categories = ("order",)

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
        self.seen.append(event.position)
        if event.type != "OrderPlaced":
            return
        order = json.loads(event.data)
        if order["total"]:
            data = {"order": order["order"], "source": str(event.id)}
            ctx.append(f"payment-{order['order']}", [NewEvent("PaymentRequested", _json(data))])


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


async def _effects(store: EventStore) -> collections.Counter[str]:
    """How many ``PaymentRequested`` events each source event id caused.

    Reads the payment streams one by one: a stream's read shows every committed event
    at once on every engine (a read of the global log on PostgreSQL may briefly stop
    short of the newest commit while an unrelated transaction ends).
    """
    counts: collections.Counter[str] = collections.Counter()
    async for info in store.list_streams(prefix="payment-"):
        async for recorded in store.read_stream(info.stream):
            if recorded.type == "PaymentRequested":
                counts[json.loads(recorded.data)["source"]] += 1
    return counts


async def _sources(store: EventStore) -> list[RecordedEvent]:
    return [e async for e in store.read_all() if e.type == "OrderPlaced"]


# -- a small domain for commands run through repositories -----------------------------


@dataclasses.dataclass(frozen=True)
class Reserve:
    """A command: reserve ``amount`` units for ``order``."""

    order: int
    amount: int


@dataclasses.dataclass(frozen=True)
class Reserved:
    """An event: ``amount`` units were reserved for ``order``."""

    order: int
    amount: int


#: Units reserved so far; a reservation beyond 100 units decides nothing.
STOCK: Decider[Reserve, Reserved, int] = Decider(
    initial_state=0,
    decide=lambda command, held: (
        [Reserved(command.order, command.amount)] if held + command.amount <= 100 else []
    ),
    evolve=lambda held, event: held + event.amount,
)
CODEC = EventCodec([Reserved])


class Shelf(Aggregate):
    """The same stock as a class."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.held = 0

    def reserve(self, order: int, amount: int) -> None:
        self.record(Reserved(order, amount))

    @when(Reserved)
    def _reserved(self, event: Reserved) -> None:
        self.held += event.amount


class ProcessManagerContract:
    """The tests every event-store engine passes with process managers.

    Subclass it (the class name must start with ``Test``) and implement
    :meth:`make_store`; ``self.tmp_path`` is a fresh directory for engines that need
    files.
    """

    tmp_path: Path

    async def make_store(self) -> EventStore:
        """A new, empty store of the engine under test (each call a separate one)."""
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _remember_tmp_path(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        store = await self.make_store()
        try:
            yield store
        finally:
            await store.close()

    # -- effects and the checkpoint ----------------------------------------------------

    async def test_each_event_has_one_effect_committed_with_the_checkpoint(
        self, store: EventStore
    ) -> None:
        for order in range(5):
            await store.append(f"order-{order}", [placed(order)])
        await store.append("customer-1", [NewEvent("Joined", b"{}")])
        await store.append("order-9", [placed(9, total=0)])  # no payment asked
        runner = ProcessRunner(store, Payments())
        assert await runner.catch_up() == 6
        counts = await _effects(store)
        sources = await _sources(store)
        assert counts == {str(e.id): 1 for e in sources if json.loads(e.data)["total"]}
        head = (await store.read_all().collect())[-1].position
        # The checkpoint covers the manager's own output too (it read past it).
        assert runner.position == await Checkpoints(store).load("payments")
        assert runner.position >= sources[-1].position
        stats = runner.statistics()
        assert (stats.handled, stats.skipped, stats.effects, stats.events_appended) == (6, 1, 5, 5)
        assert not stats.running
        # A second pass reads the effects (other categories) and handles nothing again.
        assert await runner.catch_up() == 0
        assert runner.position == head
        assert await _effects(store) == counts
        assert repr(runner).startswith(f"<ProcessRunner 'payments' at position {head}, 6 handled")

    async def test_a_new_runner_resumes_after_the_checkpoint(self, store: EventStore) -> None:
        await store.append("order-1", [placed(1)])
        assert await ProcessRunner(store, Payments()).catch_up() == 1
        await store.append("order-2", [placed(2)])
        manager = Payments()
        assert await ProcessRunner(store, manager).catch_up() == 1
        assert len(manager.seen) == 1
        assert sorted((await _effects(store)).values()) == [1, 1]

    async def test_the_checkpoint_is_where_checkpoints_keeps_it(self, store: EventStore) -> None:
        await store.append("order-1", [placed(1)])
        second = await store.append("order-2", [placed(2)])
        await Checkpoints(store).save("payments", second.positions[0] - 1)
        runner = ProcessRunner(store, Payments())
        assert await runner.catch_up() == 1
        assert list((await _effects(store)).values()) == [1]
        assert await Checkpoints(store).load("payments") == runner.position

    async def test_events_without_effect_advance_the_checkpoint_in_batches(
        self, store: EventStore
    ) -> None:
        for start in range(0, 600, 100):
            await store.append_many(
                {f"order-{n}": ([placed(n, total=0)], NO_STREAM) for n in range(start, start + 100)}
            )
        await store.append("customer-1", [_joined()])
        runner = ProcessRunner(store, Payments())
        assert await runner.catch_up() == 600
        stats = runner.statistics()
        assert stats.effects == 0
        # 601 events in two pages of the log: a few checkpoint commits, not 601.
        assert 2 <= stats.checkpoint_commits <= 4
        assert runner.position == (await store.read_all().collect())[-1].position

    async def test_the_default_categories_skip_system_streams(self, store: EventStore) -> None:
        class Everything(ProcessManager):
            name = "everything"

            def __init__(self) -> None:
                self.streams: list[str] = []

            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                self.streams.append(event.stream)

        await store.append("$system", [_joined()])
        await store.append("a-1", [_joined()])
        await store.append("b", [_joined()])
        manager = Everything()
        runner = ProcessRunner(store, manager)
        assert await runner.catch_up() == 2
        assert manager.streams == ["a-1", "b"]
        assert runner.statistics().skipped == 1

    # -- staging -----------------------------------------------------------------------

    async def test_staged_appends_to_several_streams_commit_together(
        self, store: EventStore
    ) -> None:
        class Fanout(ProcessManager):
            name = "fanout"
            categories = ("order",)

            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                ctx.append("audit", [NewEvent("Seen", b"{}")])
                ctx.append("audit", [NewEvent("Seen", b"{}")])  # merged: expects ANY
                ctx.append(f"mail-{event.version}", [NewEvent("Mail", b"{}")], expected_version=0)
                assert set(ctx.staged) == {"audit", f"mail-{event.version}"}
                assert ctx.event is event
                assert ctx.store is store

        await store.append("order", [placed(1), placed(2)])
        runner = ProcessRunner(store, Fanout())
        assert await runner.catch_up() == 2
        audit = await store.read_stream("audit").collect()
        assert len(audit) == 4
        assert [len(await store.read_stream(f"mail-{n}").collect()) for n in (1, 2)] == [1, 1]
        assert runner.statistics().events_appended == 6

    async def test_commands_run_through_repositories_stage_their_events(
        self, store: EventStore
    ) -> None:
        stock = DeciderRepository(store, CODEC, STOCK, category="stock")
        shelves = Repository(store, CODEC, Shelf, category="shelf")
        outcomes: list[Any] = []

        class Reservations(ProcessManager):
            name = "reservations"
            categories = ("order",)

            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                order = json.loads(event.data)
                decided = await ctx.handle(stock, "widgets", Reserve(order["order"], 40))
                shelf = await ctx.handle(
                    shelves, "a", lambda shelf: shelf.reserve(order["order"], 1)
                )
                outcomes.append((decided.version, decided.state, shelf.version, shelf.held))
                assert shelf.pending_events == ()

        for order in range(3):
            await store.append(f"order-{order}", [placed(order)])
        assert await ProcessRunner(store, Reservations()).catch_up() == 3
        # The third reservation would pass 100 units: decided nothing, staged nothing.
        assert outcomes == [(1, 40, 1, 1), (2, 80, 2, 2), (2, 80, 3, 3)]
        assert (await stock.load("widgets")).state == 80
        assert (await shelves.load("a")).held == 3

    async def test_a_conflicting_command_is_decided_again_on_fresh_state(
        self, store: EventStore
    ) -> None:
        stock = DeciderRepository(store, CODEC, STOCK, category="stock")
        runs: list[int] = []

        class Reservations(ProcessManager):
            name = "reservations"
            categories = ("order",)

            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                decided = await ctx.handle(stock, "widgets", Reserve(1, 30))
                runs.append(decided.state)
                if len(runs) == 1:  # another writer reserves meanwhile
                    await stock.handle("widgets", Reserve(99, 50))

        await store.append("order-1", [placed(1)])
        runner = ProcessRunner(store, Reservations())
        assert await runner.catch_up() == 1
        assert runs == [30, 80]
        assert (await stock.load("widgets")).state == 80
        stats = runner.statistics()
        assert (stats.retries, stats.effects) == (1, 1)

    async def test_endless_conflicts_stop_the_runner_with_nothing_committed(
        self, store: EventStore
    ) -> None:
        class Racing(ProcessManager):
            name = "racing"
            categories = ("order",)

            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                version = (await ctx.store.get_stream_metadata("stock")).version
                ctx.append("stock", [NewEvent("Reserved", b"{}")], expected_version=version)
                await ctx.store.append("stock", [NewEvent("Taken", b"{}")])  # always first

        before = await store.append("customer-1", [_joined()])
        source = await store.append("order-1", [placed(1)])
        runner = ProcessRunner(store, Racing(), attempts=2)
        with pytest.raises(ProcessManagerError) as caught:
            await runner.catch_up()
        error = caught.value
        assert (error.manager, error.stream, error.position) == (
            "racing",
            "order-1",
            source.positions[0],
        )
        assert isinstance(error.__cause__, ConcurrencyError)
        assert "conflicted 2 times" in str(error)
        stock = await store.read_stream("stock").collect()
        assert [e.type for e in stock] == ["Taken", "Taken"]
        # The event before it had no effect: the checkpoint moved up to it, not past it.
        assert await Checkpoints(store).load("racing") == before.positions[0]
        assert runner.statistics().retries == 1

    async def test_a_failing_handler_stops_the_runner_and_commits_nothing_of_it(
        self, store: EventStore
    ) -> None:
        class Fragile(Payments):
            name = "fragile"
            broken = True

            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                await super().handle(event, ctx)
                if json.loads(event.data)["order"] == 2 and self.broken:
                    raise RuntimeError("no payment service")

        first = await store.append("order-1", [placed(1)])
        second = await store.append("order-2", [placed(2)])
        await store.append("order-3", [placed(3)])
        manager = Fragile()
        runner = ProcessRunner(store, manager)
        with pytest.raises(ProcessManagerError) as caught:
            await runner.catch_up()
        error = caught.value
        assert (error.manager, error.stream, error.position) == (
            "fragile",
            "order-2",
            second.positions[0],
        )
        assert isinstance(error.__cause__, RuntimeError)
        assert "'fragile'" in str(error)
        assert "'order-2'" in str(error)
        assert len(await _effects(store)) == 1  # order 1's payment, not order 2's
        checkpoint = await Checkpoints(store).load("fragile")
        assert first.positions[0] <= checkpoint < second.positions[0]
        assert not runner.statistics().running
        manager.broken = False
        assert await runner.catch_up() == 2
        assert sorted((await _effects(store)).values()) == [1, 1, 1]

    # -- competing runners -------------------------------------------------------------

    async def test_of_two_runners_one_commits_and_the_other_skips(self, store: EventStore) -> None:
        release, started = asyncio.Event(), asyncio.Event()

        class Slow(Payments):
            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                started.set()
                await release.wait()
                await super().handle(event, ctx)

        for order in range(3):
            await store.append(f"order-{order}", [placed(order)])
        slow = ProcessRunner(store, Slow())
        task = asyncio.ensure_future(slow.catch_up())
        await started.wait()
        fast = ProcessRunner(store, Payments())
        assert await fast.catch_up() == 3
        release.set()
        await task
        assert sorted((await _effects(store)).values()) == [1, 1, 1]
        stats = slow.statistics()
        assert stats.effects == 0
        assert stats.conflicts >= 1
        assert slow.position == fast.position

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(st.sampled_from([0, 10, 10]), min_size=1, max_size=10),
        st.integers(min_value=2, max_value=3),
        st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=6),
    )
    async def test_racing_runners_commit_each_effect_once(
        self, totals: list[int], runners: int, yields: list[int]
    ) -> None:
        # Runners of one manager race over the same events; each run of handle yields to
        # the loop a different number of times, so they interleave in every way.
        store = await self.make_store()
        try:
            stock = DeciderRepository(store, CODEC, STOCK, category="stock")
            turns = iter(yields * 1000)

            class Reserving(Payments):
                async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                    for _ in range(next(turns)):
                        await asyncio.sleep(0)
                    order = json.loads(event.data)
                    if order["total"]:
                        await ctx.handle(stock, "w", Reserve(order["order"], 1))
                    await super().handle(event, ctx)

            for order, total in enumerate(totals):
                await store.append(f"order-{order}", [placed(order, total)])
            racing = [ProcessRunner(store, Reserving(), attempts=100) for _ in range(runners)]
            await asyncio.gather(*(runner.catch_up() for runner in racing))
            paid = sum(1 for total in totals if total)
            assert sum(runner.statistics().effects for runner in racing) == paid
            assert list((await _effects(store)).values()) == [1] * paid
            assert (await stock.load("w")).state == paid
        finally:
            await store.close()

    async def test_a_checkpoint_conflict_writes_nothing(self, store: EventStore) -> None:
        await Checkpoints(store).save("x", 5)
        part = StreamAppend("out", (NewEvent("E", b"{}"),), ANY)
        with pytest.raises(ConcurrencyError) as caught:
            await store._append_tracked([part], Tracking("x", 4, 9))
        assert (caught.value.stream, caught.value.expected, caught.value.actual) == (
            "$checkpoint-x",
            4,
            5,
        )
        assert await store.read_all().collect() == []
        with pytest.raises(ConcurrencyError):
            await store._append_tracked([], Tracking("y", 1, 2))
        await store._append_tracked([part], Tracking("x", 5, 9))
        await store._append_tracked([], Tracking("y", 0, 3))
        assert [await Checkpoints(store).load(n) for n in ("x", "y")] == [9, 3]
        assert len(await store.read_all().collect()) == 1

    # -- live ----------------------------------------------------------------------------

    async def test_run_follows_new_events_and_wait_for_position_reads_them(
        self, store: EventStore
    ) -> None:
        runner = ProcessRunner(store, Payments(), poll_interval=0.05)
        task = asyncio.ensure_future(runner.run())
        try:
            for order in range(3):
                result = await store.append(f"order-{order}", [placed(order)])
                await runner.wait_for_position(result.positions[0], timeout=60)
                assert runner.statistics().effects == order + 1  # committed, then woken
                # (On PostgreSQL, a read may briefly stop short of the newest commit
                # while an unrelated transaction ends: read until it is there.)
                for _ in range(6000):
                    if (await _effects(store)).total() == order + 1:
                        break
                    await asyncio.sleep(0.01)
                assert (await _effects(store)).total() == order + 1
            assert runner.statistics().running
            with pytest.raises(UsageError, match="already running"):
                await runner.catch_up()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert not runner.statistics().running
        await runner.wait_for_position(runner.position)  # there already: at once

    async def test_a_failing_pass_fails_its_waiters(self, store: EventStore) -> None:
        class Broken(Payments):
            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                raise RuntimeError("broken")

        runner = ProcessRunner(store, Broken())
        waiter = asyncio.ensure_future(runner.wait_for_position(10**15, timeout=60))
        await asyncio.sleep(0)
        await store.append("order-1", [placed(1)])
        with pytest.raises(ProcessManagerError):
            await runner.catch_up()
        with pytest.raises(ProcessManagerError, match="broken"):
            await waiter

    async def test_wait_for_position_times_out(self, store: EventStore) -> None:
        runner = ProcessRunner(store, Payments())
        with pytest.raises(TimeoutError, match=r"did not reach position 10 within 0\.01"):
            await runner.wait_for_position(10, timeout=0.01)
        assert runner.statistics().waiters == 0

    # -- bad input -----------------------------------------------------------------------

    async def test_bad_arguments_are_named(self, store: EventStore) -> None:
        with pytest.raises(ArgumentTypeError, match="store must be an EventStore"):
            ProcessRunner(object(), Payments())  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="manager must be a ProcessManager"):
            ProcessRunner(store, object())  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="poll_interval"):
            ProcessRunner(store, Payments(), poll_interval=0)
        with pytest.raises(InvalidArgumentError, match="attempts"):
            ProcessRunner(store, Payments(), attempts=0)

        class Nameless(Payments):
            name = ""

        class Untyped(Payments):
            name = 7  # type: ignore[assignment]

        class Dashed(Payments):
            categories = ("order-1",)

        class Listed(Payments):
            categories = ["order"]  # type: ignore[assignment]  # noqa: RUF012

        with pytest.raises(InvalidArgumentError, match=r"Nameless\.name must not be empty"):
            ProcessRunner(store, Nameless())
        with pytest.raises(ArgumentTypeError, match=r"Untyped\.name must be a str"):
            ProcessRunner(store, Untyped())
        with pytest.raises(InvalidArgumentError, match="'order-1'"):
            ProcessRunner(store, Dashed())
        with pytest.raises(ArgumentTypeError, match=r"Listed\.categories must be a tuple"):
            ProcessRunner(store, Listed())
        runner = ProcessRunner(store, Payments())
        with pytest.raises(InvalidArgumentError, match="position"):
            await runner.wait_for_position(-1)
        with pytest.raises(ArgumentTypeError, match="position"):
            await runner.wait_for_position("1")  # type: ignore[arg-type]

    async def test_bad_staging_is_refused_and_commits_nothing(self, store: EventStore) -> None:
        contexts: list[ProcessContext] = []
        mistakes: list[Callable[[ProcessContext], Awaitable[object]]] = []

        class Careless(ProcessManager):
            name = "careless"

            async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
                contexts.append(ctx)
                ctx.append("out", [NewEvent("Fine", b"{}")])
                await mistakes[0](ctx)

        async def one_event(ctx: ProcessContext) -> None:
            ctx.append("out", NewEvent("E", b"{}"))  # type: ignore[arg-type]

        async def exact_twice(ctx: ProcessContext) -> None:
            ctx.append("out", [NewEvent("E", b"{}")], expected_version=1)

        async def not_a_repository(ctx: ProcessContext) -> None:
            await ctx.handle(object(), "1", None)  # type: ignore[call-overload]

        async def another_store(ctx: ProcessContext) -> None:
            other = DeciderRepository(_other_store(), CODEC, STOCK, category="stock")
            await ctx.handle(other, "1", Reserve(1, 1))

        await store.append("order-1", [placed(1)])
        expected = [
            (one_event, ArgumentTypeError, "wrap one event in a list"),
            (exact_twice, UsageError, "staged already"),
            (not_a_repository, ArgumentTypeError, "DeciderRepository or a Repository"),
            (another_store, InvalidArgumentError, "not this runner's store"),
        ]
        for mistake, error_type, text in expected:
            mistakes[:] = [mistake]
            with pytest.raises(ProcessManagerError) as caught:
                await ProcessRunner(store, Careless()).catch_up()
            assert isinstance(caught.value.__cause__, error_type)
            assert text in str(caught.value.__cause__)
        assert await store.read_stream("out").collect() == []
        with pytest.raises(UsageError, match="after its handle"):
            contexts[-1].append("out", [NewEvent("Late", b"{}")])
        assert "finished" in repr(contexts[-1])


def _joined() -> NewEvent:
    return NewEvent("Joined", b"{}")


def _other_store() -> EventStore:
    from ...backends.memory import MemoryEventStore

    return MemoryEventStore()


# -- the hard way: child processes ----------------------------------------------------

# A runner of Payments over the store, printing each event it hands to handle; argv[2]
# is how long (seconds) handle sleeps, so a parent can kill it mid-stream.
_RUNNER = """
class Slow(Payments):
    async def handle(self, event, ctx):
        await super().handle(event, ctx)
        print(event.position, flush=True)
        await asyncio.sleep(float(sys.argv[2]))

async def main():
    async with await open_store(sys.argv[1]) as store:
        runner = ProcessRunner(store, Slow())
        await runner.catch_up()
        stats = runner.statistics()
        print("done", stats.effects, stats.conflicts, flush=True)
"""

_CHILD_HEADER = """
import asyncio, sys
from corral.eventsourcing import ProcessRunner
from corral.testing.contracts.processmanager import Payments
"""

#: Orders placed before the runners start: every fifth asks for no payment.
_ORDERS = 300


class ProcessManagerProcessContract:
    """Kill -9 and two-process tests of exactly-once effects on a durable engine.

    Set :attr:`OPEN_STORE` and override the ``locator`` fixture, as for
    :class:`~corral.testing.contracts.eventstore_processes.EventStoreProcessContract`.
    The tests run child interpreters and take seconds: they are marked ``slow``.
    """

    #: Source code defining ``async def open_store(locator) -> EventStore`` (with its
    #: imports), run in the child processes and in the test itself.
    OPEN_STORE: ClassVar[str]

    @pytest.fixture
    def locator(self) -> str:
        """What ``open_store`` takes: where an existing, empty store lives (override)."""
        raise NotImplementedError

    def _opener(self) -> Callable[[str], Awaitable[EventStore]]:
        namespace: dict[str, Any] = {}
        exec(textwrap.dedent(self.OPEN_STORE), namespace)
        opener: Callable[[str], Awaitable[EventStore]] = namespace["open_store"]
        return opener

    def _spawn(self, locator: str, delay: float) -> subprocess.Popen[str]:
        code = "\n".join(
            (_CHILD_HEADER, textwrap.dedent(self.OPEN_STORE), _RUNNER, "asyncio.run(main())")
        )
        return subprocess.Popen(
            [sys.executable, "-c", code, locator, str(delay)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
        )

    def _place_orders(self, locator: str) -> None:
        async def place() -> None:
            async with await self._opener()(locator) as store:
                for start in range(0, _ORDERS, 50):
                    await store.append_many(
                        {
                            f"order-{n}": ([placed(n, total=0 if n % 5 == 0 else 10)], NO_STREAM)
                            for n in range(start, start + 50)
                        }
                    )
                    await store.append(f"customer-{start}", [NewEvent("Joined", b"{}")])

        asyncio.run(place())

    def _check_exactly_once(self, locator: str) -> int:
        """Finish with a runner in this process; every paid order has one payment."""

        async def finish() -> tuple[collections.Counter[str], list[RecordedEvent], int, int]:
            async with await self._opener()(locator) as store:
                runner = ProcessRunner(store, Payments())
                await runner.catch_up()
                await runner.catch_up()  # past the payments the first pass requested
                head = (await store.read_all().collect())[-1].position
                return await _effects(store), await _sources(store), runner.position, head

        counts, sources, position, head = asyncio.run(finish())
        paid = [e for e in sources if json.loads(e.data)["total"]]
        assert len(sources) == _ORDERS
        assert counts == {str(e.id): 1 for e in paid}, "an order paid twice or never"
        assert position == head
        return len(paid)

    @pytest.mark.slow
    def test_a_runner_killed_mid_stream_resumes_with_one_effect_per_event(
        self, locator: str
    ) -> None:
        self._place_orders(locator)
        for round_ in range(2):  # killed twice, at different places
            child = self._spawn(locator, 0.002)
            assert child.stdout is not None
            seen = 0
            try:
                for _line in child.stdout:
                    seen += 1
                    if seen >= 40 + 30 * round_:
                        break
                else:
                    err = child.stderr.read() if child.stderr else ""
                    pytest.fail(f"the runner ended before it was killed: {err}")
            finally:
                os.kill(child.pid, signal.SIGKILL)
                child.communicate()
            assert child.returncode == -signal.SIGKILL
        self._check_exactly_once(locator)

    @pytest.mark.slow
    def test_runners_in_two_processes_commit_each_effect_once(self, locator: str) -> None:
        self._place_orders(locator)
        children = [self._spawn(locator, 0) for _ in range(2)]
        effects = 0
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            done = out.splitlines()[-1].split()
            assert done[0] == "done"
            effects += int(done[1])
        paid = self._check_exactly_once(locator)
        assert effects == paid  # between them, the two runners committed each once
