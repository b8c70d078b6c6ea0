"""Where a named checkpoint lives, and a compare-and-set of it committed with an append.

A checkpoint is the metadata of the stream ``$checkpoint-<name>`` under
:data:`CHECKPOINT_KEY`. :class:`~corral.eventsourcing.Checkpoints` reads and writes it;
an engine also advances it inside an append (:class:`Tracking`), so a process manager's
new events and the advance of its checkpoint commit in one transaction, or neither does.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import msgspec

from ..errors import ArgumentTypeError, ConcurrencyError, InvalidArgumentError, SerializationError

__all__ = (
    "CHECKPOINT_KEY",
    "Tracking",
    "checkpoint_in",
    "checkpoint_name_arg",
    "checkpoint_stream",
)

#: The stream metadata key a checkpoint is stored under.
CHECKPOINT_KEY: Final = "corral.checkpoint"


def checkpoint_name_arg(name: object) -> str:
    """Check a checkpoint's name (a projection's or a process manager's).

    Raises:
        ArgumentTypeError: ``name`` is not a ``str``.
        InvalidArgumentError: ``name`` is empty.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"name must be a str, not {type(name).__name__} ({name!r})")
    if not name:
        raise InvalidArgumentError("name must not be empty")
    return name


def checkpoint_stream(name: object) -> str:
    """The stream whose metadata holds the checkpoint ``name``: ``$checkpoint-<name>``.

    Raises:
        ArgumentTypeError: ``name`` is not a ``str``.
        InvalidArgumentError: ``name`` is empty.
    """
    return f"$checkpoint-{checkpoint_name_arg(name)}"


def checkpoint_in(stream: str, custom: bytes) -> int:
    """The checkpoint stored in a checkpoint stream's metadata bytes (0 if none).

    Raises:
        SerializationError: the metadata holds something that is not a position.
    """
    if not custom:
        return 0
    try:
        decoded = msgspec.json.decode(custom)
    except msgspec.DecodeError as exc:
        raise SerializationError(stream, None, f"malformed checkpoint metadata: {exc}") from None
    stored = decoded.get(CHECKPOINT_KEY, 0) if isinstance(decoded, dict) else None
    if not isinstance(stored, int) or isinstance(stored, bool) or stored < 0:
        raise SerializationError(stream, None, f"malformed checkpoint: {stored!r}")
    return stored


@dataclasses.dataclass(frozen=True, slots=True)
class Tracking:
    """A checkpoint advance an engine commits atomically with an append.

    The append (possibly of no events) commits only if the checkpoint ``name`` is
    ``expected`` when the transaction runs; it then becomes ``position``. Otherwise
    nothing is written and :class:`~corral.errors.ConcurrencyError` names the checkpoint
    stream, ``expected`` and the stored checkpoint (as ``actual``).
    """

    name: str
    expected: int
    position: int

    @property
    def stream(self) -> str:
        """The stream whose metadata holds the checkpoint."""
        return checkpoint_stream(self.name)

    @property
    def metadata(self) -> bytes:
        """The metadata bytes that store ``position`` (what ``Checkpoints.save`` writes)."""
        return msgspec.json.encode({CHECKPOINT_KEY: self.position})

    def check(self, custom: bytes) -> None:
        """Compare the stored checkpoint (from its metadata bytes) with ``expected``.

        Raises:
            ConcurrencyError: it differs (``actual`` is the stored checkpoint).
            SerializationError: the metadata does not hold a position.
        """
        stream = self.stream
        actual = checkpoint_in(stream, custom)
        if actual != self.expected:
            raise ConcurrencyError(stream, self.expected, actual)
