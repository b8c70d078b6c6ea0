"""AesGcmEncryption: a codec transformer encrypting event data with AES-256-GCM."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ("AesGcmEncryption",)

#: Bytes in an AES-256 key.
KEY_SIZE: Final = 32
#: Bytes in a GCM nonce (96 bits, drawn at random for every payload).
NONCE_SIZE: Final = 12
#: Bytes in a GCM authentication tag.
TAG_SIZE: Final = 16


def _aesgcm(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise UsageError(
            "AesGcmEncryption needs the 'cryptography' package: "
            "install the crypto extra, pip install 'corral[crypto]'"
        ) from exc
    return AESGCM(key)


class AesGcmEncryption:
    """A :class:`Transformer` encrypting event data with AES-256-GCM.

    Each payload is sealed with a fresh random 96-bit nonce, stored in front of the
    ciphertext and its 16-byte authentication tag (28 bytes more per event). GCM
    authenticates what it encrypts: data encrypted with another key, or changed in any
    way after it was written, is refused instead of decoded into garbage; through
    :meth:`EventCodec.decode` that is a :class:`~corral.errors.SerializationError`
    naming the event. Only the event data is encrypted; the type, metadata and stream
    name stay readable.

    Random nonces are safe for about 2**32 payloads per key; rotate keys well before.
    Needs the ``cryptography`` package (the ``crypto`` extra); nothing imports it until
    an ``AesGcmEncryption`` is made.

    Thread-safety: stateless after construction; safe to share.

    Args:
        key: the 32-byte AES-256 key (e.g. from :meth:`generate_key`, kept in a
            secret store).

    Raises:
        ArgumentTypeError: ``key`` is not ``bytes``, ``bytearray`` or ``memoryview``.
        InvalidArgumentError: ``key`` is not 32 bytes long.
        UsageError: the ``cryptography`` package is not installed.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes | bytearray | memoryview) -> None:
        if not isinstance(key, bytes | bytearray | memoryview):
            raise ArgumentTypeError(f"key must be bytes, not {key.__class__.__name__}")
        key = bytes(key)
        if len(key) != KEY_SIZE:
            raise InvalidArgumentError(
                f"key must be {KEY_SIZE} bytes (AES-256), not {len(key)} bytes"
            )
        self._aead = _aesgcm(key)

    @staticmethod
    def generate_key() -> bytes:
        """A new random 32-byte key, from the operating system's random source."""
        return os.urandom(KEY_SIZE)

    def __repr__(self) -> str:
        return "<AesGcmEncryption AES-256-GCM>"  # never the key

    @property
    def name(self) -> str:
        """``"aesgcm"``."""
        return "aesgcm"

    def encode(self, data: bytes) -> bytes:
        """``data`` encrypted: the nonce, then the ciphertext and its tag."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, data, None)

    def decode(self, data: bytes) -> bytes:
        """The plaintext of ``data`` made by :meth:`encode` with the same key.

        Raises:
            ValueError: ``data`` is too short, was encrypted with another key, or was
                changed (:meth:`EventCodec.decode` reports it as a
                :class:`~corral.errors.SerializationError`).
        """
        from cryptography.exceptions import InvalidTag

        if len(data) < NONCE_SIZE + TAG_SIZE:
            raise ValueError(
                f"AES-GCM data must be at least {NONCE_SIZE + TAG_SIZE} bytes, not {len(data)}"
            )
        try:
            return self._aead.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], None)
        except InvalidTag:
            raise ValueError(
                "AES-GCM authentication failed: another key, or the data was changed"
            ) from None
