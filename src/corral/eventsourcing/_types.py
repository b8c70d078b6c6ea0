"""The records an event store takes and gives back, and the expected-version sentinels."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

import msgspec

from ._ids import new_event_id

__all__ = (
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "EventStoreStatistics",
    "ExpectedVersion",
    "NewEvent",
    "RecordedEvent",
    "StreamInfo",
    "StreamMetadata",
    "StreamState",
)

#: The content type of events whose data is JSON (what :class:`JsonSerializer` writes).
JSON: Final = "application/json"


class StreamState(enum.Enum):
    """What an append expects of its stream when it does not expect an exact version.

    Pass the members as ``expected_version``: :data:`ANY`, :data:`NO_STREAM`,
    :data:`STREAM_EXISTS`.
    """

    ANY = "any"
    """No check: append whatever the stream holds."""
    NO_STREAM = "no stream"
    """The stream must not exist: no events yet, or soft-deleted."""
    STREAM_EXISTS = "stream exists"
    """The stream must exist: at least one event, and not soft-deleted."""

    def __repr__(self) -> str:
        return self.name


ANY: Final = StreamState.ANY
NO_STREAM: Final = StreamState.NO_STREAM
STREAM_EXISTS: Final = StreamState.STREAM_EXISTS

#: What ``expected_version`` accepts: the stream's exact version (0 for a stream without
#: events) or a :class:`StreamState`.
ExpectedVersion: TypeAlias = int | StreamState


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type, its data as bytes, and an id chosen by the client.

    The store keeps ``data`` and ``metadata`` as opaque bytes together with
    ``content_type``; :class:`JsonSerializer` builds new events from objects and turns
    recorded ones back into objects.

    The ``id`` makes appends idempotent: an append retried with the same ids (after a
    timeout, a lost connection, a cancellation) returns the original result instead of
    writing the events twice. Choose it when the event is created, not at each retry.

    Attributes:
        type: the event's type name, e.g. ``"OrderPlaced"`` (not empty).
        data: the event's payload.
        metadata: data about the event (correlation id, causation id, user, ...).
        content_type: how ``data`` is encoded (``"application/json"`` by default).
        id: the event's unique id; a fresh time-ordered one (:func:`new_event_id`, a
            version-7 UUID) when omitted.
    """

    type: str
    data: bytes
    metadata: bytes = b""
    content_type: str = JSON
    id: uuid.UUID = dataclasses.field(default_factory=new_event_id)


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as stored: a :class:`NewEvent` plus where and when it was recorded.

    Immutable, like the other records. (A ``msgspec.Struct`` rather than a dataclass:
    reads create one per event, and a struct is several times cheaper to create. Its
    fields are strings, numbers, bytes and a UUID, so it can never be part of a
    reference cycle: it is not tracked by the garbage collector, which a catch-up over
    millions of events would otherwise keep busy.)

    Attributes:
        stream: the stream the event belongs to.
        version: its place in the stream, counting from 1 (the stream's first event has
            version 1, so a stream's version is the version of its last event).
        position: its place in the global order of all events; positions grow with
            every commit but may skip numbers.
        id: the id the event was appended with.
        type: the event's type name.
        data: the payload bytes.
        metadata: the metadata bytes.
        content_type: how ``data`` is encoded.
        recorded_at: when the append committed, in seconds since the Unix epoch (wall
            clock time, not the loop's clock).
    """

    stream: str
    version: int
    position: int
    id: uuid.UUID
    type: str
    data: bytes
    metadata: bytes
    content_type: str
    recorded_at: float

    def same_content(self, event: NewEvent) -> bool:
        """Whether ``event`` is this event as it was appended (same id and content)."""
        return (
            self.id == event.id
            and self.type == event.type
            and self.data == event.data
            and self.metadata == event.metadata
            and self.content_type == event.content_type
        )


@dataclasses.dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did to one stream.

    Attributes:
        stream: the stream appended to.
        version: the stream's version after the append (the version of its last event).
        positions: the global position of each appended event, in order (empty for an
            append of no events, which only checks the expected version).
    """

    stream: str
    version: int
    positions: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class StreamMetadata:
    """A stream's state and the metadata set on it.

    Attributes:
        stream: the stream's name.
        version: the version of its last event (0 for none). Soft deletion keeps it, so
            versions never restart.
        exists: it has events and is not soft-deleted (what :data:`STREAM_EXISTS` and
            :data:`NO_STREAM` check).
        deleted: it was soft-deleted (and not appended to since).
        truncate_before: reads of the stream start at this version at the earliest.
        custom: the metadata set with ``set_stream_metadata`` (a fresh ``dict`` each time).
    """

    stream: str
    version: int
    exists: bool
    deleted: bool
    truncate_before: int
    custom: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream as :meth:`EventStore.list_streams` lists it: what is cheap to know.

    Attributes:
        stream: the stream's name.
        version: the version of its last event (at least 1: streams without events are
            not listed).
        deleted: it was soft-deleted (and not appended to since).
        truncate_before: reads of the stream start at this version at the earliest.
        last_position: the global position of its last event.
        last_recorded_at: when its last event was recorded, in seconds since the Unix
            epoch.
    """

    stream: str
    version: int
    deleted: bool
    truncate_before: int
    last_position: int
    last_recorded_at: float

    @property
    def events(self) -> int:
        """How many events a read of the stream returns (0 once it is deleted).

        Every event stays in the global log; truncation and deletion only hide the
        older ones from :meth:`EventStore.read_stream`.
        """
        return max(0, self.version - max(self.truncate_before, 1) + 1)


@dataclasses.dataclass(frozen=True, slots=True)
class EventStoreStatistics:
    """A snapshot of an event store's activity since it was opened.

    Attributes:
        engine: the engine's name (``"memory"``, ``"sqlite"``, ...).
        closed: whether the store has been closed.
        appends: appends that wrote events (each stream of an atomic multi-stream
            append counts once).
        events_appended: events written.
        idempotent_appends: appends recognised as retries and answered with the
            original result, writing nothing.
        conflicts: appends refused with ``ConcurrencyError``.
        transactions: commits made (group commit makes it smaller than ``appends``).
        pending_appends: appends queued for the writer right now.
        events_read: events returned by reads.
        last_position: the highest global position written through this store.
    """

    engine: str
    closed: bool
    appends: int
    events_appended: int
    idempotent_appends: int
    conflicts: int
    transactions: int
    pending_appends: int
    events_read: int
    last_position: int
