"""The in-memory backend: every port's semantics, nothing persisted (``memory://``)."""

from ._eventstore import MemoryEventStore as MemoryEventStore
from ._read_model import MemoryReadModel as MemoryReadModel
from ._read_model import MemoryTransaction as MemoryTransaction

__all__ = ("MemoryEventStore", "MemoryReadModel", "MemoryTransaction")
