"""SQLite the hard way: writers killed mid-append, and writers in several processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import corral
from corral.backends.sqlite._connection import wal_working_size
from corral.testing.contracts.eventstore_processes import EventStoreProcessContract


class TestSqliteProcesses(EventStoreProcessContract):
    WAKES_ACROSS_PROCESSES = True
    OPEN_STORE = """
    import corral

    async def open_store(locator):
        return await corral.connect(locator)
    """

    @pytest.fixture
    def locator(self, tmp_path: Path) -> str:
        url = f"sqlite:///{tmp_path}/events.db"

        async def create() -> None:
            # Create the file first, so the children race on appends, not on the schema.
            await (await corral.connect(url)).close()

        asyncio.run(create())
        return url


_APPEND_THEN_WAIT = """
import asyncio, sys
import corral
from corral.eventsourcing import NewEvent

async def main():
    store = await corral.connect(sys.argv[1])
    for version in range(100):
        await store.append("s", [NewEvent("Happened", b"%d" % version)], expected_version=version)
        print(version, flush=True)  # acknowledged
    await asyncio.sleep(3600)  # killed here, with the store open

asyncio.run(main())
"""


@pytest.mark.slow
def test_a_log_written_out_ahead_loses_nothing_acknowledged_to_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _APPEND_THEN_WAIT, f"sqlite:///{path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        acknowledged = [line for _, line in zip(range(100), child.stdout, strict=False)]
        # The child's store wrote its log out ahead: the commits overwrote zeros.
        with contextlib.closing(sqlite3.connect(path)) as connection:
            assert (tmp_path / "events.db-wal").stat().st_size >= wal_working_size(connection)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) == 100

    async def read_back() -> list[bytes]:
        async with corral.connect(f"sqlite:///{path}") as store:
            return [event.data for event in await store.read_stream("s").collect()]

    assert asyncio.run(read_back()) == [b"%d" % version for version in range(100)]
