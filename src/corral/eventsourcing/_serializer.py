"""JsonSerializer: objects to new events and recorded events back to objects, with msgspec."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, overload

import msgspec

from ..errors import ArgumentTypeError, InvalidArgumentError, SerializationError
from ._types import JSON, NewEvent, RecordedEvent

__all__ = ("JsonSerializer",)

T = TypeVar("T")


class JsonSerializer:
    """Encodes event objects as JSON for the store, and decodes what the store returns.

    Event classes may be dataclasses, ``msgspec.Struct`` types, or anything else
    msgspec encodes (``TypedDict``, ``NamedTuple``, plain ``dict``). Registered classes
    are decoded by the event's type name; the type name of an object is its class name
    unless given.

    Thread-safety: safe to share between tasks and threads (its only mutable state is a
    cache of decoders, filled atomically).

    Args:
        types: the event classes to decode by type name (their ``__name__``), or a
            mapping ``{type name: class}``.

    Raises:
        ArgumentTypeError: ``types`` holds something that is not a class.
        InvalidArgumentError: two classes share a type name.
    """

    __slots__ = ("_decoders", "_decoders_by_class", "_encoder", "_types")

    def __init__(self, types: Iterable[type] | Mapping[str, type] = ()) -> None:
        named: list[tuple[str, type]] = (
            list(types.items())
            if isinstance(types, Mapping)
            else [(getattr(kind, "__name__", ""), kind) for kind in types]
        )
        self._types: dict[str, type] = {}
        for name, kind in named:
            if not isinstance(kind, type):
                raise ArgumentTypeError(
                    f"types must hold classes, not {type(kind).__name__} ({kind!r})"
                )
            if name in self._types:
                raise InvalidArgumentError(f"types: two classes are named {name!r}")
            self._types[name] = kind
        self._encoder = msgspec.json.Encoder()
        # Decoders for classes passed as ``into``, made on first use.
        self._decoders_by_class: dict[type[Any], msgspec.json.Decoder[Any]] = {}
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {
            name: msgspec.json.Decoder(kind) for name, kind in self._types.items()
        }

    def __repr__(self) -> str:
        return f"<JsonSerializer {len(self._types)} event types>"

    def new_event(
        self,
        data: object,
        *,
        type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        id: uuid.UUID | None = None,
    ) -> NewEvent:
        """A :class:`NewEvent` holding ``data`` (and ``metadata``) encoded as JSON.

        Args:
            data: the event object.
            type: the event's type name; ``data``'s class name by default.
            metadata: a JSON-like mapping stored next to the data.
            id: the event id (choose it once, so that retries are recognised); a
                fresh :func:`new_event_id` by default.

        Raises:
            ArgumentTypeError: ``data`` or ``metadata`` cannot be encoded, or ``id`` is
                not a ``uuid.UUID``.
        """
        name = data.__class__.__name__ if type is None else type
        if id is not None and not isinstance(id, uuid.UUID):
            raise ArgumentTypeError(f"id must be a uuid.UUID, not {id.__class__.__name__} ({id!r})")
        encoded_data = self._encode(data, "data")
        encoded_metadata = b"" if metadata is None else self._encode(metadata, "metadata")
        if id is None:
            return NewEvent(name, encoded_data, encoded_metadata, JSON)
        return NewEvent(name, encoded_data, encoded_metadata, JSON, id)

    def _encode(self, value: object, name: str) -> bytes:
        try:
            return self._encoder.encode(value)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ArgumentTypeError(
                f"{name} cannot be encoded as JSON ({value.__class__.__name__}): {exc}"
            ) from None

    @overload
    def decode(self, event: RecordedEvent) -> Any: ...
    @overload
    def decode(self, event: RecordedEvent, into: type[T]) -> T: ...
    def decode(self, event: RecordedEvent, into: type[Any] | None = None) -> Any:
        """The object stored in ``event``'s data.

        Args:
            event: a recorded event with JSON data.
            into: the class to decode into; by default the class registered for the
                event's type, or plain JSON values (``dict``, ``list``, ...) if none is.

        Raises:
            SerializationError: the data is not valid JSON for that class, or not JSON at
                all; the error names the event's stream and position.
        """
        if event.content_type != JSON:
            raise SerializationError(
                event.stream, event.position, f"content type {event.content_type!r} is not JSON"
            )
        decoder = self._decoders.get(event.type) if into is None else self._decoder_for(into)
        try:
            if decoder is None:
                return msgspec.json.decode(event.data)
            return decoder.decode(event.data)
        except msgspec.DecodeError as exc:
            raise SerializationError(
                event.stream, event.position, f"cannot decode {event.type!r} data: {exc}"
            ) from exc

    def _decoder_for(self, kind: type[Any]) -> msgspec.json.Decoder[Any]:
        decoder = self._decoders_by_class.get(kind)
        if decoder is None:
            decoder = self._decoders_by_class[kind] = msgspec.json.Decoder(kind)
        return decoder

    def decode_metadata(self, event: RecordedEvent) -> dict[str, Any]:
        """The metadata mapping stored with ``event`` (empty if none was stored).

        Raises:
            SerializationError: the metadata is not a JSON object.
        """
        if not event.metadata:
            return {}
        try:
            decoded = msgspec.json.decode(event.metadata)
        except msgspec.DecodeError as exc:
            raise SerializationError(
                event.stream, event.position, f"cannot decode metadata: {exc}"
            ) from exc
        if not isinstance(decoded, dict):
            raise SerializationError(event.stream, event.position, "metadata is not a JSON object")
        return decoded
