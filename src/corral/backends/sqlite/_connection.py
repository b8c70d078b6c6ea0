"""Opening a corral SQLite database: pragmas, the versioned schema, error translation."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import Final

from ...errors import BackendUnavailable

__all__ = (
    "SCHEMA_VERSION",
    "map_exceptions",
    "open_reader",
    "open_writer",
    "prepare_wal",
    "wal_working_size",
)

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
    prepare_wal(connection)
    return ""


#: The write-ahead log's own header, and what each frame adds to its page.
_WAL_HEADER: Final = 32
_WAL_FRAME_HEADER: Final = 24
#: Frames beyond the auto-checkpoint point written ahead too: the transaction that
#: crosses it, and readers that hold a checkpoint back for a moment.
_WAL_SLACK_FRAMES: Final = 256
#: Zeros are written this many bytes at a time.
_CHUNK: Final = 1 << 20


def wal_working_size(connection: sqlite3.Connection) -> int:
    """How large the write-ahead log gets between checkpoints, in bytes.

    SQLite checkpoints once the log holds ``wal_autocheckpoint`` pages, then reuses the
    log from its start; a little more is allowed for the transaction that crosses that
    point.
    """
    page_size: int = connection.execute("PRAGMA page_size").fetchone()[0]
    frames: int = connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    return _WAL_HEADER + (page_size + _WAL_FRAME_HEADER) * (max(frames, 0) + _WAL_SLACK_FRAMES)


def prepare_wal(connection: sqlite3.Connection) -> None:
    """Write the write-ahead log out to its working size, so commits overwrite it.

    A commit with ``synchronous=FULL`` flushes the log with ``fdatasync``. Where the
    commit makes the file longer, the flush must also write the file system's record of
    the new size and blocks, which on a measured ext4 disk took 170 to 240 us a commit
    against 106 to 131 us for one that only overwrote written blocks. So the log is
    written out with zeros once, up to :func:`wal_working_size`: SQLite reads a log
    only as far as its frames are valid (zeros never are, and neither are the old
    frames it leaves behind when it reuses the log), so they change nothing it reads.

    Only bytes past the current end of the log are written, with the database's write
    lock held (``BEGIN IMMEDIATE``), so no other connection or process is writing the
    log meanwhile. Best effort: a log that cannot be opened or written (a read-only
    directory, a full disk) is left as it is. SQLite deletes the log when the last
    connection closes, so each open of a store does this again (about 4 ms for 4 MB on
    the same disk).
    """
    wal = _wal_path(connection)
    if wal is None:
        return
    target = wal_working_size(connection)
    connection.execute("BEGIN IMMEDIATE")
    try:
        with contextlib.suppress(OSError):
            _extend_with_zeros(wal, target)
    finally:
        connection.execute("ROLLBACK")


def _wal_path(connection: sqlite3.Connection) -> str | None:
    """The write-ahead log of the connection's main database file, if it has one."""
    for _, name, filename in connection.execute("PRAGMA database_list"):
        if name == "main" and filename:
            return f"{filename}-wal"
    return None


def _extend_with_zeros(path: str, target: int) -> None:
    with open(path, "r+b") as log:
        size = log.seek(0, os.SEEK_END)
        if size >= target:
            return
        zeros = bytes(min(_CHUNK, target - size))
        while size < target:
            size += log.write(zeros[: target - size])
        log.flush()
        flush = getattr(os, "fdatasync", os.fsync)  # macOS and Windows have no fdatasync
        flush(log.fileno())


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
