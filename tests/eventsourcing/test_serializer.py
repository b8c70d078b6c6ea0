"""JsonSerializer: objects to events and back, and the errors that name what is wrong."""

from __future__ import annotations

import dataclasses
import pickle
import uuid

import msgspec
import pytest

from corral.errors import (
    ArgumentTypeError,
    ConcurrencyError,
    DuplicateError,
    InvalidArgumentError,
    SerializationError,
)
from corral.eventsourcing import NO_STREAM, JsonSerializer, NewEvent, RecordedEvent


@dataclasses.dataclass
class Deposited:
    account: str
    amount: int


class Withdrawn(msgspec.Struct):
    account: str
    amount: int


def recorded(event: NewEvent, position: int = 7) -> RecordedEvent:
    return RecordedEvent(
        "account-1",
        1,
        position,
        event.id,
        event.type,
        event.data,
        event.metadata,
        event.content_type,
        0.0,
    )


def test_registered_classes_decode_by_type_name() -> None:
    serializer = JsonSerializer([Deposited, Withdrawn])
    deposited = serializer.new_event(Deposited("a", 5), metadata={"by": "teller"})
    withdrawn = serializer.new_event(Withdrawn("a", 3))
    assert (deposited.type, withdrawn.type) == ("Deposited", "Withdrawn")
    assert deposited.content_type == "application/json"
    assert serializer.decode(recorded(deposited)) == Deposited("a", 5)
    assert serializer.decode(recorded(withdrawn)) == Withdrawn("a", 3)
    assert serializer.decode_metadata(recorded(deposited)) == {"by": "teller"}
    assert serializer.decode_metadata(recorded(withdrawn)) == {}
    assert repr(serializer) == "<JsonSerializer 2 event types>"


def test_a_mapping_names_the_types_and_into_overrides_them() -> None:
    serializer = JsonSerializer({"deposit.v1": Deposited})
    event = serializer.new_event(Deposited("a", 5), type="deposit.v1")
    assert serializer.decode(recorded(event)) == Deposited("a", 5)
    assert serializer.decode(recorded(event), Withdrawn) == Withdrawn("a", 5)
    assert serializer.decode(recorded(event), dict) == {"account": "a", "amount": 5}


def test_unregistered_types_decode_to_plain_json() -> None:
    event = JsonSerializer().new_event({"x": [1, 2]}, type="Thing")
    assert JsonSerializer().decode(recorded(event)) == {"x": [1, 2]}


def test_the_event_id_is_kept_for_retries() -> None:
    event_id = uuid.uuid4()
    assert JsonSerializer().new_event({}, type="T", id=event_id).id == event_id
    assert JsonSerializer().new_event({}, type="T").id != JsonSerializer().new_event({}).id
    with pytest.raises(ArgumentTypeError, match=r"id must be a uuid\.UUID"):
        JsonSerializer().new_event({}, id=str(event_id))  # type: ignore[arg-type]


def test_data_that_cannot_be_decoded_names_stream_and_position() -> None:
    serializer = JsonSerializer([Deposited])
    wrong_shape = NewEvent("Deposited", b'{"account": "a"}')
    with pytest.raises(SerializationError, match="'account-1' position 7") as caught:
        serializer.decode(recorded(wrong_shape))
    assert (caught.value.stream, caught.value.position) == ("account-1", 7)
    assert isinstance(caught.value.__cause__, msgspec.ValidationError)
    with pytest.raises(SerializationError, match="content type 'x/y' is not JSON"):
        serializer.decode(recorded(NewEvent("Deposited", b"", content_type="x/y")))
    with pytest.raises(SerializationError, match="metadata is not a JSON object"):
        serializer.decode_metadata(recorded(NewEvent("T", b"{}", metadata=b"[1]")))
    with pytest.raises(SerializationError, match="cannot decode metadata"):
        serializer.decode_metadata(recorded(NewEvent("T", b"{}", metadata=b"{")))


def test_objects_that_cannot_be_encoded_are_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="data cannot be encoded as JSON"):
        JsonSerializer().new_event(object())
    with pytest.raises(ArgumentTypeError, match="metadata cannot be encoded"):
        JsonSerializer().new_event({}, metadata={"when": object()})


def test_bad_type_registries_are_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="types must hold classes"):
        JsonSerializer([Deposited, "Withdrawn"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="two classes are named 'Deposited'"):
        JsonSerializer([Deposited, type("Deposited", (), {})])


def test_storage_errors_carry_their_details_and_pickle() -> None:
    errors = [
        ConcurrencyError("s", NO_STREAM, 3),
        DuplicateError("s", uuid.UUID(int=1), "is stored with other content"),
        SerializationError("s", 9, "not JSON"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), str(copy)) == (type(error), str(error))
        assert vars(copy) == vars(error)
    assert str(errors[0]) == "stream 's': expected version NO_STREAM, actual version 3"
    assert str(errors[2]) == "stream 's' position 9: not JSON"
