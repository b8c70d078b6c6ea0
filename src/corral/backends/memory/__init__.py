"""The in-memory backend: every port's semantics, nothing persisted (``memory://``)."""

from ._eventstore import MemoryEventStore as MemoryEventStore

__all__ = ("MemoryEventStore",)
