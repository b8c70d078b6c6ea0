"""The memory engine passes the event-store contract."""

from __future__ import annotations

from corral.backends.memory import MemoryEventStore
from corral.eventsourcing import EventStore
from corral.testing.contracts.eventstore import EventStoreContract


class TestMemoryEventStore(EventStoreContract):
    async def make_store(self) -> EventStore:
        return MemoryEventStore()
