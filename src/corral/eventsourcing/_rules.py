"""The rules every event-store engine applies the same way: arguments and append checks.

Engines call these so that an argument is refused with the same error everywhere, and
an expected-version conflict or a retried append is decided by one piece of code. An
engine's own job is only to look things up and write them atomically.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import msgspec

from ..errors import ArgumentTypeError, ConcurrencyError, DuplicateError, InvalidArgumentError
from ..optimize._limiter import size_arg
from ._types import AppendResult, ExpectedVersion, NewEvent, RecordedEvent, StreamState

__all__ = (
    "StreamAppend",
    "appends_arg",
    "check_expected",
    "count_arg",
    "custom_metadata_arg",
    "decode_custom_metadata",
    "expected_arg",
    "match_retry",
    "single_append_arg",
    "stream_arg",
    "version_arg",
)


class StreamAppend(NamedTuple):
    """One stream's part of an append, validated: events and the expected version.

    (A named tuple: every append builds one, and a tuple is built several times faster
    than a frozen dataclass.)
    """

    stream: str
    events: tuple[NewEvent, ...]
    expected: ExpectedVersion


def stream_arg(value: object, name: str = "stream") -> str:
    """Return ``value`` as a stream name, or raise an error naming ``name``.

    Raises:
        ArgumentTypeError: ``value`` is not a ``str``.
        InvalidArgumentError: ``value`` is empty.
    """
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a str, not {type(value).__name__} ({value!r})")
    if not value:
        raise InvalidArgumentError(f"{name} must not be empty")
    return value


def version_arg(value: object, name: str) -> int:
    """Return ``value`` as a stream version or position (an ``int >= 0``).

    Raises:
        ArgumentTypeError: ``value`` is not an ``int``.
        InvalidArgumentError: ``value`` is negative.
    """
    return size_arg(value, name, minimum=0)


def count_arg(value: object, name: str) -> int | None:
    """Return ``value`` as an optional count (``None`` or an ``int >= 1``).

    Raises:
        ArgumentTypeError: ``value`` is neither ``None`` nor an ``int``.
        InvalidArgumentError: ``value`` is smaller than 1.
    """
    return None if value is None else size_arg(value, name)


def expected_arg(value: object, name: str = "expected_version") -> ExpectedVersion:
    """Return ``value`` as an expected version: a ``StreamState`` or an ``int >= 0``.

    Raises:
        ArgumentTypeError: ``value`` is neither.
        InvalidArgumentError: ``value`` is a negative ``int``.
    """
    if isinstance(value, StreamState):
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(
            f"{name} must be an int or ANY / NO_STREAM / STREAM_EXISTS, "
            f"not {type(value).__name__} ({value!r})"
        )
    return version_arg(value, name)


def _event_arg(value: Any, name: str, index: int) -> NewEvent:
    # Exact types first, cheaply; anything else gets the thorough check, which raises
    # an error naming ``name[index]`` or passes (subclasses of ``str`` or ``uuid.UUID``).
    if (
        type(value) is not NewEvent
        or type(value.type) is not str
        or not value.type
        or type(value.data) is not bytes
        or type(value.metadata) is not bytes
        or type(value.content_type) is not str
        or not value.content_type
        or type(value.id) is not uuid.UUID
    ):
        _check_event(value, f"{name}[{index}]")
    return value  # type: ignore[no-any-return]


def _check_event(value: object, name: str) -> None:
    if not isinstance(value, NewEvent):
        raise ArgumentTypeError(
            f"{name} must be a NewEvent, not {type(value).__name__} ({value!r}); "
            "JsonSerializer.new_event() builds one from an object"
        )
    if not isinstance(value.type, str) or not value.type:
        raise InvalidArgumentError(f"{name}.type must be a non-empty str, got {value.type!r}")
    for field in ("data", "metadata"):
        if type(getattr(value, field)) is not bytes:
            got = getattr(value, field)
            raise ArgumentTypeError(
                f"{name}.{field} must be bytes, not {type(got).__name__} ({got!r:.60})"
            )
    if not isinstance(value.content_type, str) or not value.content_type:
        raise InvalidArgumentError(
            f"{name}.content_type must be a non-empty str, got {value.content_type!r}"
        )
    if not isinstance(value.id, uuid.UUID):
        raise ArgumentTypeError(
            f"{name}.id must be a uuid.UUID, not {type(value.id).__name__} ({value.id!r})"
        )


def _events_arg(value: object, name: str) -> tuple[NewEvent, ...]:
    if type(value) is not list and type(value) is not tuple:  # the common cases, checked first
        _check_events_sequence(value, name)
    events = cast("Sequence[Any]", value)
    return tuple([_event_arg(event, name, index) for index, event in enumerate(events)])


def _check_events_sequence(value: object, name: str) -> None:
    if isinstance(value, NewEvent):
        raise ArgumentTypeError(f"{name} must be a sequence of NewEvent; wrap one event in a list")
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ArgumentTypeError(
            f"{name} must be a list or tuple of NewEvent, not {type(value).__name__} ({value!r})"
        )


def appends_arg(value: object) -> list[StreamAppend]:
    """Validate ``append_many``'s argument: ``{stream: (events, expected_version)}``.

    Event ids must be unique across the whole append.

    Raises:
        ArgumentTypeError: not a mapping of that shape, or a part has a wrong type.
        InvalidArgumentError: a bad value in a part, no stream at all, or an event id
            used twice.
    """
    if not isinstance(value, Mapping):
        raise ArgumentTypeError(
            "appends must be a mapping {stream: (events, expected_version)}, "
            f"not {type(value).__name__} ({value!r})"
        )
    if not value:
        raise InvalidArgumentError("appends must name at least one stream")
    parts = []
    for stream, part in value.items():
        stream_arg(stream, "appends key")
        if not isinstance(part, tuple) or len(part) != 2:
            raise ArgumentTypeError(
                f"appends[{stream!r}] must be a tuple (events, expected_version), "
                f"not {type(part).__name__} ({part!r:.60})"
            )
        events = _events_arg(part[0], f"appends[{stream!r}] events")
        expected = expected_arg(part[1], f"appends[{stream!r}] expected_version")
        parts.append(StreamAppend(stream, events, expected))
    _check_unique_ids(parts)
    return parts


def single_append_arg(stream: object, events: object, expected: object) -> StreamAppend:
    """Validate ``append``'s arguments (see :func:`appends_arg` for the errors)."""
    part = StreamAppend(stream_arg(stream), _events_arg(events, "events"), expected_arg(expected))
    if len(part.events) > 1:
        _check_unique_ids([part])
    return part


def _check_unique_ids(parts: list[StreamAppend]) -> None:
    seen: set[uuid.UUID] = set()
    for part in parts:
        for event in part.events:
            if event.id in seen:
                raise InvalidArgumentError(f"event id {event.id} appears twice in one append")
            seen.add(event.id)


def custom_metadata_arg(value: object) -> bytes:
    """Encode stream metadata (a JSON-like mapping with ``str`` keys) to bytes.

    Raises:
        ArgumentTypeError: ``value`` is not a mapping with ``str`` keys, or holds
            something JSON cannot represent.
    """
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ArgumentTypeError(
            f"metadata must be a mapping with str keys, not {type(value).__name__} ({value!r:.60})"
        )
    try:
        return msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ArgumentTypeError(f"metadata cannot be stored as JSON: {exc}") from None


def decode_custom_metadata(data: bytes) -> dict[str, Any]:
    """The mapping :func:`custom_metadata_arg` encoded (empty for no bytes)."""
    if not data:
        return {}
    decoded: dict[str, Any] = msgspec.json.decode(data)
    return decoded


def check_expected(stream: str, expected: ExpectedVersion, version: int, exists: bool) -> bool:
    """Whether the stream state passes ``expected``: ``True``, or raise.

    Raises:
        ConcurrencyError: the check failed (naming the stream, expected and actual).
    """
    if expected is StreamState.ANY:
        return True
    if expected is StreamState.NO_STREAM:
        passed = not exists
    elif expected is StreamState.STREAM_EXISTS:
        passed = exists
    else:
        passed = expected == version
    if not passed:
        raise ConcurrencyError(stream, expected, version)
    return True


def match_retry(part: StreamAppend, stored: Sequence[RecordedEvent | None]) -> AppendResult | None:
    """Decide whether ``part`` repeats an append already made, from its stored events.

    ``stored[i]`` is the event stored under ``part.events[i].id`` (``None`` if none).

    Returns:
        ``None`` when no id is stored (a new append); the original result when every
        event is stored, in ``part.stream``, with the same content, at consecutive
        versions in the same order (a retry, which writes nothing).

    Raises:
        DuplicateError: some ids are stored and some not, or stored differently.
    """
    if all(record is None for record in stored):
        return None
    stream = part.stream
    positions: list[int] = []
    version = 0
    for event, record in zip(part.events, stored, strict=True):
        if record is None:
            raise DuplicateError(stream, _first_stored(part, stored), _PARTIAL)
        if record.stream != stream:
            raise DuplicateError(stream, event.id, f"is stored in stream {record.stream!r}")
        if not record.same_content(event):
            raise DuplicateError(stream, event.id, "is stored with other content")
        if positions and record.version != version + 1:
            raise DuplicateError(stream, event.id, "is stored, but not in the same append")
        positions.append(record.position)
        version = record.version
    return AppendResult(stream, version, tuple(positions))


_PARTIAL = "is stored, but other events of the append are not"


def _first_stored(part: StreamAppend, stored: Sequence[RecordedEvent | None]) -> uuid.UUID:
    pairs = zip(part.events, stored, strict=True)
    return next(event.id for event, record in pairs if record is not None)
