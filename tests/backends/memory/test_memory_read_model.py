"""The memory read model passes the read-model contract; its transactions' own API."""

from __future__ import annotations

from typing import Any

import pytest

from corral.backends.memory import MemoryReadModel, MemoryTransaction
from corral.errors import ArgumentTypeError, ClosedResourceError, UsageError
from corral.eventsourcing import ReadModel
from corral.testing.contracts.readmodel import ReadModelContract


class TestMemoryReadModel(ReadModelContract):
    durable = False

    async def make_read_model(self) -> ReadModel[Any]:
        return MemoryReadModel()

    async def create_table(self, tx: MemoryTransaction) -> None:
        pass

    async def drop_rows(self, tx: MemoryTransaction) -> None:
        tx.clear("t")

    async def insert(self, tx: MemoryTransaction, key: str, value: int) -> None:
        if tx.get("t", key) is not None:
            raise KeyError(f"{key} inserted twice")
        tx.put("t", key, value)

    async def rows(self, read_model: ReadModel[Any]) -> dict[str, int]:
        assert isinstance(read_model, MemoryReadModel)
        return {str(key): value for key, value in read_model.rows("t").items()}


async def test_writes_are_seen_by_their_transaction_only_until_commit() -> None:
    read_model = MemoryReadModel()
    rows = read_model.rows("t")
    async with read_model.transaction() as tx:
        tx.put("t", "a", 1)
        tx.put("t", "b", 2)
        tx.delete("t", "b")
        assert (tx.get("t", "a"), tx.get("t", "b", "none")) == (1, "none")
        assert tx.rows("t") == {"a": 1}
        assert read_model.get("t", "a") is None
        assert dict(rows) == {}
    assert dict(rows) == {"a": 1}
    async with read_model.transaction() as tx:
        tx.put("u", 1, "x")
        tx.clear()
        assert tx.rows("t") == {}
        assert tx.get("u", 1) is None
        tx.put("t", "c", 3)
    assert dict(rows) == {"c": 3}  # the view follows a cleared table
    assert read_model.get("u", 1) is None
    assert repr(tx) == "<MemoryTransaction ended, 1 writes>"
    with pytest.raises(UsageError, match="has ended"):
        tx.put("t", "d", 4)
    await read_model.close()
    with pytest.raises(ClosedResourceError):
        read_model.get("t", "a")


async def test_bad_tables_and_keys() -> None:
    read_model = MemoryReadModel()
    async with read_model.transaction() as tx:
        with pytest.raises(ArgumentTypeError, match="table must be a str"):
            tx.put(1, "a", 1)  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="key must be hashable"):
            tx.put("t", [1], 1)  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="key must be hashable"):
            tx.get("t", {})  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="table must be a str"):
            tx.clear(3)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="table must be a str"):
        read_model.rows(None)  # type: ignore[arg-type]
    await read_model.close()
