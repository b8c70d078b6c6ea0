"""EventCodec: a registry of event types, encoded with msgspec, upcast and transformed."""

from __future__ import annotations

import dataclasses
import sys
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from ..errors import ArgumentTypeError, InvalidArgumentError, SerializationError
from ._types import JSON, NewEvent, RecordedEvent
from ._upcasting import Upcasters

__all__ = ("EventCodec", "Transformer", "ZlibCompression")


@runtime_checkable
class Transformer(Protocol):
    """A reversible step applied to encoded event data: compression, encryption.

    ``name`` is written into the event's content type, so a reader knows which steps to
    undo; it must be a short token without ``;``, ``,`` or ``=``. ``decode`` may raise
    any exception for data it cannot undo: the codec reports it as a
    :class:`~corral.errors.SerializationError` naming the event.
    """

    @property
    def name(self) -> str:
        """The step's name in content types, e.g. ``"zlib"``."""
        ...

    def encode(self, data: bytes) -> bytes:
        """The transformed bytes."""
        ...

    def decode(self, data: bytes) -> bytes:
        """The original bytes of transformed ``data``."""
        ...


class ZlibCompression:
    """A :class:`Transformer` compressing event data with zlib.

    Thread-safety: stateless; safe to share.

    Args:
        level: the zlib level, 0 (none) to 9 (smallest).

    Raises:
        ArgumentTypeError: ``level`` is not an ``int``.
        InvalidArgumentError: ``level`` is outside 0..9.
    """

    __slots__ = ("_level",)

    def __init__(self, level: int = 6) -> None:
        if not isinstance(level, int) or isinstance(level, bool):
            raise ArgumentTypeError(f"level must be an int, not {level.__class__.__name__}")
        if not 0 <= level <= 9:
            raise InvalidArgumentError(f"level must be between 0 and 9, not {level}")
        self._level = level

    def __repr__(self) -> str:
        return f"<ZlibCompression level {self._level}>"

    @property
    def name(self) -> str:
        """``"zlib"``."""
        return "zlib"

    def encode(self, data: bytes) -> bytes:
        """``data`` compressed."""
        return zlib.compress(data, self._level)

    def decode(self, data: bytes) -> bytes:
        """``data`` decompressed.

        Raises:
            zlib.error: ``data`` is not zlib data.
        """
        return zlib.decompress(data)


class _Kind(msgspec.Struct, frozen=True):
    name: str
    cls: type[Any]
    version: int
    pydantic: bool
    decoder: msgspec.json.Decoder[Any] | None


def _is_pydantic(cls: type[Any]) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def _pydantic_hook(value: Any) -> Any:
    if _is_pydantic(type(value)):
        return value.model_dump(mode="json")
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


class EventCodec:
    """Turns event objects into :class:`NewEvent` records and recorded events back.

    A registry maps event type names to classes, both ways: dataclasses,
    ``msgspec.Struct`` types and pydantic models (v2) are accepted. Each class has a
    schema version (1 unless registered otherwise); an event stored at an older version
    is carried up to the registered one by ``upcasters`` before its object is built.
    ``transformers`` (compression, encryption) are applied to the encoded bytes in order
    and undone in reverse order on read.

    The content type records what was done: ``application/json`` for version 1 without
    transformers (so :class:`JsonSerializer` reads such events too), otherwise e.g.
    ``application/json; version=2; transform=zlib``. A codec reads events written with
    any subset of its transformers, so transformers can be added later.

    Thread-safety: register every class before sharing; afterwards encoding and
    decoding are safe from any thread (if the transformers are).

    Args:
        types: event classes to register at version 1 under their class name.
        upcasters: the steps from older schema versions to newer ones.
        transformers: steps applied to the encoded data of every new event.

    Raises:
        ArgumentTypeError: a bad class, ``upcasters`` or transformer.
        InvalidArgumentError: two classes share a name, or two transformers a name.
    """

    __slots__ = (
        "_by_class",
        "_by_name",
        "_content_types",
        "_encoder",
        "_new_content_type",
        "_transformers",
        "_upcasters",
    )

    def __init__(
        self,
        types: Iterable[type[Any]] = (),
        *,
        upcasters: Upcasters | None = None,
        transformers: Sequence[Transformer] = (),
    ) -> None:
        if upcasters is not None and not isinstance(upcasters, Upcasters):
            raise ArgumentTypeError(
                f"upcasters must be an Upcasters, not {upcasters.__class__.__name__}"
            )
        self._upcasters = Upcasters() if upcasters is None else upcasters
        self._transformers: dict[str, Transformer] = {}
        for transformer in transformers:
            if not isinstance(transformer, Transformer):
                raise ArgumentTypeError(
                    f"transformers must hold Transformer objects, not "
                    f"{transformer.__class__.__name__} ({transformer!r})"
                )
            name = transformer.name
            if not name or any(mark in name for mark in ";,= "):
                raise InvalidArgumentError(
                    f"transformer names must be tokens without ;,= or spaces, not {name!r}"
                )
            if name in self._transformers:
                raise InvalidArgumentError(f"two transformers are named {name!r}")
            self._transformers[name] = transformer
        self._by_name: dict[str, _Kind] = {}
        self._by_class: dict[type[Any], _Kind] = {}
        self._encoder = msgspec.json.Encoder(enc_hook=_pydantic_hook)
        self._content_types: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._new_content_type: dict[int, str] = {}
        for cls in types:
            self.register(cls)

    def __repr__(self) -> str:
        steps = ", ".join(self._transformers) or "no transformers"
        return f"<EventCodec {len(self._by_name)} event types, {steps}>"

    def register(self, cls: type[Any], *, name: str | None = None, version: int = 1) -> None:
        """Register ``cls`` as the event type ``name`` (its class name by default).

        Args:
            cls: a dataclass, ``msgspec.Struct`` or pydantic model class.
            name: the type name stored with its events.
            version: its current schema version (``>= 1``); older stored versions are
                upcast on read.

        Raises:
            ArgumentTypeError: ``cls`` is not a dataclass, ``msgspec.Struct`` or pydantic
                model class, ``name`` is not a ``str``, or ``version`` not an ``int``.
            InvalidArgumentError: ``name`` is empty or taken, ``cls`` is registered
                already, or ``version < 1``.
        """
        if not isinstance(cls, type):
            raise ArgumentTypeError(f"cls must be a class, not {cls.__class__.__name__} ({cls!r})")
        name = cls.__name__ if name is None else name
        if not isinstance(name, str):
            raise ArgumentTypeError(f"name must be a str, not {name.__class__.__name__}")
        if not name:
            raise InvalidArgumentError("name must not be empty")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ArgumentTypeError(f"version must be an int, not {version.__class__.__name__}")
        if version < 1:
            raise InvalidArgumentError(f"version must be >= 1, not {version}")
        if name in self._by_name:
            raise InvalidArgumentError(f"the type name {name!r} is registered already")
        if cls in self._by_class:
            raise InvalidArgumentError(f"{cls.__name__} is registered already")
        pydantic = _is_pydantic(cls)
        if not (pydantic or dataclasses.is_dataclass(cls) or issubclass(cls, msgspec.Struct)):
            raise ArgumentTypeError(
                f"event classes must be dataclasses, msgspec Structs or pydantic models, "
                f"not {cls.__name__}"
            )
        decoder = None if pydantic else msgspec.json.Decoder(cls)
        kind = _Kind(name, cls, version, pydantic, decoder)
        self._by_name[name] = kind
        self._by_class[cls] = kind

    def type_name(self, cls: type[Any]) -> str:
        """The type name ``cls`` is registered under.

        Raises:
            ArgumentTypeError: ``cls`` is not registered.
        """
        return self._kind_of(cls).name

    def class_for(self, name: str) -> type[Any]:
        """The class registered as the type ``name``.

        Raises:
            LookupError: no class is registered under ``name``.
        """
        kind = self._by_name.get(name)
        if kind is None:
            raise LookupError(f"no event class is registered as {name!r}")
        return kind.cls

    def _kind_of(self, cls: type[Any]) -> _Kind:
        kind = self._by_class.get(cls)
        if kind is None:
            raise ArgumentTypeError(f"{cls.__name__} is not a registered event type")
        return kind

    def encode(
        self,
        event: object,
        *,
        metadata: Mapping[str, Any] | None = None,
        id: uuid.UUID | None = None,
    ) -> NewEvent:
        """A :class:`NewEvent` for ``event``, an instance of a registered class.

        Args:
            event: the event object.
            metadata: a JSON-like mapping stored next to the data (not transformed).
            id: the event id (choose it once so retries are recognised); a fresh
                :func:`new_event_id` by default.

        Raises:
            ArgumentTypeError: ``event``'s class is not registered, ``event`` or
                ``metadata`` cannot be encoded, or ``id`` is not a ``uuid.UUID``.
        """
        kind = self._kind_of(type(event))
        if id is not None and not isinstance(id, uuid.UUID):
            raise ArgumentTypeError(f"id must be a uuid.UUID, not {id.__class__.__name__} ({id!r})")
        data = self._encode(event, "event")
        for transformer in self._transformers.values():
            data = transformer.encode(data)
        encoded_metadata = b"" if metadata is None else self._encode(metadata, "metadata")
        content_type = self._new_content_type.get(kind.version)
        if content_type is None:
            content_type = self._new_content_type[kind.version] = self._content_type(kind.version)
        if id is None:
            return NewEvent(kind.name, data, encoded_metadata, content_type)
        return NewEvent(kind.name, data, encoded_metadata, content_type, id)

    def _encode(self, value: object, name: str) -> bytes:
        try:
            return self._encoder.encode(value)
        except (TypeError, NotImplementedError, msgspec.EncodeError) as exc:
            raise ArgumentTypeError(
                f"{name} cannot be encoded as JSON ({value.__class__.__name__}): {exc}"
            ) from None

    def _content_type(self, version: int) -> str:
        parts = [JSON]
        if version != 1:
            parts.append(f"version={version}")
        if self._transformers:
            parts.append("transform=" + ",".join(self._transformers))
        return "; ".join(parts)

    def decode(self, event: RecordedEvent) -> Any:
        """The object stored in ``event``: transformers undone, upcast, then built.

        Raises:
            SerializationError: the type is not registered, the content type is not one
                this codec wrote, a transformer or upcaster fails, or the data does not
                fit the class; the error names the event's stream and position.
        """
        kind = self._by_name.get(event.type)
        if kind is None:
            raise SerializationError(
                event.stream, event.position, f"the event type {event.type!r} is not registered"
            )
        version, steps = self._parse(event)
        data = event.data
        for step in reversed(steps):
            try:
                data = self._transformers[step].decode(data)
            except Exception as exc:
                raise SerializationError(
                    event.stream, event.position, f"transformer {step!r} cannot undo: {exc!r}"
                ) from exc
        try:
            if version == kind.version:
                if kind.decoder is not None:
                    return kind.decoder.decode(data)
                return kind.cls.model_validate_json(data)
            return self._upcast(event, kind, version, msgspec.json.decode(data))
        except ValueError as exc:
            raise SerializationError(
                event.stream,
                event.position,
                f"cannot decode {event.type!r} version {version}: {exc}",
            ) from exc

    def _upcast(self, event: RecordedEvent, kind: _Kind, version: int, raw: Any) -> Any:
        if version > kind.version:
            raise SerializationError(
                event.stream,
                event.position,
                f"{event.type!r} is stored at version {version}, newer than the registered "
                f"version {kind.version}",
            )
        gap = self._upcasters.missing(kind.name, version, kind.version)
        if gap is not None:
            raise SerializationError(
                event.stream,
                event.position,
                f"no upcaster of {event.type!r} from version {gap} to {gap + 1}",
            )
        try:
            raw = self._upcasters.upcast(kind.name, version, kind.version, raw)
        except Exception as exc:
            raise SerializationError(
                event.stream,
                event.position,
                f"upcasting {event.type!r} from version {version} failed: {exc!r}",
            ) from exc
        if kind.pydantic:
            return kind.cls.model_validate(raw)
        return msgspec.convert(raw, kind.cls)

    def _parse(self, event: RecordedEvent) -> tuple[int, tuple[str, ...]]:
        parsed = self._content_types.get(event.content_type)
        if parsed is None:
            parsed = self._parse_content_type(event)
            self._content_types[event.content_type] = parsed
        return parsed

    def _known(self, steps: str) -> bool:
        return all(step in self._transformers for step in steps.split(","))

    def _parse_content_type(self, event: RecordedEvent) -> tuple[int, tuple[str, ...]]:
        base, *parameters = (part.strip() for part in event.content_type.split(";"))
        version = 1
        steps: tuple[str, ...] = ()
        for parameter in parameters if base == JSON else ("",):
            key, _, value = parameter.partition("=")
            if key == "version" and value.isdigit() and int(value) >= 1:
                version = int(value)
            elif key == "transform" and all(
                step in self._transformers for step in value.split(",")
            ):
                steps = tuple(value.split(","))
            else:
                raise SerializationError(
                    event.stream,
                    event.position,
                    f"content type {event.content_type!r} is not one this codec reads",
                )
        return version, steps
