"""PostgresReadModel: a read model in a PostgreSQL schema, on an asyncpg pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

import asyncpg

from ...errors import ArgumentTypeError
from ...eventsourcing._read_model import ReadModel, settle
from ...optimize._limiter import size_arg
from ._eventstore import _keep_session, _redacted
from ._schema import map_exceptions, schema_arg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

__all__ = ("CHECKPOINT_TABLE", "PostgresReadModel")

#: The table (in the read model's schema) holding the projections' checkpoints.
CHECKPOINT_TABLE: Final = "corral_checkpoints"


class PostgresReadModel(ReadModel["PoolConnectionProxy[asyncpg.Record]"]):
    """A read model in PostgreSQL (``postgresql://user@host/db``), on an asyncpg pool.

    Open it with ``await PostgresReadModel.open(dsn, schema="corral_read")`` or
    ``await corral.connect_read_model("postgresql://...")``. A projection gets an
    asyncpg connection inside a transaction; the checkpoints live in the table
    ``corral_checkpoints`` of ``schema``, created (with the schema) if missing. The
    pool's connections have ``search_path`` set to ``schema, public``, so a
    projection's unqualified tables are created in ``schema`` too.

    Transactions run at PostgreSQL's default isolation (read committed) and may run
    concurrently (one pool connection each). The checkpoint is written only if it
    still holds the value the projector read (a row lock orders two writers), so
    two projectors of one projection never both commit a batch.

    Cancellation: a cancelled transaction is rolled back; a commit that has begun runs
    to its end first.

    Errors: asyncpg and network errors surface as
    :class:`~corral.errors.BackendUnavailable` (the driver error is its ``__cause__``).

    Thread-safety: use it from the tasks of one event loop (the pool is bound to the
    loop that opened it).
    """

    engine = "postgres"

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], schema: str, where: str) -> None:
        super().__init__()
        self._pool = pool
        self._schema = schema
        self._where = where
        table = f"{schema}.{CHECKPOINT_TABLE}"
        self._sql_load = f"SELECT position FROM {table} WHERE name = $1"
        self._sql_store = (
            f"INSERT INTO {table} AS c (name, position) VALUES ($1, $2) ON CONFLICT (name) "
            "DO UPDATE SET position = excluded.position "
            "WHERE $3::bigint IS NULL OR c.position = $3::bigint RETURNING 1"
        )

    @classmethod
    async def open(
        cls, dsn: str, *, schema: str = "corral_read", max_size: int = 5
    ) -> PostgresReadModel:
        """Connect to the database ``dsn`` names and open the read model in ``schema``.

        Args:
            dsn: a libpq connection URL, ``postgresql://user:password@host:port/database``.
            schema: the PostgreSQL schema of the checkpoints (and the first entry of the
                connections' ``search_path``), a lower-case identifier; created if
                missing.
            max_size: most connections the pool opens (``>= 1``).

        Raises:
            ArgumentTypeError, InvalidArgumentError: a bad argument.
            BackendUnavailable: the database cannot be reached.
        """
        if not isinstance(dsn, str):
            raise ArgumentTypeError(f"dsn must be a str, not {type(dsn).__name__} ({dsn!r})")
        schema = schema_arg(schema)
        size = size_arg(max_size, "max_size")
        where = f"{_redacted(dsn)} schema {schema!r}"
        with map_exceptions(where):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=size,
                server_settings={
                    "application_name": f"corral read model {schema}",
                    "search_path": f"{schema}, public",
                },
                reset=_keep_session,
            )
        try:
            with map_exceptions(where):
                async with pool.acquire() as connection, connection.transaction():
                    await connection.execute(
                        "SELECT pg_advisory_xact_lock(hashtext($1))", f"corral read:{schema}"
                    )
                    await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                    await connection.execute(
                        f"CREATE TABLE IF NOT EXISTS {schema}.{CHECKPOINT_TABLE} "
                        "(name text PRIMARY KEY, position bigint NOT NULL)"
                    )
        except BaseException:
            pool.terminate()
            raise
        return cls(pool, schema, where)

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding the checkpoints."""
        return self._schema

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The asyncpg pool, for reading the projections' tables."""
        return self._pool

    def _describe(self) -> str:
        return self._where

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        with map_exceptions(self._where):
            connection = await self._pool.acquire()
        try:
            transaction = connection.transaction()
            with map_exceptions(self._where):
                await transaction.start()
            try:
                yield connection
            except BaseException:
                # The block's exception is the news; a rollback failing on a broken
                # connection (which the pool then discards) would only hide it.
                with contextlib.suppress(Exception):
                    await settle(transaction.rollback())
                raise
            with map_exceptions(self._where):
                await settle(transaction.commit())
        finally:
            with contextlib.suppress(Exception):  # a broken connection is discarded
                await settle(self._pool.release(connection))

    async def _lock_projection(self, tx: PoolConnectionProxy[asyncpg.Record], name: str) -> None:
        with map_exceptions(self._where):
            await tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"corral projection:{name}"
            )

    async def _load_checkpoint(self, tx: PoolConnectionProxy[asyncpg.Record], name: str) -> int:
        with map_exceptions(self._where):
            position = await tx.fetchval(self._sql_load, name)
        return 0 if position is None else int(position)

    async def _store_checkpoint(
        self,
        tx: PoolConnectionProxy[asyncpg.Record],
        name: str,
        position: int,
        expected: int | None,
    ) -> bool:
        with map_exceptions(self._where):
            stored = await tx.fetchval(self._sql_store, name, position, expected)
        return stored is not None

    async def _close(self) -> None:
        try:
            with map_exceptions(self._where):
                await self._pool.close()
        except BaseException:
            self._pool.terminate()
            raise
