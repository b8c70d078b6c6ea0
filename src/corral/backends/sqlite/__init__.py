"""The SQLite backend: the embedded default (``sqlite:///app.db``), stdlib ``sqlite3`` only."""

from ._eventstore import SqliteEventStore as SqliteEventStore

__all__ = ("SqliteEventStore",)
