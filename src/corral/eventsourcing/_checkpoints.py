"""Checkpoints: how far a named subscriber got, kept durably in the store itself.

Each subscriber's checkpoint is the metadata of its own stream, ``$checkpoint-<name>``,
under one key. Stream metadata is not an event: saving a checkpoint does not enter the
global log (a subscription to all would otherwise see its own checkpoints) and does not
create the stream; it is as durable as any write of the engine.
"""

from __future__ import annotations

from ..errors import ArgumentTypeError
from ._rules import version_arg
from ._store import EventStore
from ._tracking import CHECKPOINT_KEY, Tracking, checkpoint_in, checkpoint_stream

__all__ = ("CHECKPOINT_KEY", "Checkpoints")


class Checkpoints:
    """The last position each named subscriber has handled, stored in ``store``.

    A restarted subscriber resumes with
    ``store.subscribe(from_position=await checkpoints.load(name) + 1)``. Save after an
    event's effect is done: an event handled but not yet checkpointed is delivered
    again after a crash (at-least-once). For exactly-once effects, keep the checkpoint
    in the same transaction as the effect, as :class:`ProcessRunner` does.

    Cancellation: a cancelled :meth:`save` may or may not be stored; either way the
    stored position is one that was saved.

    Thread-safety: as the store's (one event loop). Concurrent saves under one name:
    the last write wins.
    """

    __slots__ = ("_store",)

    def __init__(self, store: EventStore) -> None:
        if not isinstance(store, EventStore):
            raise ArgumentTypeError(
                f"store must be an EventStore, not {type(store).__name__} ({store!r})"
            )
        self._store = store

    def __repr__(self) -> str:
        return f"<Checkpoints in {self._store!r}>"

    async def load(self, name: str) -> int:
        """The last position saved for ``name``, 0 if none was.

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad ``name``.
            SerializationError: the stored checkpoint is not a position.
            ClosedResourceError, BackendUnavailable: as the store's reads.
        """
        stream = checkpoint_stream(name)
        self._store._check_open()
        _, _, _, custom = await self._store._get_stream(stream)
        return checkpoint_in(stream, custom)

    async def save(self, name: str, position: int) -> None:
        """Store ``position`` as ``name``'s checkpoint (the last position it handled).

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad ``name`` or ``position``.
            ClosedResourceError, BackendUnavailable: as the store's writes.
        """
        stream = checkpoint_stream(name)
        position = version_arg(position, "position")
        self._store._check_open()
        await self._store._set_stream(stream, custom=Tracking(name, 0, position).metadata)
