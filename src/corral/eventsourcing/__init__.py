"""Event sourcing: the event store port, its records, serialization, and the domain layer.

Open a store with :func:`corral.connect`; the engines live in ``corral.backends``. This
package defines what every engine guarantees (:class:`EventStore`) and the records it
takes and returns, and on top of it the domain layer: aggregates (:class:`Decider`,
:class:`Aggregate`), repositories with snapshots, upcasting, and :class:`EventCodec`.
:class:`Subscription` and :class:`Checkpoints` follow the store live;
:class:`ProcessManager` and :class:`ProcessRunner` turn events into new events and
commands, each effect committed exactly once with the manager's checkpoint; a
:class:`Projector` keeps a :class:`Projection`'s :class:`ReadModel` up to date, each
event applied exactly once.
"""

from ._aggregate import Aggregate as Aggregate
from ._aggregate import Decider as Decider
from ._aggregate import when as when
from ._checkpoints import CHECKPOINT_KEY as CHECKPOINT_KEY
from ._checkpoints import Checkpoints as Checkpoints
from ._codec import EventCodec as EventCodec
from ._codec import Transformer as Transformer
from ._codec import ZlibCompression as ZlibCompression
from ._encryption import AesGcmEncryption as AesGcmEncryption
from ._ids import new_event_id as new_event_id
from ._process import ProcessContext as ProcessContext
from ._process import ProcessManager as ProcessManager
from ._process_runner import ProcessRunner as ProcessRunner
from ._process_runner import ProcessRunnerStatistics as ProcessRunnerStatistics
from ._projection import Projection as Projection
from ._projector import Progress as Progress
from ._projector import Projector as Projector
from ._projector import ProjectorStatistics as ProjectorStatistics
from ._read_model import ReadModel as ReadModel
from ._read_model import ReadModelStatistics as ReadModelStatistics
from ._reader import EventReader as EventReader
from ._repository import Decided as Decided
from ._repository import DeciderRepository as DeciderRepository
from ._repository import Loaded as Loaded
from ._repository import Repository as Repository
from ._serializer import JsonSerializer as JsonSerializer
from ._snapshots import SNAPSHOT_KEY as SNAPSHOT_KEY
from ._snapshots import Snapshots as Snapshots
from ._store import EventStore as EventStore
from ._subscription import Subscription as Subscription
from ._types import ANY as ANY
from ._types import NO_STREAM as NO_STREAM
from ._types import STREAM_EXISTS as STREAM_EXISTS
from ._types import AppendResult as AppendResult
from ._types import EventStoreStatistics as EventStoreStatistics
from ._types import ExpectedVersion as ExpectedVersion
from ._types import NewEvent as NewEvent
from ._types import RecordedEvent as RecordedEvent
from ._types import StreamInfo as StreamInfo
from ._types import StreamMetadata as StreamMetadata
from ._types import StreamState as StreamState
from ._upcasting import Upcaster as Upcaster
from ._upcasting import Upcasters as Upcasters

__all__ = (
    "ANY",
    "CHECKPOINT_KEY",
    "NO_STREAM",
    "SNAPSHOT_KEY",
    "STREAM_EXISTS",
    "AesGcmEncryption",
    "Aggregate",
    "AppendResult",
    "Checkpoints",
    "Decided",
    "Decider",
    "DeciderRepository",
    "EventCodec",
    "EventReader",
    "EventStore",
    "EventStoreStatistics",
    "ExpectedVersion",
    "JsonSerializer",
    "Loaded",
    "NewEvent",
    "ProcessContext",
    "ProcessManager",
    "ProcessRunner",
    "ProcessRunnerStatistics",
    "Progress",
    "Projection",
    "Projector",
    "ProjectorStatistics",
    "ReadModel",
    "ReadModelStatistics",
    "RecordedEvent",
    "Repository",
    "Snapshots",
    "StreamInfo",
    "StreamMetadata",
    "StreamState",
    "Subscription",
    "Transformer",
    "Upcaster",
    "Upcasters",
    "ZlibCompression",
    "new_event_id",
    "when",
)
