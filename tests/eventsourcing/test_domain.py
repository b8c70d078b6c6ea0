"""Aggregates, repositories and snapshots, on the memory and SQLite engines."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import store_urls

import corral
from corral.errors import (
    ArgumentTypeError,
    ConcurrencyError,
    InvalidArgumentError,
    SerializationError,
    UsageError,
)
from corral.eventsourcing import (
    SNAPSHOT_KEY,
    Aggregate,
    Decided,
    Decider,
    DeciderRepository,
    EventCodec,
    EventStore,
    Loaded,
    Repository,
    when,
)

# -- a bank account, as a class ------------------------------------------------------


store_url = store_urls.store_url


@dataclasses.dataclass(frozen=True)
class Opened:
    owner: str


class Deposited(msgspec.Struct, frozen=True):
    amount: int


class Withdrawn(msgspec.Struct, frozen=True):
    amount: int


class AccountState(msgspec.Struct):
    owner: str
    balance: int


class Account(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = 0
        self.applied = 0

    def open(self, owner: str) -> None:
        if self.owner:
            raise UsageError("already open")
        self.record(Opened(owner))

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise ValueError(f"balance {self.balance} is below {amount}")
        self.record(Withdrawn(amount))

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner
        self.applied += 1

    @when(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount
        self.applied += 1

    @when(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.amount
        self.applied += 1

    def snapshot(self) -> AccountState:
        return AccountState(self.owner, self.balance)

    def restore(self, snapshot: AccountState) -> None:
        self.owner = snapshot.owner
        self.balance = snapshot.balance


def codec() -> EventCodec:
    return EventCodec([Opened, Deposited, Withdrawn])


def accounts(store: EventStore, **options: Any) -> Repository[Account]:
    return Repository(store, codec(), Account, category="account", **options)


# -- the same account, functional ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Deposit:
    amount: int


@dataclasses.dataclass(frozen=True)
class Withdraw:
    amount: int


def decide(command: Deposit | Withdraw, balance: int) -> list[Deposited | Withdrawn]:
    if isinstance(command, Deposit):
        return [Deposited(command.amount)]
    if command.amount > balance:
        raise ValueError(f"balance {balance} is below {command.amount}")
    return [Withdrawn(command.amount)] if command.amount else []


def evolve(balance: int, event: Deposited | Withdrawn) -> int:
    return balance + event.amount if isinstance(event, Deposited) else balance - event.amount


ledger: Decider[Deposit | Withdraw, Deposited | Withdrawn, int] = Decider(0, decide, evolve)


def ledgers(store: EventStore, **options: Any) -> DeciderRepository[Any, Any, int]:
    return DeciderRepository(store, codec(), ledger, category="ledger", **options)


# -- class aggregates ----------------------------------------------------------------


async def test_recorded_events_apply_at_once_and_wait_for_save(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        repository = accounts(store)
        account = await repository.load("7")
        assert repr(account) == "<Account '7' version 0, 0 pending>"
        account.open("ada")
        account.deposit(30)
        account.withdraw(10)
        assert account.balance == 20
        assert account.pending_events == (Opened("ada"), Deposited(30), Withdrawn(10))
        assert repr(account) == "<Account '7' version 0, 3 pending>"
        assert [e async for e in store.read_stream("account-7")] == []
        await repository.save(account)
        assert repr(account) == "<Account '7' version 3, 0 pending>"
        stored = [(e.type, e.version) async for e in store.read_stream("account-7")]
        assert stored == [("Opened", 1), ("Deposited", 2), ("Withdrawn", 3)]
        loaded = await repository.load("7")
        assert (loaded.owner, loaded.balance, loaded.version, loaded.applied) == ("ada", 20, 3, 3)
        await repository.save(loaded)  # nothing pending: nothing appended
        assert (await store.get_stream_metadata("account-7")).version == 3


async def test_a_concurrent_save_raises_concurrency_error_and_writes_nothing(
    store_url: str,
) -> None:
    async with corral.connect(store_url) as store:
        repository = accounts(store)
        first = await repository.load("1")
        first.open("ada")
        await repository.save(first)
        one, two = await repository.load("1"), await repository.load("1")
        one.deposit(5)
        two.deposit(7)
        await repository.save(one)
        with pytest.raises(ConcurrencyError) as caught:
            await repository.save(two)
        assert (caught.value.stream, caught.value.expected) == ("account-1", 1)
        assert two.pending_events == (Deposited(7),)
        assert (await repository.load("1")).balance == 5
        # Two new aggregates of the same id: the second finds the stream existing.
        fresh_one, fresh_two = Account("2"), Account("2")
        fresh_one.open("a")
        fresh_two.open("b")
        await repository.save(fresh_one)
        with pytest.raises(ConcurrencyError):
            await repository.save(fresh_two)


class RacedAccounts(Repository[Account]):
    """Before its first save, another writer deposits 100 into the same account."""

    raced = False

    async def save(self, aggregate: Account) -> None:
        if not self.raced:
            self.raced = True
            racer = await super().load(aggregate.id)
            racer.deposit(100)
            await super().save(racer)
        await super().save(aggregate)


async def test_handle_retries_conflicts_on_a_fresh_load(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        await accounts(store).handle("1", lambda account: account.open("ada"))
        repository = RacedAccounts(store, codec(), Account, category="account")
        runs: list[int] = []

        def deposit(account: Account) -> None:
            runs.append(account.version)
            account.deposit(1)

        saved = await repository.handle("1", deposit)
        assert runs == [1, 2]
        assert (saved.balance, saved.version) == (101, 3)


class AlwaysConflicting(Repository[Account]):
    async def save(self, aggregate: Account) -> None:
        raise ConcurrencyError("account-1", aggregate.version, aggregate.version + 1)


class CancelledLoads(Repository[Account]):
    loads = 0

    async def load(self, id: str) -> Account:
        self.loads += 1
        raise asyncio.CancelledError


async def test_handle_gives_up_after_its_attempts(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        repository = AlwaysConflicting(store, codec(), Account, category="account", attempts=2)
        runs = 0

        def deposit(account: Account) -> None:
            nonlocal runs
            runs += 1
            account.deposit(1)

        with pytest.raises(ConcurrencyError):
            await repository.handle("1", deposit)
        assert runs == 2


async def test_handle_does_not_retry_other_errors_or_cancellation(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        repository = accounts(store)
        await repository.handle("1", lambda account: account.open("ada"))
        runs = 0

        def overdraw(account: Account) -> None:
            nonlocal runs
            runs += 1
            account.withdraw(5)

        with pytest.raises(ValueError, match="balance 0 is below 5"):
            await repository.handle("1", overdraw)
        assert runs == 1
        assert (await store.get_stream_metadata("account-1")).version == 1
        cancelled = CancelledLoads(store, codec(), Account, category="account")
        with pytest.raises(asyncio.CancelledError):
            await cancelled.handle("1", lambda account: account.deposit(1))
        assert cancelled.loads == 1


def depositing(amount: int) -> Callable[[Account], None]:
    return lambda account: account.deposit(amount)


async def test_concurrent_handlers_all_land_exactly_once(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        repository = accounts(store, attempts=20)
        await repository.handle("1", lambda account: account.open("ada"))
        async with asyncio.TaskGroup() as group:
            for amount in range(1, 6):
                group.create_task(repository.handle("1", depositing(amount)))
        account = await repository.load("1")
        assert (account.balance, account.version) == (15, 6)


async def test_aggregate_misuse_is_named() -> None:
    account = Account("1")
    with pytest.raises(UsageError, match=r"Account has no @when\(Deposit\) handler"):
        account.record(Deposit(1))
    assert account.pending_events == ()
    with pytest.raises(UsageError, match="two handlers of Opened"):

        class Twice(Aggregate):
            @when(Opened)
            def _a(self, event: Opened) -> None: ...

            @when(Opened)
            def _b(self, event: Opened) -> None: ...

    with pytest.raises(ArgumentTypeError, match="event_type must be a class"):
        when("Opened")  # type: ignore[arg-type]

    class Plain(Aggregate):
        pass

    with pytest.raises(UsageError, match="does not override snapshot"):
        Plain("x").snapshot()
    with pytest.raises(UsageError, match="does not override restore"):
        Plain("x").restore(None)


async def test_handlers_are_inherited_and_overridable() -> None:
    class Audited(Account):
        @when(Deposited)
        def _deposited(self, event: Deposited) -> None:
            self.balance += 2 * event.amount

    audited = Audited("1")
    audited.open("ada")
    audited.deposit(5)
    assert (audited.owner, audited.balance) == ("ada", 10)


async def test_repository_bad_input_is_refused_before_anything_happens() -> None:
    async with corral.connect("memory://") as store:
        with pytest.raises(ArgumentTypeError, match="store must be an EventStore"):
            Repository(object(), codec(), Account, category="a")  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="codec must be an EventCodec"):
            Repository(store, object(), Account, category="a")  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="aggregate_type must be an Aggregate"):
            Repository(store, codec(), int, category="a")  # type: ignore[type-var]
        with pytest.raises(InvalidArgumentError, match="without '-', not 'a-b'"):
            Repository(store, codec(), Account, category="a-b")
        with pytest.raises(InvalidArgumentError, match="attempts must be at least 1, got 0"):
            accounts(store, attempts=0)
        with pytest.raises(InvalidArgumentError, match="snapshot_every needs a snapshot_type"):
            accounts(store, snapshot_every=3)
        with pytest.raises(InvalidArgumentError, match="snapshot_every must be at least 1"):
            accounts(store, snapshot_every=0, snapshot_type=AccountState)
        repository = accounts(store)
        assert repr(repository) == "<Repository 'account', no snapshots>"
        with pytest.raises(InvalidArgumentError, match="id must not be empty"):
            await repository.load("")
        with pytest.raises(ArgumentTypeError, match="id must be a str, not int"):
            await repository.load(7)  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="aggregate must be a Account"):
            await repository.save(Aggregate("x"))  # type: ignore[arg-type]

        async def deposit(account: Account) -> None:
            account.deposit(1)

        with pytest.raises(ArgumentTypeError, match="not the coroutine function"):
            await repository.handle("1", deposit)
        with pytest.raises(ArgumentTypeError, match="command returned an awaitable"):
            await repository.handle("1", lambda account: deposit(account))
        assert (await store.get_stream_metadata("account-1")).version == 0


# -- functional aggregates -----------------------------------------------------------


async def test_decider_handles_commands_and_loads_state(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        repository = ledgers(store)
        assert await repository.load("1") == Loaded(0, 0)
        decided = await repository.handle("1", Deposit(30))
        assert decided == Decided((Deposited(30),), 30, 1, 1)
        assert await repository.handle("1", Withdraw(0)) == Decided((), 30, 1, 1)
        assert (await repository.handle("1", Withdraw(12))).state == 18
        with pytest.raises(ValueError, match="balance 18 is below 99"):
            await repository.handle("1", Withdraw(99))
        assert await repository.load("1") == Loaded(18, 2)
        assert ledger.fold([Deposited(1), Withdrawn(3)]) == -2


class RacedLedgers(DeciderRepository[Any, Any, int]):
    """After its first load, another writer withdraws 4 from the same ledger."""

    raced = False

    async def load(self, id: str) -> Loaded[int]:
        loaded = await super().load(id)
        if not self.raced:
            self.raced = True
            await super().handle(id, Withdraw(4))
        return loaded


async def test_decider_decides_again_on_the_new_state_after_a_conflict(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        await ledgers(store).handle("1", Deposit(10))
        seen: list[int] = []

        def watching_decide(command: Withdraw, balance: int) -> list[Withdrawn]:
            seen.append(balance)
            return decide(command, balance)  # type: ignore[return-value]

        racing = RacedLedgers(
            store, codec(), Decider(0, watching_decide, evolve), category="ledger"
        )
        decided = await racing.handle("1", Withdraw(5))
        # The racer's own decision (balance 10), ours on 10 (conflicts), ours on 6.
        assert seen == [10, 10, 6]
        assert (decided.state, decided.version, decided.attempts) == (1, 3, 2)


async def test_decide_must_return_events() -> None:
    async with corral.connect("memory://") as store:

        def nothing(command: Deposit, state: int) -> Any:
            return None

        repository = DeciderRepository(store, codec(), Decider(0, nothing, evolve), category="x")
        with pytest.raises(ArgumentTypeError, match="decide must return an iterable"):
            await repository.handle("1", Deposit(1))
        with pytest.raises(ArgumentTypeError, match="decider must be a Decider"):
            DeciderRepository(store, codec(), object(), category="x")  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="evolve must be a function"):
            Decider(0, decide, 3)  # type: ignore[arg-type]


# -- snapshots -----------------------------------------------------------------------


async def test_class_snapshots_are_taken_every_n_events_and_loads_start_there(
    store_url: str,
) -> None:
    async with corral.connect(store_url) as store:
        repository = accounts(store, snapshot_every=3, snapshot_type=AccountState)
        assert repr(repository) == "<Repository 'account', snapshots every 3 events>"
        await repository.handle("1", lambda account: account.open("ada"))
        await repository.handle("1", lambda account: account.deposit(10))
        assert SNAPSHOT_KEY not in (await store.get_stream_metadata("account-1")).custom
        await store.set_stream_metadata("account-1", {"owner-team": "blue"})
        await repository.handle("1", lambda account: account.deposit(5))
        custom = (await store.get_stream_metadata("account-1")).custom
        assert custom == {
            "owner-team": "blue",
            SNAPSHOT_KEY: {"version": 3, "schema": 1, "state": {"owner": "ada", "balance": 15}},
        }
        await repository.handle("1", lambda account: account.withdraw(1))
        loaded = await repository.load("1")
        # Restored at version 3, then one event replayed through the handlers.
        assert (loaded.owner, loaded.balance, loaded.version, loaded.applied) == ("ada", 14, 4, 1)
        # Without snapshots the same stream replays in full, to the same state.
        full = await accounts(store).load("1")
        assert (full.balance, full.version, full.applied) == (14, 4, 4)


async def test_decider_snapshots_hold_the_state(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        repository = ledgers(store, snapshot_every=2)
        for amount in (1, 2, 3, 4, 5):
            await repository.handle("1", Deposit(amount))
        snapshot = (await store.get_stream_metadata("ledger-1")).custom[SNAPSHOT_KEY]
        assert snapshot == {"version": 4, "schema": 1, "state": 10}
        assert await repository.load("1") == Loaded(15, 5)
        # A snapshot of another schema is ignored: the stream is replayed.
        await store.set_stream_metadata(
            "ledger-1", {SNAPSHOT_KEY: {"version": 4, "schema": 2, "state": 999}}
        )
        assert await repository.load("1") == Loaded(15, 5)


async def test_a_snapshot_that_no_longer_fits_its_type_is_named(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        repository = ledgers(store, snapshot_every=1)
        await repository.handle("1", Deposit(1))
        await store.set_stream_metadata(
            "ledger-1", {SNAPSHOT_KEY: {"version": 1, "schema": 1, "state": "lots"}}
        )
        with pytest.raises(
            SerializationError, match="stream 'ledger-1': the snapshot at version 1 is not a int"
        ):
            await repository.load("1")
        await store.set_stream_metadata("ledger-1", {SNAPSHOT_KEY: [1, 2]})
        with pytest.raises(SerializationError, match="malformed snapshot"):
            await repository.load("1")


async def test_a_deleted_streams_snapshot_is_not_used(store_url: str) -> None:
    async with corral.connect(store_url) as store:
        repository = ledgers(store, snapshot_every=1)
        await repository.handle("1", Deposit(5))
        await store.delete_stream("ledger-1")
        assert await repository.load("1") == Loaded(0, 0)
        decided = await repository.handle("1", Deposit(2))
        assert (decided.state, decided.version) == (2, 2)
        assert await repository.load("1") == Loaded(2, 2)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[object, str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        self.events.append((source, name, fields))


async def test_retries_and_snapshots_are_reported_to_instruments() -> None:
    async with corral.connect("memory://") as store:
        await accounts(store).handle("1", lambda account: account.open("ada"))
        repository = RacedAccounts(
            store,
            codec(),
            Account,
            category="account",
            snapshot_every=3,
            snapshot_type=AccountState,
        )
        recorder = Recorder()
        corral.INSTRUMENTS.add(recorder)
        try:
            await repository.handle("1", lambda account: account.deposit(1))
        finally:
            corral.INSTRUMENTS.remove(recorder)
    assert [
        (source, name, fields) for source, name, fields in recorder.events if source is repository
    ] == [
        (repository, "conflict_retried", {"stream": "account-1", "attempt": 1, "actual": 2}),
        (repository, "snapshot_saved", {"stream": "account-1", "version": 3}),
    ]


async def test_a_cancelled_handle_saves_all_or_nothing_and_the_stream_stays_usable(
    store_url: str,
) -> None:
    async with corral.connect(store_url) as store:
        repository = accounts(store)
        await repository.handle("1", lambda account: account.open("ada"))

        def deposit_twice(account: Account) -> None:
            account.deposit(1)
            account.deposit(2)

        task = asyncio.ensure_future(repository.handle("1", deposit_twice))
        await asyncio.sleep(0)
        task.cancel()  # the memory engine may have finished already: then nothing to cancel
        with contextlib.suppress(asyncio.CancelledError):
            await task
        account = await repository.load("1")
        assert (account.version, account.balance) in {(1, 0), (3, 3)}
        account.deposit(4)
        await repository.save(account)
        assert (await repository.load("1")).balance == account.balance
