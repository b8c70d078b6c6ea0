"""Bank accounts, event-sourced: an aggregate, commands, a read model, a process manager.

The model of the worked example in the guide (docs/guide/event-sourcing-example.md):
an ``Account`` aggregate whose commands record ``Opened``, ``Deposited``,
``Withdrawn``, ``TransferSent`` and ``TransferReceived`` events, kept by a
``Repository`` in the streams ``account-<id>``; a ``Balances`` projection that keeps a
table of every balance in a SQLite read model; and a ``TransferDesk`` process manager
that credits each transfer to its receiver exactly once.

Run it with ``python examples/bank.py``: it works in new SQLite files in a temporary
directory. ``python examples/bank.py sqlite:///bank.db`` keeps the store's file, and
``python examples/bank.py postgresql://user@host/db`` runs the same program with the
store on PostgreSQL; either store must be empty (the read model stays a temporary
SQLite file). It prints::

    refused: account bob holds 0, not 30
    two withdrawals of 80 from 100: ['paid', 'refused']
    Ada: 20 at version 3
    Bob: 0 at version 1
    account-ada v1 Opened(owner='Ada')
    account-ada v2 Deposited(amount=100)
    account-ada v3 Withdrawn(amount=80)
    balances applied 4 events: [('ada', 'Ada', 20), ('bob', 'Bob', 0)]
    after Ada sent 15 to Bob: [('ada', 'Ada', 5), ('bob', 'Bob', 15)]
    account-bob v1 Opened(owner='Bob')
    account-bob v2 TransferReceived(transfer='t-1', source='ada', amount=15)
    6 events in 2 accounts
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

import corral
from corral.backends.sqlite import SqliteTransaction
from corral.eventsourcing import (
    Aggregate,
    EventCodec,
    EventStore,
    ProcessContext,
    ProcessManager,
    ProcessRunner,
    Projection,
    Projector,
    ReadModel,
    RecordedEvent,
    Repository,
    when,
)


@dataclasses.dataclass(frozen=True)
class Opened:
    owner: str


@dataclasses.dataclass(frozen=True)
class Deposited:
    amount: int


@dataclasses.dataclass(frozen=True)
class Withdrawn:
    amount: int


@dataclasses.dataclass(frozen=True)
class TransferSent:
    transfer: str
    to: str
    amount: int


@dataclasses.dataclass(frozen=True)
class TransferReceived:
    transfer: str
    source: str
    amount: int


codec = EventCodec([Opened, Deposited, Withdrawn, TransferSent, TransferReceived])


class Refused(Exception):
    """A command the account's rules do not allow."""


class Account(Aggregate):
    """A bank account: commands check the rules and record events; handlers apply them."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner: str | None = None
        self.balance = 0
        self.received: set[str] = set()

    def open(self, owner: str) -> None:
        if self.owner is not None:
            raise Refused(f"account {self.id} is open already")
        self.record(Opened(owner))

    def deposit(self, amount: int) -> None:
        self._check(amount)
        self.record(Deposited(amount))

    def withdraw(self, amount: int) -> None:
        self._check(amount, paying=True)
        self.record(Withdrawn(amount))

    def send(self, transfer: str, to: str, amount: int) -> None:
        self._check(amount, paying=True)
        self.record(TransferSent(transfer, to, amount))

    def receive(self, transfer: str, source: str, amount: int) -> None:
        self._check(amount)
        if transfer not in self.received:  # a transfer is credited once
            self.record(TransferReceived(transfer, source, amount))

    def _check(self, amount: int, *, paying: bool = False) -> None:
        if self.owner is None:
            raise Refused(f"account {self.id} is not open")
        if amount <= 0:
            raise Refused(f"amounts are positive, not {amount}")
        if paying and amount > self.balance:
            raise Refused(f"account {self.id} holds {self.balance}, not {amount}")

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @when(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount

    @when(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.amount

    @when(TransferSent)
    def _sent(self, event: TransferSent) -> None:
        self.balance -= event.amount

    @when(TransferReceived)
    def _received(self, event: TransferReceived) -> None:
        self.balance += event.amount
        self.received.add(event.transfer)


def repository(store: EventStore) -> Repository[Account]:
    """The accounts of ``store``, each in the stream ``account-<id>``."""
    return Repository(store, codec, Account, category="account")


class Balances(Projection[SqliteTransaction]):
    """A table of every account with its owner and balance."""

    name = "balances"
    categories = ("account",)

    async def setup(self, tx: SqliteTransaction) -> None:
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS balances "
            "(account TEXT PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL)"
        )

    async def reset(self, tx: SqliteTransaction) -> None:
        await tx.execute("DROP TABLE IF EXISTS balances")

    async def apply(self, event: RecordedEvent, tx: SqliteTransaction) -> None:
        account = event.stream.removeprefix("account-")
        match codec.decode(event):
            case Opened(owner=owner):
                await tx.execute("INSERT INTO balances VALUES (?, ?, 0)", (account, owner))
            case Deposited(amount=amount) | TransferReceived(amount=amount):
                await self.add(tx, account, amount)
            case Withdrawn(amount=amount) | TransferSent(amount=amount):
                await self.add(tx, account, -amount)

    async def add(self, tx: SqliteTransaction, account: str, amount: int) -> None:
        await tx.execute(
            "UPDATE balances SET balance = balance + ? WHERE account = ?", (amount, account)
        )


class TransferDesk(ProcessManager):
    """Credits each ``TransferSent`` to its receiver, exactly once."""

    name = "transfer-desk"
    categories = ("account",)

    def __init__(self, accounts: Repository[Account]) -> None:
        self.accounts = accounts

    async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
        if event.type != "TransferSent":
            return  # no effect: only the checkpoint moves
        sent = codec.decode(event)
        source = event.stream.removeprefix("account-")
        await ctx.handle(
            self.accounts,
            sent.to,
            lambda account: account.receive(sent.transfer, source, sent.amount),
        )


async def withdraw(accounts: Repository[Account], id: str, amount: int) -> str:
    """Withdraw ``amount`` from ``id``: ``"paid"`` or ``"refused"``."""
    try:
        await accounts.handle(id, lambda account: account.withdraw(amount))
    except Refused:
        return "refused"
    return "paid"


async def balances(views: ReadModel[SqliteTransaction]) -> list[tuple[object, ...]]:
    """The rows of the balances table, by account."""
    async with views.transaction() as tx:
        return await tx.fetchall("SELECT * FROM balances ORDER BY account")


async def run(store: EventStore, views: ReadModel[SqliteTransaction]) -> None:
    """The whole story, on an empty ``store`` and an empty read model ``views``."""
    accounts = repository(store)
    await accounts.handle("ada", lambda account: account.open("Ada"))
    await accounts.handle("ada", lambda account: account.deposit(100))
    await accounts.handle("bob", lambda account: account.open("Bob"))
    try:
        await accounts.handle("bob", lambda account: account.withdraw(30))
    except Refused as refused:
        print("refused:", refused)

    # Both may load version 2 and pay; the second save conflicts, reloads, is refused.
    outcomes = await corral.all([withdraw(accounts, "ada", 80), withdraw(accounts, "ada", 80)])
    print("two withdrawals of 80 from 100:", sorted(outcomes))
    for id in ("ada", "bob"):
        account = await accounts.load(id)
        print(f"{account.owner}: {account.balance} at version {account.version}")
    async for recorded in store.read_stream("account-ada"):
        print(recorded.stream, f"v{recorded.version}", codec.decode(recorded))

    projector = Projector(store, Balances(), views)
    applied = await projector.catch_up()
    print("balances applied", applied, "events:", await balances(views))

    # The desk and the projector follow the log while Ada sends money to Bob.
    desk = ProcessRunner(store, TransferDesk(accounts))
    async with corral.TaskGroup() as group:
        group.start_soon(desk.run)
        group.start_soon(projector.run)
        await accounts.handle("ada", lambda account: account.send("t-1", "bob", 15))
        await desk.wait_for_position(await store.head_position(), timeout=30)
        await projector.wait_for_position(await store.head_position(), timeout=30)
        print("after Ada sent 15 to Bob:", await balances(views))
        group.cancel_scope.cancel()

    await ProcessRunner(store, desk.manager).catch_up()  # a desk started again
    async for recorded in store.read_stream("account-bob"):
        print(recorded.stream, f"v{recorded.version}", codec.decode(recorded))
    streams = [recorded.stream async for recorded in store.read_all()]
    print(len(streams), "events in", len(set(streams)), "accounts")


async def main(url: str | None) -> int:
    """Run the story on the store ``url`` names (or a new SQLite file) and a new read model."""
    with tempfile.TemporaryDirectory() as directory:
        if url is None:
            url = f"sqlite:///{Path(directory) / 'bank.db'}"
        views_url = f"sqlite:///{Path(directory) / 'bank-views.db'}"
        async with corral.connect(url) as store, corral.connect_read_model(views_url) as views:
            if (await store.get_stream_metadata("account-ada")).exists:
                print(f"{url} holds accounts already: give an empty store", file=sys.stderr)
                return 1
            await run(store, views)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None)))
