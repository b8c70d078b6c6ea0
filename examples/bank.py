"""Bank accounts, event-sourced: an aggregate with rules, commands, history, transfers.

The model of the worked example in the guide (docs/guide/event-sourcing-example.md):
an ``Account`` aggregate whose commands record ``Opened``, ``Deposited``,
``Withdrawn``, ``TransferSent`` and ``TransferReceived`` events, kept by a
``Repository`` in the streams ``account-<id>``.

Run it with ``python examples/bank.py``: it works in a new SQLite file in a temporary
directory. ``python examples/bank.py sqlite:///bank.db`` keeps the file, and
``python examples/bank.py postgresql://user@host/db`` runs the same program on
PostgreSQL; either store must be empty. It prints::

    refused: account bob holds 0, not 30
    two withdrawals of 80 from 100: ['paid', 'refused']
    Ada: 20 at version 3
    Bob: 0 at version 1
    after sending 15 to Bob: Ada 5, Bob 0
    account-ada v1 Opened(owner='Ada')
    account-ada v2 Deposited(amount=100)
    account-ada v3 Withdrawn(amount=80)
    account-ada v4 TransferSent(transfer='t-1', to='bob', amount=15)
    5 events in 2 accounts
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

import corral
from corral.eventsourcing import Aggregate, EventCodec, EventStore, Repository, when


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


async def withdraw(accounts: Repository[Account], id: str, amount: int) -> str:
    """Withdraw ``amount`` from ``id``: ``"paid"`` or ``"refused"``."""
    try:
        await accounts.handle(id, lambda account: account.withdraw(amount))
    except Refused:
        return "refused"
    return "paid"


async def run(store: EventStore) -> None:
    """The whole story, on an empty ``store``."""
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

    await accounts.handle("ada", lambda account: account.send("t-1", "bob", 15))
    ada, bob = await accounts.load("ada"), await accounts.load("bob")
    print(f"after sending 15 to Bob: Ada {ada.balance}, Bob {bob.balance}")

    async for recorded in store.read_stream("account-ada"):
        print(recorded.stream, f"v{recorded.version}", codec.decode(recorded))
    streams = [recorded.stream async for recorded in store.read_all()]
    print(len(streams), "events in", len(set(streams)), "accounts")


async def main(url: str | None) -> int:
    """Run the story on the store ``url`` names, or on a new SQLite file."""
    with tempfile.TemporaryDirectory() as directory:
        if url is None:
            url = f"sqlite:///{Path(directory) / 'bank.db'}"
        async with corral.connect(url) as store:
            if (await store.get_stream_metadata("account-ada")).exists:
                print(f"{url} holds accounts already: give an empty store", file=sys.stderr)
                return 1
            await run(store)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None)))
