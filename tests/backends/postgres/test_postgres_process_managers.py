"""Process managers on PostgreSQL: the shared contract, runners killed -9 and runners in
two processes. Every test works in a fresh schema of the test database, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from corral.backends.postgres import PostgresEventStore
from corral.eventsourcing import EventStore
from corral.testing.contracts.processmanager import (
    ProcessManagerContract,
    ProcessManagerProcessContract,
)

pytestmark = pytest.mark.postgres

URL = os.environ.get("CORRAL_POSTGRES_URL") or "postgresql://127.0.0.1:5432/test"


def _schema() -> str:
    return f"corral_test_{uuid.uuid4().hex[:16]}"


async def _drop(schemas: list[str]) -> None:
    connection = await asyncpg.connect(URL)
    try:
        for schema in schemas:
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


class TestPostgresProcessManagers(ProcessManagerContract):
    @pytest.fixture(autouse=True)
    async def _schemas(self) -> AsyncIterator[None]:
        self.schemas: list[str] = []
        try:
            yield
        finally:
            await _drop(self.schemas)

    async def make_store(self) -> EventStore:
        self.schemas.append(_schema())
        return await PostgresEventStore.open(URL, schema=self.schemas[-1])


class TestPostgresProcessManagerProcesses(ProcessManagerProcessContract):
    OPEN_STORE = f"""
    from corral.backends.postgres import PostgresEventStore

    async def open_store(schema):
        return await PostgresEventStore.open({URL!r}, schema=schema)
    """

    @pytest.fixture
    def locator(self) -> Iterator[str]:
        name = _schema()

        async def create() -> None:
            await (await PostgresEventStore.open(URL, schema=name)).close()

        asyncio.run(create())
        try:
            yield name
        finally:
            asyncio.run(_drop([name]))
