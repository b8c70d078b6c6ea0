"""SQLite the hard way: writers killed mid-append, and writers in several processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import corral
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
