"""The PostgreSQL read model: the read-model contract, a projector killed mid-batch.

Every read model lives in a fresh schema of the test database, dropped after its test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pg_schemas import URL, drop_schemas, new_schema

import corral
from corral.backends.postgres import PostgresReadModel
from corral.errors import ArgumentTypeError, BackendUnavailable, InvalidArgumentError
from corral.eventsourcing import ReadModel
from corral.testing.contracts.readmodel import ReadModelContract
from corral.testing.contracts.readmodel_processes import ReadModelProcessContract

pytestmark = pytest.mark.postgres


class TestPostgresReadModel(ReadModelContract):
    @pytest.fixture(autouse=True)
    async def _schema(self) -> AsyncIterator[None]:
        self.schema = new_schema()
        try:
            yield
        finally:
            await drop_schemas([self.schema])

    async def make_read_model(self) -> ReadModel[Any]:
        return await PostgresReadModel.open(URL, schema=self.schema)

    async def create_table(self, tx: Any) -> None:
        await tx.execute("CREATE TABLE IF NOT EXISTS t (key text PRIMARY KEY, value bigint)")

    async def drop_rows(self, tx: Any) -> None:
        await tx.execute("DELETE FROM t")

    async def insert(self, tx: Any, key: str, value: int) -> None:
        await tx.execute("INSERT INTO t VALUES ($1, $2)", key, value)

    async def rows(self, read_model: ReadModel[Any]) -> dict[str, int]:
        assert isinstance(read_model, PostgresReadModel)
        if await read_model.pool.fetchval("SELECT to_regclass('t')") is None:
            return {}
        return dict(await read_model.pool.fetch("SELECT * FROM t"))


async def test_tables_land_in_the_schema_and_bad_input() -> None:
    schema = new_schema()
    try:
        async with corral.connect_read_model(URL) as default:
            assert isinstance(default, PostgresReadModel)
            assert default.schema == "corral_read"
        async with await PostgresReadModel.open(URL, schema=schema) as read_model:
            async with read_model.transaction() as tx:
                await tx.execute("CREATE TABLE IF NOT EXISTS totals (n int)")
            where = await read_model.pool.fetchval("SELECT to_regclass($1)", f"{schema}.totals")
            assert where is not None
            assert schema in repr(read_model)
    finally:
        await drop_schemas([schema])
    with pytest.raises(ArgumentTypeError, match="dsn must be a str"):
        await PostgresReadModel.open(b"postgresql://")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="schema must be a lower-case identifier"):
        await PostgresReadModel.open(URL, schema="Bad-Name")
    with pytest.raises(InvalidArgumentError, match="max_size must be at least 1"):
        await PostgresReadModel.open(URL, max_size=0)
    with pytest.raises(BackendUnavailable):
        await PostgresReadModel.open("postgresql://127.0.0.1:1/nowhere")


class TestPostgresReadModelProcesses(ReadModelProcessContract):
    READ_MODEL = """
    from corral.backends.postgres import PostgresReadModel

    async def open_read_model(locator):
        return await PostgresReadModel.open(URL, schema=locator)

    async def create(tx):
        await tx.execute("CREATE TABLE IF NOT EXISTS logged (position bigint NOT NULL)")

    async def record(tx, position):
        await tx.execute("INSERT INTO logged VALUES ($1)", position)

    async def recorded(read_model):
        return [row[0] for row in await read_model.pool.fetch("SELECT position FROM logged")]
    """.replace("URL", repr(URL))

    @pytest.fixture
    def locator(self) -> Iterator[str]:
        name = new_schema()
        try:
            yield name
        finally:
            asyncio.run(drop_schemas([name]))
