"""How a Redis store turns values into bytes and back: JSON by default, never pickle."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import msgspec

__all__ = ("JsonValueSerializer", "ValueSerializer")


@runtime_checkable
class ValueSerializer(Protocol):
    """Turns values into bytes and back, for a store shared through Redis.

    A shared store reads what other processes wrote, so decoding must never run code
    chosen by the data: that rules out ``pickle`` for any Redis that is not fully
    trusted. :meth:`encode` raises ``TypeError`` or ``ValueError`` for a value it cannot
    represent; :meth:`decode` raises ``ValueError`` for bytes it cannot read.
    """

    def encode(self, value: Any) -> bytes:
        """The bytes that stand for ``value``."""
        ...

    def decode(self, data: bytes) -> Any:
        """The value that ``data`` stands for."""
        ...


class JsonValueSerializer:
    """JSON through msgspec: fast, safe to decode, and readable with ``redis-cli``.

    Without ``type``, values come back as JSON builds them: tuples and sets as lists,
    datetimes and UUIDs as strings. With ``type`` (anything msgspec can decode into:
    a dataclass, a ``msgspec.Struct``, ``list[tuple[int, str]]``...), they come back as
    that type, validated.

    Thread-safety: safe to share between threads and stores.

    Args:
        type: the type to decode values into; ``Any`` (the default) for plain JSON.
    """

    __slots__ = ("_decoder", "_encoder", "_type")

    def __init__(self, type: Any = Any) -> None:
        self._type = type
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(type)

    def encode(self, value: Any) -> bytes:
        """``value`` as JSON bytes.

        Raises:
            TypeError: ``value`` holds an object msgspec cannot encode.
        """
        return self._encoder.encode(value)

    def decode(self, data: bytes) -> Any:
        """The value of the JSON ``data``.

        Raises:
            msgspec.DecodeError: ``data`` is not JSON, or not of the serializer's type
                (a ``ValueError``).
        """
        return self._decoder.decode(data)

    def __repr__(self) -> str:
        kind = "" if self._type is Any else f" type={self._type!r}"
        return f"<JsonValueSerializer{kind}>"
