"""AesGcmEncryption: AES-256-GCM event data, authenticated, through the codec and a store."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import store_urls
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral.errors import ArgumentTypeError, InvalidArgumentError, SerializationError, UsageError
from corral.eventsourcing import (
    AesGcmEncryption,
    EventCodec,
    NewEvent,
    RecordedEvent,
    Transformer,
    ZlibCompression,
)

store_url = store_urls.store_url

KEY = bytes(range(32))


@dataclasses.dataclass(frozen=True)
class Paid:
    card: str
    amount: int


def recorded(new: NewEvent, data: bytes | None = None) -> RecordedEvent:
    return RecordedEvent(
        "payment-1",
        1,
        4,
        new.id,
        new.type,
        new.data if data is None else data,
        new.metadata,
        new.content_type,
        0.0,
    )


async def test_event_data_is_stored_encrypted_and_read_back(store_url: str) -> None:
    codec = EventCodec([Paid], transformers=[ZlibCompression(), AesGcmEncryption(KEY)])
    async with corral.connect(store_url) as store:
        await store.append("payment-1", [codec.encode(Paid("4111 1111", 30))])
        (event,) = await store.read_stream("payment-1").collect()
    assert event.content_type == "application/json; transform=zlib,aesgcm"
    assert b"4111" not in event.data
    assert codec.decode(event) == Paid("4111 1111", 30)
    # Only the data is encrypted: the type stays readable.
    assert event.type == "Paid"


def test_every_payload_gets_its_own_nonce() -> None:
    encryption = AesGcmEncryption(KEY)
    first, second = encryption.encode(b"same"), encryption.encode(b"same")
    assert first != second
    assert first[:12] != second[:12]
    assert len(first) == 12 + len(b"same") + 16  # nonce, ciphertext, tag
    assert encryption.decode(first) == encryption.decode(second) == b"same"


@given(st.binary(max_size=2000))
def test_any_bytes_round_trip(data: bytes) -> None:
    encryption = AesGcmEncryption(KEY)
    assert encryption.decode(encryption.encode(data)) == data


def test_a_wrong_key_is_a_serialization_error_naming_the_event() -> None:
    new = EventCodec([Paid], transformers=[AesGcmEncryption(KEY)]).encode(Paid("x", 1))
    other = EventCodec([Paid], transformers=[AesGcmEncryption(AesGcmEncryption.generate_key())])
    with pytest.raises(
        SerializationError,
        match=r"stream 'payment-1' position 4: transformer 'aesgcm' cannot undo: .*"
        "authentication failed",
    ):
        other.decode(recorded(new))


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_any_changed_bit_is_refused(where: int, bit: int) -> None:
    codec = EventCodec([Paid], transformers=[AesGcmEncryption(KEY)])
    new = codec.encode(Paid("x", 1))
    data = bytearray(new.data)
    data[where % len(data)] ^= 1 << bit
    with pytest.raises(SerializationError, match="authentication failed"):
        codec.decode(recorded(new, bytes(data)))


def test_truncated_data_is_refused() -> None:
    codec = EventCodec([Paid], transformers=[AesGcmEncryption(KEY)])
    new = codec.encode(Paid("x", 1))
    with pytest.raises(SerializationError, match="at least 28 bytes, not 27"):
        codec.decode(recorded(new, new.data[:27]))
    with pytest.raises(ValueError, match="at least 28 bytes, not 0"):
        AesGcmEncryption(KEY).decode(b"")


def test_events_written_before_encryption_was_added_stay_readable() -> None:
    plain = EventCodec([Paid]).encode(Paid("x", 1))
    codec = EventCodec([Paid], transformers=[AesGcmEncryption(KEY)])
    assert codec.decode(recorded(plain)) == Paid("x", 1)


def test_keys_are_checked_and_never_shown() -> None:
    encryption = AesGcmEncryption(bytearray(KEY))
    assert isinstance(encryption, Transformer)
    assert encryption.name == "aesgcm"
    assert repr(encryption) == "<AesGcmEncryption AES-256-GCM>"
    assert AesGcmEncryption(memoryview(KEY)).decode(encryption.encode(b"x")) == b"x"
    key = AesGcmEncryption.generate_key()
    assert isinstance(key, bytes)
    assert len(key) == 32
    assert key != AesGcmEncryption.generate_key()
    with pytest.raises(ArgumentTypeError, match="key must be bytes, not str"):
        AesGcmEncryption("k" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"key must be 32 bytes \(AES-256\), not 16"):
        AesGcmEncryption(KEY[:16])


def test_without_cryptography_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(UsageError, match=r"crypto extra, pip install 'corral\[crypto\]'"):
        AesGcmEncryption(KEY)
