"""Process managers on SQLite the hard way: runners killed -9, runners in two processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import corral
from corral.testing.contracts.processmanager import ProcessManagerProcessContract


class TestSqliteProcessManagerProcesses(ProcessManagerProcessContract):
    OPEN_STORE = """
    import corral

    async def open_store(locator):
        return await corral.connect(locator)
    """

    @pytest.fixture
    def locator(self, tmp_path: Path) -> str:
        url = f"sqlite:///{tmp_path}/events.db"

        async def create() -> None:
            await (await corral.connect(url)).close()

        asyncio.run(create())
        return url
