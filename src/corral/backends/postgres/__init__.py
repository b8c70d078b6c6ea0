"""The PostgreSQL backend (``postgresql://...``), on asyncpg (the ``corral[postgres]`` extra)."""

from ._eventstore import PostgresEventStore as PostgresEventStore

__all__ = ("PostgresEventStore",)
