"""The SQLite backend: the embedded default (``sqlite:///app.db``), stdlib ``sqlite3`` only."""

from ._eventstore import SqliteEventStore as SqliteEventStore
from ._read_model import SqliteReadModel as SqliteReadModel
from ._read_model import SqliteTransaction as SqliteTransaction

__all__ = ("SqliteEventStore", "SqliteReadModel", "SqliteTransaction")
