"""Contract suites: the tests every backend of a port must pass, shipped for third parties.

Each module holds one abstract test class per port; a backend's test module subclasses it
and says how to make the backend under test, e.g.::

    from corral.testing.contracts.eventstore import EventStoreContract

    class TestMyEventStore(EventStoreContract):
        async def make_store(self) -> EventStore:
            return await MyEventStore.open(...)

The modules import pytest and hypothesis; import them from test code only.
"""
