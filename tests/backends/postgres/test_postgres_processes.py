"""PostgreSQL the hard way: writer processes killed mid-append, and writers in several
processes. Every test works in a fresh schema of the test database, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from corral.backends.postgres import PostgresEventStore
from corral.testing.contracts.eventstore_processes import EventStoreProcessContract

pytestmark = pytest.mark.postgres

URL = os.environ.get("CORRAL_POSTGRES_URL") or "postgresql://127.0.0.1:5432/test"


class TestPostgresProcesses(EventStoreProcessContract):
    WAKES_ACROSS_PROCESSES = True  # LISTEN/NOTIFY
    OPEN_STORE = f"""
    from corral.backends.postgres import PostgresEventStore

    async def open_store(schema):
        return await PostgresEventStore.open({URL!r}, schema=schema)
    """

    @pytest.fixture
    def locator(self) -> Iterator[str]:
        """A schema with an empty store in it (so children race on appends, not on the schema)."""
        name = f"corral_test_{uuid.uuid4().hex[:16]}"

        async def create() -> None:
            await (await PostgresEventStore.open(URL, schema=name)).close()

        async def drop() -> None:
            connection = await asyncpg.connect(URL)
            try:
                await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            finally:
                await connection.close()

        asyncio.run(create())
        try:
            yield name
        finally:
            asyncio.run(drop())
