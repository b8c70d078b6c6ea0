"""The PostgreSQL backend (``postgresql://...``), on asyncpg (the ``corral[postgres]`` extra)."""

from ._eventstore import PostgresEventStore as PostgresEventStore
from ._read_model import PostgresReadModel as PostgresReadModel

__all__ = ("PostgresEventStore", "PostgresReadModel")
