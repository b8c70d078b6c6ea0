"""examples/bank.py: the program runs on every engine, and its model keeps its rules.

tests/test_docs.py runs the program as a script and compares what it prints with its
docstring; these tests run its story on each engine (PostgreSQL in a fresh schema) and
check the stored history and the aggregate's rules directly.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

import corral
from corral.errors import ProcessManagerError
from corral.eventsourcing import Checkpoints, EventStore, ProcessRunner

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "examples" / "bank.py"
POSTGRES_URL = os.environ.get("CORRAL_POSTGRES_URL") or "postgresql://127.0.0.1:5432/test"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bank_example", PROGRAM)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bank = _load()


def promised() -> list[str]:
    """The lines the program's docstring says it prints."""
    docstring = bank.__doc__ or ""
    block = docstring.split("It prints::", 1)[1]
    return [line.strip() for line in block.strip().splitlines()]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        async with corral.connect("memory://") as store:
            yield store
    elif request.param == "sqlite":
        async with corral.connect(f"sqlite:///{tmp_path}/bank.db") as store:
            yield store
    else:
        from corral.backends.postgres import PostgresEventStore

        schema = f"corral_test_bank_{uuid.uuid4().hex[:12]}"
        try:
            async with await PostgresEventStore.open(POSTGRES_URL, schema=schema) as store:
                yield store
        finally:
            connection = await asyncpg.connect(POSTGRES_URL)
            try:
                await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await connection.close()


async def test_the_story_prints_what_the_program_promises_on_every_engine(
    store: EventStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with corral.connect_read_model(f"sqlite:///{tmp_path}/views.db") as views:
        await bank.run(store, views)
    assert capsys.readouterr().out.splitlines() == promised()
    types = [(e.stream, e.type) async for e in store.read_all()]
    assert types == [
        ("account-ada", "Opened"),
        ("account-ada", "Deposited"),
        ("account-bob", "Opened"),
        ("account-ada", "Withdrawn"),
        ("account-ada", "TransferSent"),
        ("account-bob", "TransferReceived"),
    ]
    assert await Checkpoints(store).load("transfer-desk") >= (await store.head_position()) - 1


async def test_a_transfer_to_an_account_not_open_stops_the_desk_and_credits_nothing() -> None:
    async with corral.connect("memory://") as store:
        accounts = bank.repository(store)
        await accounts.handle("ada", lambda account: account.open("Ada"))
        await accounts.handle("ada", lambda account: account.deposit(10))
        await accounts.handle("ada", lambda account: account.send("t-9", "nobody", 4))
        sent = await store.head_position()
        desk = ProcessRunner(store, bank.TransferDesk(accounts))
        with pytest.raises(ProcessManagerError) as caught:
            await desk.catch_up()
        assert (caught.value.stream, caught.value.position) == ("account-ada", sent)
        assert isinstance(caught.value.__cause__, bank.Refused)
        assert not (await store.get_stream_metadata("account-nobody")).exists
        assert await Checkpoints(store).load("transfer-desk") < sent


async def test_the_rules_refuse_and_record_nothing() -> None:
    async with corral.connect("memory://") as store:
        accounts = bank.repository(store)
        with pytest.raises(bank.Refused, match="not open"):
            await accounts.handle("eve", lambda account: account.deposit(5))
        await accounts.handle("eve", lambda account: account.open("Eve"))
        with pytest.raises(bank.Refused, match="open already"):
            await accounts.handle("eve", lambda account: account.open("Eve"))
        with pytest.raises(bank.Refused, match="positive"):
            await accounts.handle("eve", lambda account: account.deposit(0))
        with pytest.raises(bank.Refused, match="holds 0, not 1"):
            await accounts.handle("eve", lambda account: account.send("t", "ada", 1))
        assert (await store.get_stream_metadata("account-eve")).version == 1


async def test_a_transfer_is_credited_once() -> None:
    async with corral.connect("memory://") as store:
        accounts = bank.repository(store)
        await accounts.handle("bob", lambda account: account.open("Bob"))
        for _ in range(2):
            await accounts.handle("bob", lambda account: account.receive("t-1", "ada", 15))
        bob = await accounts.load("bob")
        assert (bob.balance, bob.version, bob.received) == (15, 2, {"t-1"})


def test_the_program_refuses_a_store_that_holds_accounts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bank.db"
    first = subprocess.run(
        [sys.executable, str(PROGRAM), url], capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    again = subprocess.run(
        [sys.executable, str(PROGRAM), url], capture_output=True, text=True, check=False
    )
    assert again.returncode == 1
    assert "holds accounts already" in again.stderr
    assert again.stdout == ""
