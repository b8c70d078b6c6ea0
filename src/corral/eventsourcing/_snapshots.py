"""Snapshots of aggregate state, kept in their stream's metadata.

Why the stream's metadata and not a snapshot stream: a snapshot is a cache of state
that the events already determine. Kept as events, snapshots would enter the global log,
be seen by every subscription and projection of ``read_all``, and grow without bound.
The metadata holds one value per stream, is read in the same round trip as the
stream's version, and disappears from view with the stream. The snapshot lives under
one reserved key, :data:`SNAPSHOT_KEY`; other keys are kept when it is written.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from ..errors import ArgumentTypeError, SerializationError
from ..optimize._limiter import size_arg
from ._store import EventStore

__all__ = ("SNAPSHOT_KEY", "Snapshots")

#: The stream metadata key a snapshot is stored under.
SNAPSHOT_KEY: Final = "corral.snapshot"


class _Stored(msgspec.Struct, frozen=True):
    version: int
    schema: int
    state: Any


class Snapshots:
    """When to take snapshots, of which type, and reading and writing them.

    Args:
        every: take a snapshot each time a save crosses a multiple of ``every`` events.
        state_type: the class snapshots are decoded into (anything msgspec converts).
        schema: the snapshot schema version; bump it when ``state_type`` changes
            shape, and older snapshots are ignored (the stream is replayed instead).

    Raises:
        ArgumentTypeError, InvalidArgumentError: ``every`` or ``schema`` is not a
            positive ``int``, or ``state_type`` is not a class.

    Thread-safety: immutable; safe to share.
    """

    __slots__ = ("every", "schema", "state_type")

    def __init__(self, every: int, state_type: type[Any], *, schema: int = 1) -> None:
        self.every = size_arg(every, "snapshot_every")
        if not isinstance(state_type, type):
            raise ArgumentTypeError(
                f"snapshot_type must be a class, not {state_type.__class__.__name__} "
                f"({state_type!r})"
            )
        self.state_type = state_type
        self.schema = size_arg(schema, "snapshot_schema")

    def __repr__(self) -> str:
        return f"<Snapshots every {self.every} events of {self.state_type.__name__}>"

    def due(self, before: int, after: int) -> bool:
        """Whether a save from version ``before`` to ``after`` crosses a multiple of ``every``."""
        return after // self.every > before // self.every

    async def load(self, store: EventStore, stream: str) -> tuple[int, Any] | None:
        """``(version, state)`` of the stream's usable snapshot, or ``None``.

        A snapshot of another schema, or of a stream that was deleted since, is not
        usable.

        Raises:
            SerializationError: the snapshot does not fit ``state_type`` although its
                schema matches (bump ``schema`` when the state class changes).
            ClosedResourceError, BackendUnavailable: as the store's reads.
        """
        metadata = await store.get_stream_metadata(stream)
        raw = metadata.custom.get(SNAPSHOT_KEY)
        if raw is None or not metadata.exists:
            return None
        try:
            stored = msgspec.convert(raw, _Stored)
        except msgspec.ValidationError as exc:
            raise SerializationError(stream, None, f"malformed snapshot: {exc}") from exc
        if stored.schema != self.schema or stored.version > metadata.version:
            return None
        try:
            return stored.version, msgspec.convert(stored.state, self.state_type)
        except msgspec.ValidationError as exc:
            raise SerializationError(
                stream,
                None,
                f"the snapshot at version {stored.version} is not a "
                f"{self.state_type.__name__} (bump the snapshot schema?): {exc}",
            ) from exc

    async def save(self, store: EventStore, stream: str, version: int, state: Any) -> None:
        """Store ``state`` as the snapshot at ``version``, unless a newer one is stored.

        Cancellation: cancelled, the snapshot may or may not be written; either is
        consistent (a snapshot is only a shortcut).

        Raises:
            ArgumentTypeError: ``state`` cannot be encoded by msgspec.
            ClosedResourceError, BackendUnavailable: as the store's writes.
        """
        try:
            encoded = msgspec.to_builtins(state)
        except TypeError as exc:
            raise ArgumentTypeError(
                f"the snapshot of {stream!r} cannot be encoded ({type(state).__name__}): {exc}"
            ) from None
        custom = dict((await store.get_stream_metadata(stream)).custom)
        previous = custom.get(SNAPSHOT_KEY)
        if isinstance(previous, dict) and previous.get("schema") == self.schema:
            previous_version = previous.get("version")
            if isinstance(previous_version, int) and previous_version >= version:
                return
        custom[SNAPSHOT_KEY] = msgspec.to_builtins(_Stored(version, self.schema, encoded))
        await store.set_stream_metadata(stream, custom)
