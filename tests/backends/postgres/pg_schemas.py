"""The test database and throwaway schemas in it, shared by the PostgreSQL tests.

Every test works in schemas no other test (or test run) uses, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid

import asyncpg

#: The database the tests use (trust authentication), unless CORRAL_POSTGRES_URL says.
URL = os.environ.get("CORRAL_POSTGRES_URL") or "postgresql://127.0.0.1:5432/test"


def new_schema() -> str:
    """A schema name no other test (or test run) uses."""
    return f"corral_test_{uuid.uuid4().hex[:16]}"


async def drop_schemas(schemas: list[str]) -> None:
    """Drop ``schemas`` and everything in them."""
    if not schemas:
        return
    connection = await asyncpg.connect(URL)
    try:
        for schema in schemas:
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()
