"""Process managers on PostgreSQL: the shared contract, runners killed -9 and runners in
two processes. Every test works in a fresh schema of the test database, dropped afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from pg_schemas import URL, drop_schemas, new_schema

from corral.backends.postgres import PostgresEventStore
from corral.eventsourcing import EventStore
from corral.testing.contracts.processmanager import (
    ProcessManagerContract,
    ProcessManagerProcessContract,
)

pytestmark = pytest.mark.postgres


class TestPostgresProcessManagers(ProcessManagerContract):
    @pytest.fixture(autouse=True)
    async def _schemas(self) -> AsyncIterator[None]:
        self.schemas: list[str] = []
        try:
            yield
        finally:
            await drop_schemas(self.schemas)

    async def make_store(self) -> EventStore:
        self.schemas.append(new_schema())
        return await PostgresEventStore.open(URL, schema=self.schemas[-1])


class TestPostgresProcessManagerProcesses(ProcessManagerProcessContract):
    OPEN_STORE = f"""
    from corral.backends.postgres import PostgresEventStore

    async def open_store(schema):
        return await PostgresEventStore.open({URL!r}, schema=schema)
    """

    @pytest.fixture
    def locator(self) -> Iterator[str]:
        name = new_schema()

        async def create() -> None:
            await (await PostgresEventStore.open(URL, schema=name)).close()

        asyncio.run(create())
        try:
            yield name
        finally:
            asyncio.run(drop_schemas([name]))
