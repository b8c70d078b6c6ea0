"""The event-store contract: what every :class:`~corral.eventsourcing.EventStore` must do.

Subclass :class:`EventStoreContract` in a test module (its name must start with
``Test``) and implement :meth:`EventStoreContract.make_store`. Every test makes its own
stores and closes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..._core._scope import fail_after, move_on_after
from ...errors import (
    ArgumentTypeError,
    ClosedResourceError,
    ConcurrencyError,
    DuplicateError,
    InvalidArgumentError,
    SerializationError,
)
from ...eventsourcing import (
    ANY,
    CHECKPOINT_KEY,
    NO_STREAM,
    STREAM_EXISTS,
    Checkpoints,
    EventStore,
    ExpectedVersion,
    JsonSerializer,
    NewEvent,
    RecordedEvent,
    Subscription,
)
from ...eventsourcing._reader import PAGE_SIZE
from .._clock import VirtualClock

__all__ = ("EventStoreContract", "event")


def event(type: str = "Happened", data: bytes = b"{}", **fields: Any) -> NewEvent:
    """A new event with a fresh id (``fields`` go to :class:`NewEvent`)."""
    return NewEvent(type, data, **fields)


async def _until_waiting(subscription: Subscription) -> None:
    """Let the loop run until ``subscription`` has read everything and waits."""
    for _ in range(5000):
        if subscription.waiting:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{subscription!r} is not waiting after 5 seconds")


async def _stream(store: EventStore, stream: str, **options: Any) -> list[int]:
    return [recorded.version for recorded in await store.read_stream(stream, **options).collect()]


_STREAMS = ("a", "b", "c")
_expected = st.one_of(
    st.integers(min_value=0, max_value=4), st.sampled_from([ANY, NO_STREAM, STREAM_EXISTS])
)
#: ``(kind, stream, other stream, event count, expected, other expected)``; the kinds are
#: "append", "many" (append to both streams at once), "delete" and "retry" (the last
#: successful append or many, again with the same events).
_Operation = tuple[str, str, str, int, ExpectedVersion, ExpectedVersion]
_operations = st.tuples(
    st.sampled_from(["append", "append", "many", "delete", "retry"]),
    st.sampled_from(_STREAMS),
    st.sampled_from(_STREAMS),
    st.integers(min_value=0, max_value=3),
    _expected,
    _expected,
)


class _Model:
    """What the store must hold after a sequence of operations, computed naively."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.deleted: set[str] = set()
        self.hidden_before: dict[str, int] = {}
        self.log: list[tuple[str, int]] = []
        self.last: dict[str, tuple[list[NewEvent], ExpectedVersion]] | None = None
        self.last_results: dict[str, int] = {}

    def exists(self, stream: str) -> bool:
        return self.versions.get(stream, 0) > 0 and stream not in self.deleted

    def visible_from(self, stream: str) -> int:
        return max(1, self.hidden_before.get(stream, 0))

    def passes(self, stream: str, expected: ExpectedVersion) -> bool:
        if expected is ANY:
            return True
        if expected is NO_STREAM:
            return not self.exists(stream)
        if expected is STREAM_EXISTS:
            return self.exists(stream)
        return expected == self.versions.get(stream, 0)

    async def apply(self, store: EventStore, operation: _Operation) -> None:
        kind, stream, other, count, expected, other_expected = operation
        if kind == "retry":
            if self.last is not None:
                results = await store.append_many(
                    {name: (events, exp) for name, (events, exp) in self.last.items()}
                )
                assert {name: r.version for name, r in results.items()} == self.last_results
            return
        if kind == "delete":
            if not self.passes(stream, expected):
                with pytest.raises(ConcurrencyError):
                    await store.delete_stream(stream, expected_version=expected)
                return
            await store.delete_stream(stream, expected_version=expected)
            if self.exists(stream):
                self.deleted.add(stream)
                self.hidden_before[stream] = self.versions[stream] + 1
            return
        parts = {stream: ([event() for _ in range(count)], expected)}
        if kind == "many" and other != stream:
            parts[other] = ([event() for _ in range(count)], other_expected)
        if not all(self.passes(name, exp) for name, (_, exp) in parts.items()):
            with pytest.raises(ConcurrencyError):
                await store.append_many(parts)
            return
        results = await store.append_many(parts)
        for name, (events, _) in parts.items():
            version = self.versions.get(name, 0)
            self.versions[name] = version + len(events)
            self.log += [(name, version + 1 + index) for index in range(len(events))]
            if events:
                self.deleted.discard(name)
            assert results[name].version == self.versions[name]
        if count:
            self.last = parts
            self.last_results = {name: r.version for name, r in results.items()}


class EventStoreContract:
    """The tests every event-store engine passes; subclass and implement :meth:`make_store`.

    ``self.tmp_path`` is a fresh directory for the running test, for engines that need
    files.
    """

    tmp_path: Path

    async def make_store(self) -> EventStore:
        """A new, empty store of the engine under test (each call a separate one)."""
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _remember_tmp_path(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @pytest.fixture
    def subscription_clock(self, virtual_clock: VirtualClock) -> VirtualClock | None:
        """The clock of the subscription tests: virtual, so their waits take no time.

        An engine whose I/O does not hold the virtual clock (a network server) overrides
        this fixture to return ``None``: its tests then run in real time.
        """
        return virtual_clock

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        store = await self.make_store()
        try:
            yield store
        finally:
            await store.close()

    # -- appending and expected versions ---------------------------------------------

    async def test_append_numbers_versions_from_one_and_positions_globally(
        self, store: EventStore
    ) -> None:
        first = await store.append("a", [event(), event()])
        second = await store.append("b", [event()])
        third = await store.append("a", [event()])
        assert (first.stream, first.version) == ("a", 2)
        assert (second.version, third.version) == (1, 3)
        positions = [*first.positions, *second.positions, *third.positions]
        assert positions == sorted(positions)
        assert len(set(positions)) == 4

    async def test_exact_expected_version(self, store: EventStore) -> None:
        await store.append("s", [event()], expected_version=0)
        await store.append("s", [event()], expected_version=1)
        with pytest.raises(ConcurrencyError) as caught:
            await store.append("s", [event()], expected_version=1)
        error = caught.value
        assert (error.stream, error.expected, error.actual) == ("s", 1, 2)
        assert "'s'" in str(error)
        assert "expected version 1" in str(error)
        assert "actual version 2" in str(error)
        assert await _stream(store, "s") == [1, 2]

    async def test_no_stream(self, store: EventStore) -> None:
        await store.append("s", [event()], expected_version=NO_STREAM)
        with pytest.raises(ConcurrencyError) as caught:
            await store.append("s", [event()], expected_version=NO_STREAM)
        assert (caught.value.expected, caught.value.actual) == (NO_STREAM, 1)
        assert await _stream(store, "s") == [1]

    async def test_stream_exists(self, store: EventStore) -> None:
        with pytest.raises(ConcurrencyError) as caught:
            await store.append("s", [event()], expected_version=STREAM_EXISTS)
        assert (caught.value.expected, caught.value.actual) == (STREAM_EXISTS, 0)
        await store.append("s", [event()])
        await store.append("s", [event()], expected_version=STREAM_EXISTS)
        assert await _stream(store, "s") == [1, 2]

    async def test_any_always_appends(self, store: EventStore) -> None:
        for _ in range(3):
            await store.append("s", [event()], expected_version=ANY)
        assert await _stream(store, "s") == [1, 2, 3]

    async def test_an_empty_append_only_checks_the_version(self, store: EventStore) -> None:
        await store.append("s", [event()])
        result = await store.append("s", [], expected_version=1)
        assert (result.version, result.positions) == (1, ())
        with pytest.raises(ConcurrencyError):
            await store.append("s", [], expected_version=0)
        assert (await store.get_stream_metadata("s")).version == 1

    async def test_append_many_is_atomic(self, store: EventStore) -> None:
        await store.append("b", [event()])
        with pytest.raises(ConcurrencyError) as caught:
            await store.append_many(
                {"a": ([event()], NO_STREAM), "b": ([event()], NO_STREAM), "c": ([event()], ANY)}
            )
        assert caught.value.stream == "b"
        assert await _stream(store, "a") == []
        assert await _stream(store, "c") == []
        assert [e.stream for e in await store.read_all().collect()] == ["b"]
        results = await store.append_many(
            {"a": ([event(), event()], NO_STREAM), "b": ([event()], 1)}
        )
        assert results["a"].version == 2
        assert results["b"].version == 2
        assert results["a"].positions[-1] < results["b"].positions[0]

    async def test_concurrent_appends_with_the_same_expected_version_let_one_win(
        self, store: EventStore
    ) -> None:
        await store.append("s", [event()])
        outcomes = await asyncio.gather(
            *(store.append("s", [event()], expected_version=1) for _ in range(8)),
            return_exceptions=True,
        )
        assert sum(not isinstance(outcome, BaseException) for outcome in outcomes) == 1
        assert all(
            isinstance(outcome, ConcurrencyError)
            for outcome in outcomes
            if isinstance(outcome, BaseException)
        )
        assert await _stream(store, "s") == [1, 2]
        assert store.statistics().conflicts == 7

    # -- idempotency -------------------------------------------------------------------

    async def test_a_retried_append_returns_the_original_result(self, store: EventStore) -> None:
        events = [event(), event()]
        first = await store.append("s", events, expected_version=NO_STREAM)
        await store.append("s", [event()])
        again = await store.append("s", events, expected_version=NO_STREAM)
        assert again == first
        assert await _stream(store, "s") == [1, 2, 3]
        statistics = store.statistics()
        assert (statistics.appends, statistics.idempotent_appends) == (2, 1)
        assert statistics.events_appended == 3

    async def test_a_retried_multi_stream_append_writes_nothing(self, store: EventStore) -> None:
        appends = {"a": ([event()], NO_STREAM), "b": ([event()], NO_STREAM)}
        first = await store.append_many(appends)
        assert await store.append_many(appends) == first
        assert len(await store.read_all().collect()) == 2

    async def test_same_id_other_content_is_a_duplicate(self, store: EventStore) -> None:
        original = event(data=b"1")
        await store.append("s", [original])
        changed = NewEvent(original.type, b"2", id=original.id)
        with pytest.raises(DuplicateError) as caught:
            await store.append("s", [changed])
        assert caught.value.event_id == original.id
        assert caught.value.stream == "s"
        with pytest.raises(DuplicateError, match="stored in stream 's'"):
            await store.append("t", [original])
        with pytest.raises(DuplicateError):
            await store.append("s", [original, event()])
        assert await _stream(store, "s") == [1]
        assert await _stream(store, "t") == []

    # -- reading -----------------------------------------------------------------------

    async def test_read_forward_backward_and_limits(self, store: EventStore) -> None:
        await store.append("s", [event() for _ in range(5)])
        assert await _stream(store, "s") == [1, 2, 3, 4, 5]
        assert await _stream(store, "s", from_version=3) == [3, 4, 5]
        assert await _stream(store, "s", from_version=2, limit=2) == [2, 3]
        assert await _stream(store, "s", backwards=True) == [5, 4, 3, 2, 1]
        assert await _stream(store, "s", backwards=True, from_version=3) == [3, 2, 1]
        assert await _stream(store, "s", backwards=True, limit=2) == [5, 4]
        assert await _stream(store, "s", from_version=9) == []
        assert await _stream(store, "missing") == []

    async def test_a_read_returns_what_was_appended(self, store: EventStore) -> None:
        original = event("Placed", b'{"n": 1}', metadata=b'{"by": "me"}', content_type="x/y")
        result = await store.append("s", [original])
        (recorded,) = await store.read_stream("s").collect()
        assert recorded.same_content(original)
        assert (recorded.stream, recorded.version, recorded.position) == (
            "s",
            1,
            result.positions[0],
        )
        assert recorded.recorded_at > 0

    async def test_reading_pages_through_long_streams(self, store: EventStore) -> None:
        await store.append("s", [event() for _ in range(1234)])
        assert await _stream(store, "s") == list(range(1, 1235))
        backwards = [e.version async for e in store.read_stream("s", backwards=True)]
        assert backwards == list(range(1234, 0, -1))
        assert len(await store.read_all(limit=1000).collect()) == 1000

    async def test_head_position_is_the_last_position_read_all_returns(
        self, store: EventStore
    ) -> None:
        assert await store.head_position() == 0
        await store.append("a", [event(), event()])
        results = await store.append_many({"b": ([event()], ANY), "c": ([event()], ANY)})
        head = await store.head_position()
        assert head == results["c"].positions[-1]
        assert head == (await store.read_all().collect())[-1].position
        await store.append("a", [])  # writes no event: the head stays
        await store.delete_stream("a")  # the global log keeps its events
        assert await store.head_position() == head
        await store.close()
        with pytest.raises(ClosedResourceError):
            await store.head_position()

    async def test_read_all_is_in_global_order(self, store: EventStore) -> None:
        await store.append("a", [event()])
        await store.append_many({"b": ([event()], ANY), "a": ([event()], ANY)})
        await store.append("b", [event()])
        everything = await store.read_all().collect()
        assert [(e.stream, e.version) for e in everything] == [
            ("a", 1),
            ("b", 1),
            ("a", 2),
            ("b", 2),
        ]
        positions = [e.position for e in everything]
        assert positions == sorted(set(positions))
        later = await store.read_all(from_position=positions[2]).collect()
        assert [e.position for e in later] == positions[2:]
        assert len(await store.read_all(from_position=positions[1], limit=2).collect()) == 2

    async def test_a_reader_sees_events_appended_while_it_reads(self, store: EventStore) -> None:
        await store.append("s", [event() for _ in range(600)])
        reader = store.read_stream("s")
        assert (await anext(reader)).version == 1
        await store.append("s", [event()])
        rest = [e.version async for e in reader]
        assert rest == list(range(2, 602))

    # -- metadata, truncation, deletion ------------------------------------------------

    async def test_stream_metadata(self, store: EventStore) -> None:
        unknown = await store.get_stream_metadata("s")
        assert (unknown.version, unknown.exists, unknown.deleted, unknown.custom) == (
            0,
            False,
            False,
            {},
        )
        await store.set_stream_metadata("s", {"owner": "me", "max_age": 30})
        assert (await store.get_stream_metadata("s")).custom == {"owner": "me", "max_age": 30}
        assert not (await store.get_stream_metadata("s")).exists
        await store.append("s", [event()], expected_version=NO_STREAM)
        await store.set_stream_metadata("s", {"owner": "you"})
        known = await store.get_stream_metadata("s")
        assert (known.version, known.exists, known.custom) == (1, True, {"owner": "you"})

    async def test_truncate_before_hides_old_events_from_stream_reads(
        self, store: EventStore
    ) -> None:
        await store.append("s", [event() for _ in range(4)])
        await store.truncate_before("s", 3)
        assert await _stream(store, "s") == [3, 4]
        assert await _stream(store, "s", backwards=True) == [4, 3]
        assert await _stream(store, "s", from_version=1, limit=1) == [3]
        assert len(await store.read_all().collect()) == 4
        metadata = await store.get_stream_metadata("s")
        assert (metadata.version, metadata.truncate_before) == (4, 3)
        await store.append("s", [event()], expected_version=4)
        assert await _stream(store, "s") == [3, 4, 5]

    async def test_soft_delete(self, store: EventStore) -> None:
        await store.append("s", [event(), event()])
        with pytest.raises(ConcurrencyError):
            await store.delete_stream("s", expected_version=1)
        await store.delete_stream("s", expected_version=2)
        assert await _stream(store, "s") == []
        metadata = await store.get_stream_metadata("s")
        assert (metadata.exists, metadata.deleted, metadata.version) == (False, True, 2)
        with pytest.raises(ConcurrencyError):
            await store.append("s", [event()], expected_version=STREAM_EXISTS)
        assert len(await store.read_all().collect()) == 2
        result = await store.append("s", [event()], expected_version=NO_STREAM)
        assert result.version == 3
        assert await _stream(store, "s") == [3]
        assert (await store.get_stream_metadata("s")).exists
        await store.delete_stream("never-written")
        assert not (await store.get_stream_metadata("never-written")).exists

    # -- listing streams ---------------------------------------------------------------

    async def test_list_streams_by_name_with_what_is_cheap_to_know(self, store: EventStore) -> None:
        placed = await store.append("order-2", [event(), event(), event()])
        await store.append("order-10", [event()])
        await store.append("account-1", [event()])
        await store.set_stream_metadata("order-9", {"only": "metadata"})
        await store.truncate_before("order-2", 2)
        await store.delete_stream("account-1")
        listed = [info async for info in store.list_streams()]
        assert [info.stream for info in listed] == ["account-1", "order-10", "order-2"]
        account, _, order = listed
        assert (account.version, account.deleted, account.events) == (1, True, 0)
        assert (order.version, order.deleted, order.truncate_before) == (3, False, 2)
        assert order.events == 2
        assert order.last_position == placed.positions[-1]
        (last,) = await store.read_stream("order-2", backwards=True, limit=1).collect()
        assert order.last_recorded_at == last.recorded_at
        await store.append("account-1", [event()], expected_version=NO_STREAM)
        again = [info async for info in store.list_streams(prefix="account-")]
        assert [(i.stream, i.version, i.deleted, i.events) for i in again] == [
            ("account-1", 2, False, 1)
        ]

    async def test_list_streams_with_a_prefix_and_a_limit(self, store: EventStore) -> None:
        for name in ("a-1", "a-2", "a-3", "ab-1", "b-1"):
            await store.append(name, [event()])

        async def names(**options: Any) -> list[str]:
            return [info.stream async for info in store.list_streams(**options)]

        assert await names(prefix="a-") == ["a-1", "a-2", "a-3"]
        assert await names(prefix="a") == ["a-1", "a-2", "a-3", "ab-1"]
        assert await names(prefix="a-", limit=2) == ["a-1", "a-2"]
        assert await names(limit=1) == ["a-1"]
        assert await names(prefix="") == ["a-1", "a-2", "a-3", "ab-1", "b-1"]
        assert await names(prefix="c") == []
        assert await names(prefix="a-%") == []  # no pattern characters

    async def test_list_streams_pages_through_many_streams(self, store: EventStore) -> None:
        many = {f"s-{index:04d}": ([event()], ANY) for index in range(PAGE_SIZE + 3)}
        await store.append_many({"r-1": ([event()], ANY), **many, "t-1": ([event()], ANY)})
        listed = [info.stream async for info in store.list_streams(prefix="s-")]
        assert listed == sorted(many)
        limited = [info.stream async for info in store.list_streams(limit=PAGE_SIZE + 1)]
        assert limited == ["r-1", *sorted(many)[:PAGE_SIZE]]

    async def test_bad_list_streams_arguments_fail_at_the_call(self, store: EventStore) -> None:
        with pytest.raises(ArgumentTypeError, match="prefix"):
            store.list_streams(prefix=b"a")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="limit"):
            store.list_streams(limit=0)
        with pytest.raises(ArgumentTypeError, match="limit"):
            store.list_streams(limit=1.0)  # type: ignore[arg-type]

    # -- closing -----------------------------------------------------------------------

    async def test_a_closed_store_refuses_everything(self) -> None:
        store = await self.make_store()
        await store.append("s", [event()])
        reader = store.read_stream("s")
        listing = store.list_streams()
        await store.close()
        await store.close()  # idempotent
        assert store.closed
        assert store.statistics().closed
        assert "closed" in repr(store)
        calls: list[Callable[[], Any]] = [
            lambda: store.append("s", [event()]),
            lambda: store.append_many({"s": ([event()], ANY)}),
            lambda: store.get_stream_metadata("s"),
            lambda: store.set_stream_metadata("s", {}),
            lambda: store.truncate_before("s", 1),
            lambda: store.delete_stream("s"),
            lambda: anext(reader),
            lambda: anext(listing),
        ]
        for call in calls:
            with pytest.raises(ClosedResourceError):
                await call()
        with pytest.raises(ClosedResourceError):
            store.read_all()
        with pytest.raises(ClosedResourceError):
            store.list_streams()
        with pytest.raises(ClosedResourceError):
            async with store:
                pass

    async def test_async_with_closes(self) -> None:
        async with await self.make_store() as store:
            await store.append("s", [event()])
        assert store.closed

    # -- bad input ---------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("call", "error", "match"),
        [
            (lambda s: s.append("", [event()]), InvalidArgumentError, "stream"),
            (lambda s: s.append(3, [event()]), ArgumentTypeError, "stream must be a str"),
            (lambda s: s.append("s", event()), ArgumentTypeError, "wrap one event"),
            (lambda s: s.append("s", "abc"), ArgumentTypeError, "events"),
            (lambda s: s.append("s", [b"x"]), ArgumentTypeError, r"events\[0\] must be a NewEvent"),
            (lambda s: s.append("s", [NewEvent("", b"")]), InvalidArgumentError, "type"),
            (
                lambda s: s.append("s", [NewEvent("T", "x")]),  # type: ignore[arg-type]
                ArgumentTypeError,
                "data must be bytes",
            ),
            (
                lambda s: s.append("s", [event(), event(metadata={})]),
                ArgumentTypeError,
                r"events\[1\]\.metadata",
            ),
            (
                lambda s: s.append("s", [NewEvent("T", b"", id="x")]),  # type: ignore[arg-type]
                ArgumentTypeError,
                "uuid",
            ),
            (
                lambda s: s.append("s", [event()], expected_version=-1),
                InvalidArgumentError,
                "expected_version",
            ),
            (
                lambda s: s.append("s", [event()], expected_version="any"),
                ArgumentTypeError,
                "expected_version",
            ),
            (
                lambda s: s.append("s", [event()], expected_version=True),
                ArgumentTypeError,
                "expected_version",
            ),
            (lambda s: s.append_many({}), InvalidArgumentError, "at least one"),
            (lambda s: s.append_many([("s", [event()])]), ArgumentTypeError, "mapping"),
            (lambda s: s.append_many({"s": [event()]}), ArgumentTypeError, "tuple"),
            (lambda s: s.append_many({"": ([event()], ANY)}), InvalidArgumentError, "appends key"),
            (
                lambda s: s.append_many({"s": ([event()], -2)}),
                InvalidArgumentError,
                "expected_version",
            ),
            (lambda s: s.set_stream_metadata("s", {1: 2}), ArgumentTypeError, "metadata"),
            (lambda s: s.set_stream_metadata("s", {"x": object()}), ArgumentTypeError, "metadata"),
            (lambda s: s.truncate_before("s", -1), InvalidArgumentError, "version"),
            (lambda s: s.delete_stream("", expected_version=ANY), InvalidArgumentError, "stream"),
            (lambda s: s.get_stream_metadata(None), ArgumentTypeError, "stream"),
        ],
    )
    async def test_bad_input_is_refused_and_nothing_is_written(
        self,
        store: EventStore,
        call: Callable[[EventStore], Any],
        error: type[Exception],
        match: str,
    ) -> None:
        with pytest.raises(error, match=match):
            await call(store)
        assert await store.read_all().collect() == []
        assert (await store.get_stream_metadata("s")).custom == {}

    @pytest.mark.parametrize(
        ("options", "error", "match"),
        [
            ({"from_version": -1}, InvalidArgumentError, "from_version"),
            ({"from_version": 1.5}, ArgumentTypeError, "from_version"),
            ({"limit": 0}, InvalidArgumentError, "limit"),
            ({"limit": "2"}, ArgumentTypeError, "limit"),
            ({"backwards": 1}, ArgumentTypeError, "backwards"),
        ],
    )
    async def test_bad_read_arguments_fail_at_the_call(
        self, store: EventStore, options: dict[str, Any], error: type[Exception], match: str
    ) -> None:
        with pytest.raises(error, match=match):
            store.read_stream("s", **options)
        with pytest.raises(ArgumentTypeError, match="stream"):
            store.read_stream(b"s")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="from_position"):
            store.read_all(from_position=-1)

    async def test_an_event_id_twice_in_one_append_is_refused(self, store: EventStore) -> None:
        twin = event()
        with pytest.raises(InvalidArgumentError, match=str(twin.id)):
            await store.append("s", [twin, twin])
        with pytest.raises(InvalidArgumentError, match="twice"):
            await store.append_many({"a": ([twin], ANY), "b": ([twin], ANY)})
        assert await store.read_all().collect() == []

    # -- serialization -------------------------------------------------------------------

    async def test_json_events_round_trip_and_bad_data_names_the_event(
        self, store: EventStore
    ) -> None:
        from ...errors import SerializationError

        serializer = JsonSerializer()
        await store.append("s", [serializer.new_event({"n": 1}, type="Counted", metadata={"m": 2})])
        await store.append("s", [NewEvent("Counted", b"{not json")])
        good, bad = await store.read_stream("s").collect()
        assert serializer.decode(good) == {"n": 1}
        assert serializer.decode_metadata(good) == {"m": 2}
        with pytest.raises(SerializationError) as caught:
            serializer.decode(bad)
        assert (caught.value.stream, caught.value.position) == ("s", bad.position)

    # -- subscriptions and checkpoints -----------------------------------------------------

    async def test_a_subscription_catches_up_then_goes_live(
        self, store: EventStore, subscription_clock: VirtualClock | None
    ) -> None:
        await store.append("a", [event(), event()])
        await store.append("b", [event()])
        loop = asyncio.get_running_loop()
        async with store.subscribe(poll_interval=30) as subscription:
            caught_up = [await anext(subscription) for _ in range(3)]
            assert [(e.stream, e.version) for e in caught_up] == [("a", 1), ("a", 2), ("b", 1)]
            assert subscription.position == caught_up[-1].position
            waiting = asyncio.ensure_future(anext(subscription))
            await _until_waiting(subscription)
            started = loop.time()
            await store.append("c", [event()])
            live = await waiting
            # Woken by the append itself, long before the next poll.
            assert loop.time() - started < 10
        assert (live.stream, live.version) == ("c", 1)
        everything = await store.read_all().collect()
        assert [e.position for e in [*caught_up, live]] == [e.position for e in everything]

    async def test_subscriptions_to_a_stream_and_to_a_category(
        self, store: EventStore, subscription_clock: VirtualClock | None
    ) -> None:
        names = ["order-1", "user-1", "order", "orders-1", "order-2-x", "order-1"]
        for name in names:
            await store.append(name, [event()])

        async def first(subscription: Subscription, count: int) -> list[str]:
            async with subscription:
                return [(await anext(subscription)).stream for _ in range(count)]

        assert await first(store.subscribe(stream="order-1"), 2) == ["order-1", "order-1"]
        assert await first(store.subscribe(category="order"), 4) == [
            "order-1",
            "order",
            "order-2-x",
            "order-1",
        ]
        assert await first(store.subscribe(category="orders"), 1) == ["orders-1"]
        after = (await store.read_all().collect())[2].position
        assert await first(store.subscribe(from_position=after + 1), 3) == names[3:]

    @settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        st.lists(
            st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=5),
            min_size=1,
            max_size=3,
        ),
        st.integers(min_value=0, max_value=4),
    )
    async def test_a_subscription_under_concurrent_appends_has_no_gap_or_duplicate(
        self, subscription_clock: VirtualClock | None, writers: list[list[int]], before: int
    ) -> None:
        # Each writer appends batches to its own stream with pauses between them; the
        # subscription starts after ``before`` events, so the switch from catch-up to
        # live falls at a different place in each example.
        store = await self.make_store()
        try:
            await store.append("early", [event() for _ in range(before)])
            total = before + sum(sum(batches) for batches in writers)

            async def write(number: int, batches: list[int]) -> None:
                for batch in batches:
                    await store.append(f"writer-{number}", [event() for _ in range(batch)])
                    await asyncio.sleep(0.01 * (number + 1))

            tasks = [asyncio.ensure_future(write(n, b)) for n, b in enumerate(writers)]
            received: list[RecordedEvent] = []
            with fail_after(60):
                async with store.subscribe(poll_interval=30) as subscription:
                    async for recorded in subscription:
                        received.append(recorded)
                        if len(received) == total:
                            break
            await asyncio.gather(*tasks)
            everything = await store.read_all().collect()
            assert [e.position for e in received] == [e.position for e in everything]
        finally:
            await store.close()

    async def test_a_subscription_sees_appends_made_while_it_waits_between_polls(
        self, store: EventStore, subscription_clock: VirtualClock | None
    ) -> None:
        subscription = store.subscribe(poll_interval=timedelta(seconds=5))
        async with subscription:
            with move_on_after(0.2) as scope:
                async for _ in subscription:
                    pass
            assert scope.cancelled_caught
            assert subscription.position == 0
            await store.append("s", [event()])
            assert (await anext(subscription)).stream == "s"

    async def test_closing_a_subscription_ends_a_waiting_iteration(
        self, store: EventStore, subscription_clock: VirtualClock | None
    ) -> None:
        subscription = store.subscribe()
        assert "at position 0" in repr(subscription)
        waiting = asyncio.ensure_future(anext(subscription))
        await _until_waiting(subscription)
        assert "waiting" in repr(subscription)
        await subscription.close()
        with pytest.raises(StopAsyncIteration):
            await waiting
        assert subscription.closed
        assert "closed" in repr(subscription)
        await store.append("s", [event()])
        with pytest.raises(StopAsyncIteration):
            await anext(subscription)
        assert not store._signal._waiters

    async def test_a_cancelled_wait_loses_no_event_and_leaves_no_waiter(
        self, store: EventStore, subscription_clock: VirtualClock | None
    ) -> None:
        subscription = store.subscribe(stream="s")
        tasks_before = 0
        for attempt in range(2):
            # The store's own watcher (PostgreSQL's listening connection, a task of the
            # store until it closes) may start with the first wait: count after it.
            if attempt:
                tasks_before = len(asyncio.all_tasks())
            waiting = asyncio.ensure_future(anext(subscription))
            await _until_waiting(subscription)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        assert not store._signal._waiters
        assert len(asyncio.all_tasks()) == tasks_before
        await store.append("s", [event()])
        assert (await anext(subscription)).version == 1
        await subscription.close()

    async def test_closing_the_store_fails_its_subscriptions(
        self, subscription_clock: VirtualClock | None
    ) -> None:
        store = await self.make_store()
        subscription = store.subscribe()
        waiting = asyncio.ensure_future(anext(subscription))
        await _until_waiting(subscription)
        await store.close()
        with pytest.raises(ClosedResourceError):
            await waiting
        with pytest.raises(ClosedResourceError):
            store.subscribe()

    async def test_bad_subscription_arguments_fail_at_the_call(self, store: EventStore) -> None:
        bad: list[tuple[dict[str, Any], type[Exception], str]] = [
            ({"stream": "a", "category": "b"}, InvalidArgumentError, "not both"),
            ({"category": "a-b"}, InvalidArgumentError, "'a-b'"),
            ({"category": ""}, InvalidArgumentError, "category"),
            ({"stream": 3}, ArgumentTypeError, "stream"),
            ({"from_position": -1}, InvalidArgumentError, "from_position"),
            ({"poll_interval": 0}, InvalidArgumentError, "poll_interval"),
            ({"poll_interval": -1.0}, InvalidArgumentError, "poll_interval"),
            ({"poll_interval": "1"}, ArgumentTypeError, "poll_interval"),
        ]
        for arguments, error, text in bad:
            with pytest.raises(error, match=text):
                store.subscribe(**arguments)

    async def test_checkpoints_resume_a_subscriber_after_its_last_saved_position(
        self, store: EventStore, subscription_clock: VirtualClock | None
    ) -> None:
        checkpoints = Checkpoints(store)
        assert await checkpoints.load("mailer") == 0
        await store.append("order-1", [event() for _ in range(3)])
        handled: list[int] = []
        async with store.subscribe(from_position=await checkpoints.load("mailer") + 1) as first:
            for _ in range(2):
                recorded = await anext(first)
                handled.append(recorded.position)
                await checkpoints.save("mailer", recorded.position)
        await store.append("order-1", [event()])
        async with store.subscribe(from_position=await checkpoints.load("mailer") + 1) as again:
            handled += [(await anext(again)).position for _ in range(2)]
        assert handled == [e.position for e in await store.read_all().collect()]
        # A checkpoint is not an event, and other names are independent.
        assert await checkpoints.load("other") == 0
        assert not (await store.get_stream_metadata("$checkpoint-mailer")).exists

    async def test_bad_checkpoint_arguments_and_stored_values(self, store: EventStore) -> None:
        checkpoints = Checkpoints(store)
        assert repr(store) in repr(checkpoints)
        with pytest.raises(ArgumentTypeError, match="store"):
            Checkpoints("memory://")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="name"):
            await checkpoints.load("")
        with pytest.raises(ArgumentTypeError, match="name"):
            await checkpoints.save(1, 1)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="position"):
            await checkpoints.save("x", -1)
        await store.set_stream_metadata("$checkpoint-x", {CHECKPOINT_KEY: "7"})
        with pytest.raises(SerializationError, match="malformed checkpoint"):
            await checkpoints.load("x")

    # -- the model -------------------------------------------------------------------------

    @pytest.mark.corral_loops("asyncio")
    @settings(max_examples=30)
    @given(st.lists(_operations, max_size=14))
    async def test_operations_match_a_simple_model(self, operations: list[_Operation]) -> None:
        store = await self.make_store()
        model = _Model()
        try:
            for operation in operations:
                await model.apply(store, operation)
            everything = await store.read_all().collect()
            assert [(e.stream, e.version) for e in everything] == model.log
            for stream in _STREAMS:
                visible = list(range(model.visible_from(stream), model.versions.get(stream, 0) + 1))
                assert await _stream(store, stream) == visible
                metadata = await store.get_stream_metadata(stream)
                assert metadata.exists == model.exists(stream)
                assert metadata.version == model.versions.get(stream, 0)
        finally:
            await store.close()
