"""Opening a corral SQLite database: pragmas, the versioned schema, error translation."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import Final

from ...errors import BackendUnavailable

__all__ = ("SCHEMA_VERSION", "map_exceptions", "open_reader", "open_writer")

#: The schema this version of corral writes, kept in ``PRAGMA user_version``.
SCHEMA_VERSION: Final = 1

#: Seconds a connection waits for another process's lock before giving up.
BUSY_TIMEOUT: Final = 30.0

_SCHEMA: Final = """
CREATE TABLE streams (
    stream TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    truncate_before INTEGER NOT NULL DEFAULT 0,
    metadata BLOB NOT NULL DEFAULT x''
) WITHOUT ROWID;
CREATE TABLE events (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    id BLOB NOT NULL,
    type TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data BLOB NOT NULL,
    metadata BLOB NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE UNIQUE INDEX events_by_stream ON events (stream, version);
CREATE UNIQUE INDEX events_by_id ON events (id);
"""


@contextlib.contextmanager
def map_exceptions(path: str) -> Iterator[None]:
    """Translate ``sqlite3`` errors into ``BackendUnavailable`` (the cause attached)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"SQLite database {path!r}: {exc}") from exc


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; the writer issues BEGIN itself.
    return sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )


def open_writer(path: str, *, create: bool = True) -> sqlite3.Connection:
    """Open the writing connection: WAL, ``synchronous=FULL``, the schema in place.

    Creates the database file and its schema if missing (inside a write transaction,
    so two processes opening a new file at once do not both create it), unless
    ``create`` is false: then a missing file, or one without corral's schema, is an
    error and the file is left as it is.

    Raises:
        BackendUnavailable: the file cannot be opened, is not a database, holds a
            schema newer than this version of corral knows, or (``create`` false) is
            missing or holds no corral event store.
    """
    if not create and not os.path.isfile(path):
        what = "is not a file" if os.path.exists(path) else "does not exist"
        raise BackendUnavailable(f"SQLite database {path!r} {what}")
    with map_exceptions(path):
        connection = _connect(path)
        try:
            problem = _prepare(connection, create)
        except BaseException:
            connection.close()
            raise
    if problem:
        connection.close()
        raise BackendUnavailable(f"SQLite database {path!r}: {problem}")
    return connection


def _prepare(connection: sqlite3.Connection, create: bool) -> str:
    """Set the pragmas and create the schema; what makes the file unusable, if anything."""
    if not create and connection.execute("PRAGMA user_version").fetchone()[0] == 0:
        return "not a corral event store (no corral schema in it)"
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        return f"cannot use WAL (journal mode {mode!r})"
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("BEGIN IMMEDIATE")
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        # One statement at a time: executescript() would commit the transaction.
        for statement in _SCHEMA.split(";")[:-1]:
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.execute("COMMIT")
    if version not in (0, SCHEMA_VERSION):
        return f"schema version {version}; this version of corral knows {SCHEMA_VERSION}"
    return ""


def open_reader(path: str) -> sqlite3.Connection:
    """Open a reading connection (WAL lets it read while the writer writes).

    Raises:
        BackendUnavailable: the file cannot be opened.
    """
    with map_exceptions(path):
        connection = _connect(path)
        try:
            connection.execute("PRAGMA query_only=1")
        except BaseException:
            connection.close()
            raise
    return connection
