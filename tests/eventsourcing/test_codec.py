"""EventCodec: the type registry, msgspec/pydantic classes, upcasting and transformers."""

from __future__ import annotations

import dataclasses
import uuid
import zlib
from typing import Any

import msgspec
import pydantic
import pytest
import store_urls
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral.errors import ArgumentTypeError, InvalidArgumentError, SerializationError
from corral.eventsourcing import (
    EventCodec,
    JsonSerializer,
    NewEvent,
    RecordedEvent,
    Transformer,
    Upcasters,
    ZlibCompression,
)

store_url = store_urls.store_url


@dataclasses.dataclass(frozen=True)
class Placed:
    order: int
    total: int


class Shipped(msgspec.Struct, frozen=True):
    order: int
    carrier: str


class Refunded(pydantic.BaseModel):
    order: int
    amount: int
    reason: str = "unhappy"


class Scrambled:
    """A test transformer standing in for encryption: XOR with a one-byte key."""

    def __init__(self, key: int) -> None:
        self.key = key

    @property
    def name(self) -> str:
        return "xor"

    def encode(self, data: bytes) -> bytes:
        return bytes(byte ^ self.key for byte in data) + b"!"

    def decode(self, data: bytes) -> bytes:
        if not data.endswith(b"!"):
            raise ValueError("not scrambled")
        return bytes(byte ^ self.key for byte in data[:-1])


def recorded(new: NewEvent, stream: str = "order-1", position: int = 9) -> RecordedEvent:
    return RecordedEvent(
        stream, 1, position, new.id, new.type, new.data, new.metadata, new.content_type, 0.0
    )


async def test_dataclasses_structs_and_pydantic_models_round_trip(store_url: str) -> None:
    codec = EventCodec([Placed, Shipped, Refunded])
    events = [Placed(1, 30), Shipped(1, "ups"), Refunded(order=1, amount=30)]
    async with corral.connect(store_url) as store:
        await store.append("order-1", [codec.encode(event) for event in events])
        decoded = [codec.decode(event) async for event in store.read_stream("order-1")]
        stored = [(e.type, e.content_type, e.data) async for e in store.read_stream("order-1")]
    assert decoded == events
    assert stored[2] == (
        "Refunded",
        "application/json",
        b'{"order":1,"amount":30,"reason":"unhappy"}',
    )
    # Version 1 without transformers is plain JSON, readable by JsonSerializer too.
    assert JsonSerializer([Placed]).decode(recorded(codec.encode(Placed(2, 5)))) == Placed(2, 5)


def test_the_registry_maps_names_and_classes_both_ways() -> None:
    codec = EventCodec([Placed])
    codec.register(Shipped, name="order.shipped", version=3)
    assert codec.type_name(Shipped) == "order.shipped"
    assert codec.class_for("Placed") is Placed
    new = codec.encode(Shipped(1, "dhl"), metadata={"user": "ada"}, id=uuid.UUID(int=5))
    assert (new.type, new.content_type, new.metadata, new.id) == (
        "order.shipped",
        "application/json; version=3",
        b'{"user":"ada"}',
        uuid.UUID(int=5),
    )
    assert repr(codec) == "<EventCodec 2 event types, no transformers>"
    with pytest.raises(LookupError, match="no event class is registered as 'Shipped'"):
        codec.class_for("Shipped")
    with pytest.raises(InvalidArgumentError, match="'Placed' is registered already"):
        codec.register(Refunded, name="Placed")
    with pytest.raises(InvalidArgumentError, match="Placed is registered already"):
        codec.register(Placed, name="Other")
    with pytest.raises(InvalidArgumentError, match="version must be >= 1, not 0"):
        codec.register(Refunded, version=0)
    with pytest.raises(ArgumentTypeError, match="cls must be a class, not Placed"):
        codec.register(Placed(1, 2))  # type: ignore[arg-type]
    with pytest.raises(
        ArgumentTypeError, match="must be dataclasses, msgspec Structs or pydantic models, not dict"
    ):
        codec.register(dict)
    with pytest.raises(ArgumentTypeError, match="Refunded is not a registered event type"):
        codec.encode(Refunded(order=1, amount=2))
    with pytest.raises(ArgumentTypeError, match=r"id must be a uuid\.UUID, not str"):
        codec.encode(Placed(1, 2), id="x")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="metadata cannot be encoded"):
        codec.encode(Placed(1, 2), metadata={"when": object()})


async def test_compression_and_a_pluggable_encryption_transformer(store_url: str) -> None:
    codec = EventCodec([Placed], transformers=[ZlibCompression(9), Scrambled(0x5A)])
    assert repr(codec) == "<EventCodec 1 event types, zlib, xor>"
    big = Placed(1, 10**30)
    async with corral.connect(store_url) as store:
        await store.append("order-1", [codec.encode(big)])
        (event,) = [e async for e in store.read_stream("order-1")]
    assert event.content_type == "application/json; transform=zlib,xor"
    assert event.data.endswith(b"!")
    plain = bytes(byte ^ 0x5A for byte in event.data[:-1])
    assert zlib.decompress(plain) == b'{"order":1,"total":1000000000000000000000000000000}'
    assert codec.decode(event) == big
    # A codec given more transformers still reads events written with fewer.
    assert codec.decode(recorded(EventCodec([Placed]).encode(big))) == big
    # A wrong key is reported as malformed data of that event.
    wrong = EventCodec([Placed], transformers=[ZlibCompression(), Scrambled(0x11)])
    with pytest.raises(
        SerializationError, match=r"stream 'order-1' position 1: transformer 'zlib'"
    ):
        wrong.decode(event)
    # A codec without the transformer cannot read the event, and says why.
    with pytest.raises(SerializationError, match="is not one this codec reads"):
        EventCodec([Placed]).decode(event)


def test_transformers_are_checked() -> None:
    assert isinstance(ZlibCompression(), Transformer)
    assert repr(ZlibCompression()) == "<ZlibCompression level 6>"
    with pytest.raises(InvalidArgumentError, match="level must be between 0 and 9, not 10"):
        ZlibCompression(10)
    with pytest.raises(ArgumentTypeError, match="level must be an int, not float"):
        ZlibCompression(1.5)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="must hold Transformer objects, not str"):
        EventCodec(transformers=["zlib"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="two transformers are named 'zlib'"):
        EventCodec(transformers=[ZlibCompression(), ZlibCompression()])

    class Badly(Scrambled):
        @property
        def name(self) -> str:
            return "a;b"

    with pytest.raises(InvalidArgumentError, match="not 'a;b'"):
        EventCodec(transformers=[Badly(1)])
    with pytest.raises(ArgumentTypeError, match="upcasters must be an Upcasters, not dict"):
        EventCodec(upcasters={})  # type: ignore[arg-type]


# -- upcasting -----------------------------------------------------------------------


class PlacedV3(msgspec.Struct, frozen=True):
    order: int
    total_cents: int
    currency: str


def upcasters() -> Upcasters:
    chain = Upcasters()

    @chain.register("Placed", from_version=1)
    def add_currency(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "currency": "EUR"}

    @chain.register("Placed", from_version=2)
    def to_cents(data: dict[str, Any]) -> dict[str, Any]:
        return {
            "order": data["order"],
            "total_cents": data["total"] * 100,
            "currency": data["currency"],
        }

    return chain


async def test_old_event_versions_are_upcast_on_read(store_url: str) -> None:
    old = JsonSerializer()
    async with corral.connect(store_url) as store:
        # Stored years ago: version 1 (plain JSON), then version 2 (with a currency).
        await store.append(
            "order-1",
            [
                old.new_event({"order": 1, "total": 3}, type="Placed"),
                NewEvent(
                    "Placed",
                    b'{"order":1,"total":4,"currency":"USD"}',
                    content_type="application/json; version=2",
                ),
            ],
        )
        codec = EventCodec(upcasters=upcasters())
        codec.register(PlacedV3, name="Placed", version=3)
        await store.append("order-1", [codec.encode(PlacedV3(1, 500, "GBP"))])
        decoded = [codec.decode(event) async for event in store.read_stream("order-1")]
        stored = [event.data async for event in store.read_stream("order-1")]
    assert decoded == [PlacedV3(1, 300, "EUR"), PlacedV3(1, 400, "USD"), PlacedV3(1, 500, "GBP")]
    assert stored[0] == b'{"order":1,"total":3}'  # stored events are never rewritten


def test_pydantic_models_are_upcast_too() -> None:
    chain = Upcasters()
    chain.add("Refunded", 1, lambda data: {**data, "reason": data.pop("why")})
    codec = EventCodec(upcasters=chain)
    codec.register(Refunded, version=2)
    old = NewEvent("Refunded", b'{"order":1,"amount":2,"why":"late"}')
    assert codec.decode(recorded(old)) == Refunded(order=1, amount=2, reason="late")


def test_upcasting_failures_name_the_event() -> None:
    codec = EventCodec(upcasters=upcasters())
    codec.register(PlacedV3, name="Placed", version=3)
    newer = NewEvent("Placed", b"{}", content_type="application/json; version=4")
    with pytest.raises(SerializationError, match="position 9: 'Placed' is stored at version 4"):
        codec.decode(recorded(newer))
    broken = NewEvent("Placed", b'{"order":1}')
    with pytest.raises(
        SerializationError, match=r"upcasting 'Placed' from version 1 failed: KeyErr"
    ):
        codec.decode(recorded(broken))
    gap = EventCodec()
    gap.register(PlacedV3, name="Placed", version=2)
    with pytest.raises(SerializationError, match="no upcaster of 'Placed' from version 1 to 2"):
        gap.decode(recorded(NewEvent("Placed", b'{"order":1,"total":3}')))
    chain = Upcasters()
    chain.add("Placed", 1, lambda data: data)
    with pytest.raises(InvalidArgumentError, match="from version 1 is already registered"):
        chain.add("Placed", 1, lambda data: data)
    with pytest.raises(InvalidArgumentError, match="from_version must be >= 1, not 0"):
        chain.add("Placed", 0, lambda data: data)
    with pytest.raises(ArgumentTypeError, match="upcaster must be a function, not int"):
        chain.add("Placed", 2, 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="type must not be empty"):
        chain.add("", 2, lambda data: data)
    assert repr(chain) == "<Upcasters 1 steps>"


# -- malformed data ------------------------------------------------------------------


async def test_malformed_data_names_stream_and_position_and_the_rest_stays_readable(
    store_url: str,
) -> None:
    codec = EventCodec([Placed, Refunded])
    async with corral.connect(store_url) as store:
        await store.append(
            "order-1",
            [
                codec.encode(Placed(1, 2)),
                NewEvent("Placed", b'{"order":"one"}'),
                NewEvent("Refunded", b"not json"),
                NewEvent("Unknown", b"{}"),
                NewEvent("Placed", b"{}", content_type="application/xml"),
                NewEvent("Placed", b"{}", content_type="application/json; version=x"),
                codec.encode(Placed(3, 4)),
            ],
        )
        events = [event async for event in store.read_stream("order-1")]
    reasons = []
    for event in events[1:-1]:
        with pytest.raises(SerializationError) as caught:
            codec.decode(event)
        assert (caught.value.stream, caught.value.position) == ("order-1", event.position)
        reasons.append(caught.value.reason)
    assert reasons[0].startswith("cannot decode 'Placed' version 1: Expected `int`")
    assert reasons[1].startswith("cannot decode 'Refunded' version 1:")
    assert reasons[2] == "the event type 'Unknown' is not registered"
    assert "'application/xml' is not one this codec reads" in reasons[3]
    assert "is not one this codec reads" in reasons[4]
    assert [codec.decode(events[0]), codec.decode(events[-1])] == [Placed(1, 2), Placed(3, 4)]


@given(
    orders=st.lists(st.tuples(st.integers(), st.integers(-(2**63), 2**63 - 1)), max_size=5),
    steps=st.permutations(["zlib", "xor"]).flatmap(
        lambda names: st.integers(0, 2).map(lambda count: names[:count])
    ),
    key=st.integers(0, 255),
)
def test_any_transformer_chain_round_trips_and_names_itself(
    orders: list[tuple[int, int]], steps: list[str], key: int
) -> None:
    available: dict[str, Transformer] = {"zlib": ZlibCompression(1), "xor": Scrambled(key)}
    codec = EventCodec([Placed], transformers=[available[name] for name in steps])
    for order, total in orders:
        new = codec.encode(Placed(order, total))
        expected = "application/json" + ("; transform=" + ",".join(steps) if steps else "")
        assert new.content_type == expected
        assert codec.decode(recorded(new)) == Placed(order, total)
        # A reader with every transformer reads what any writer wrote.
        reader = EventCodec([Placed], transformers=list(available.values()))
        assert reader.decode(recorded(new)) == Placed(order, total)
