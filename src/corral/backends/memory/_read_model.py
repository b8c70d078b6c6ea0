"""MemoryReadModel: tables of key -> value in a process's memory, with real transactions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable, Mapping
from types import MappingProxyType
from typing import Any, Final

from ...errors import ArgumentTypeError, UsageError
from ...eventsourcing._read_model import ReadModel

__all__ = ("MemoryReadModel", "MemoryTransaction")

_DELETED: Final = object()
_EMPTY: Final[Mapping[Hashable, Any]] = MappingProxyType({})


def _table_arg(table: object) -> str:
    if not isinstance(table, str):
        raise ArgumentTypeError(f"table must be a str, not {type(table).__name__} ({table!r})")
    return table


class MemoryTransaction:
    """What a :class:`MemoryReadModel` transaction gives a projection: tables to write.

    A table is named by a ``str`` and maps hashable keys to values. Writes are kept
    apart until the transaction commits, then applied at once: nobody else sees them
    before, and a rolled-back transaction leaves nothing. Reads through the
    transaction see its own writes.

    Store values you do not change in place afterwards (numbers, strings, tuples,
    frozen records), or store a new object for every change: a value changed in place
    would change the committed state without a commit.

    Thread-safety: use it from the task that runs the transaction, inside its block.
    """

    __slots__ = ("_checkpoints", "_cleared", "_done", "_tables", "_writes")

    def __init__(self, tables: dict[str, dict[Hashable, Any]]) -> None:
        self._tables = tables
        self._writes: dict[str, dict[Hashable, Any]] = {}
        self._cleared: set[str] = set()
        self._checkpoints: dict[str, int] = {}
        self._done = False

    def __repr__(self) -> str:
        state = "ended" if self._done else "open"
        writes = sum(len(writes) for writes in self._writes.values())
        return f"<MemoryTransaction {state}, {writes} writes>"

    def _check(self) -> None:
        if self._done:
            raise UsageError("this MemoryTransaction has ended; use it inside its block only")

    def get(self, table: str, key: Hashable, default: Any = None) -> Any:
        """The value of ``key`` in ``table`` as this transaction sees it, else ``default``.

        Raises:
            ArgumentTypeError: ``table`` is not a ``str`` or ``key`` is not hashable.
            UsageError: the transaction has ended.
        """
        self._check()
        writes = self._writes.get(_table_arg(table))
        if writes is not None and _key_arg(key) in writes:
            value = writes[key]
            return default if value is _DELETED else value
        if table in self._cleared:
            return default
        return self._tables.get(table, _EMPTY).get(_key_arg(key), default)

    def put(self, table: str, key: Hashable, value: Any) -> None:
        """Set ``key`` in ``table`` to ``value`` (the table is created if needed).

        Raises:
            ArgumentTypeError: ``table`` is not a ``str`` or ``key`` is not hashable.
            UsageError: the transaction has ended.
        """
        self._table_writes(table)[_key_arg(key)] = value

    def delete(self, table: str, key: Hashable) -> None:
        """Remove ``key`` from ``table`` (nothing happens if it is not there).

        Raises:
            ArgumentTypeError: ``table`` is not a ``str`` or ``key`` is not hashable.
            UsageError: the transaction has ended.
        """
        self._table_writes(table)[_key_arg(key)] = _DELETED

    def _table_writes(self, table: str) -> dict[Hashable, Any]:
        """This transaction's writes to ``table`` (checked), created on first use."""
        self._check()
        writes = self._writes.get(table)
        if writes is None:
            writes = self._writes[_table_arg(table)] = {}
        return writes

    def rows(self, table: str) -> dict[Hashable, Any]:
        """A copy of ``table`` as this transaction sees it (empty if there is none).

        Raises:
            ArgumentTypeError: ``table`` is not a ``str``.
            UsageError: the transaction has ended.
        """
        self._check()
        table = _table_arg(table)
        rows = {} if table in self._cleared else dict(self._tables.get(table, {}))
        for key, value in self._writes.get(table, {}).items():
            if value is _DELETED:
                rows.pop(key, None)
            else:
                rows[key] = value
        return rows

    def clear(self, table: str | None = None) -> None:
        """Empty ``table``, or every table when ``table`` is ``None`` (for ``reset``).

        Raises:
            ArgumentTypeError: ``table`` is neither a ``str`` nor ``None``.
            UsageError: the transaction has ended.
        """
        self._check()
        names = [*self._tables, *self._writes] if table is None else [_table_arg(table)]
        for name in names:
            self._cleared.add(name)
            self._writes.pop(name, None)

    def _commit(self) -> None:
        tables = self._tables
        for name in self._cleared:
            if name in tables:
                tables[name].clear()  # in place: views from MemoryReadModel.rows follow
        for name, writes in self._writes.items():
            rows = tables.get(name)
            if rows is None:
                rows = tables[name] = {}
            for key, value in writes.items():
                if value is _DELETED:
                    rows.pop(key, None)
                else:
                    rows[key] = value
        self._done = True


def _key_arg(key: object) -> Hashable:
    if not isinstance(key, Hashable):
        raise ArgumentTypeError(f"key must be hashable, not {type(key).__name__} ({key!r})")
    return key


class MemoryReadModel(ReadModel[MemoryTransaction]):
    """A read model in memory (``memory://``): for tests, examples and prototypes.

    Projections write through a :class:`MemoryTransaction` (tables of key -> value);
    read the committed state with :meth:`get` and :meth:`rows`. A transaction's writes
    are applied when it commits, all at once, and dropped when it rolls back, so a
    failing batch leaves the state and the checkpoint exactly as they were. Everything
    is gone when the process exits or the read model is closed.

    Transactions run one at a time (a second one waits for the first to end);
    nothing here yields to the event loop except that wait.

    Thread-safety: not thread-safe; use it from one event loop.
    """

    engine = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._tables: dict[str, dict[Hashable, Any]] = {}
        self._checkpoints: dict[str, int] = {}
        self._lock = asyncio.Lock()

    def _describe(self) -> str:
        return f"{len(self._tables)} tables,"

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[MemoryTransaction]:
        async with self._lock:
            tx = MemoryTransaction(self._tables)
            try:
                yield tx
            except BaseException:
                tx._done = True
                raise
            tx._commit()
            self._checkpoints.update(tx._checkpoints)

    async def _load_checkpoint(self, tx: MemoryTransaction, name: str) -> int:
        position = tx._checkpoints.get(name)
        return self._checkpoints.get(name, 0) if position is None else position

    async def _store_checkpoint(
        self, tx: MemoryTransaction, name: str, position: int, expected: int | None
    ) -> bool:
        if expected is not None and await self._load_checkpoint(tx, name) != expected:
            return False
        tx._checkpoints[name] = position
        return True

    async def _close(self) -> None:
        self._tables.clear()
        self._checkpoints.clear()

    def get(self, table: str, key: Hashable, default: Any = None) -> Any:
        """The committed value of ``key`` in ``table``, else ``default``.

        Raises:
            ArgumentTypeError: ``table`` is not a ``str`` or ``key`` is not hashable.
            ClosedResourceError: the read model is closed.
        """
        self._check_open()
        return self._tables.get(_table_arg(table), _EMPTY).get(_key_arg(key), default)

    def rows(self, table: str) -> Mapping[Hashable, Any]:
        """A read-only view of the committed rows of ``table`` (empty if there is none).

        The view follows later commits; copy it (``dict(...)``) to keep a snapshot.

        Raises:
            ArgumentTypeError: ``table`` is not a ``str``.
            ClosedResourceError: the read model is closed.
        """
        self._check_open()
        return MappingProxyType(self._tables.setdefault(_table_arg(table), {}))
