"""Process managers on the memory and SQLite engines: the shared contract."""

from __future__ import annotations

import itertools

from corral.backends.memory import MemoryEventStore
from corral.backends.sqlite import SqliteEventStore
from corral.eventsourcing import EventStore
from corral.testing.contracts.processmanager import ProcessManagerContract

_names = itertools.count()


class TestMemoryProcessManagers(ProcessManagerContract):
    async def make_store(self) -> EventStore:
        return MemoryEventStore()


class TestSqliteProcessManagers(ProcessManagerContract):
    async def make_store(self) -> EventStore:
        return await SqliteEventStore.open(self.tmp_path / f"store-{next(_names)}.db")
