"""PostgreSQL the hard way: writer processes killed mid-append, and writers in several
processes. Every test works in a fresh schema of the test database, dropped afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pg_schemas import URL, drop_schemas, new_schema

from corral.backends.postgres import PostgresEventStore
from corral.testing.contracts.eventstore_processes import EventStoreProcessContract

pytestmark = pytest.mark.postgres


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
        name = new_schema()

        async def create() -> None:
            await (await PostgresEventStore.open(URL, schema=name)).close()

        asyncio.run(create())
        try:
            yield name
        finally:
            asyncio.run(drop_schemas([name]))
