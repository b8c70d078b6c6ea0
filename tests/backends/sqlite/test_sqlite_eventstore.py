"""The SQLite engine passes the event-store contract."""

from __future__ import annotations

import itertools

from corral.backends.sqlite import SqliteEventStore
from corral.eventsourcing import EventStore
from corral.testing.contracts.eventstore import EventStoreContract

_names = itertools.count()


class TestSqliteEventStore(EventStoreContract):
    async def make_store(self) -> EventStore:
        return await SqliteEventStore.open(self.tmp_path / f"store-{next(_names)}.db")
