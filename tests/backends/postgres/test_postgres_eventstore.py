"""The PostgreSQL engine: the event-store contract, global order, errors, concurrency.

Every store lives in a fresh schema of the test database, dropped after its test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from pg_schemas import URL, drop_schemas, new_schema

import corral
from corral.backends.postgres import PostgresEventStore
from corral.backends.postgres._connections import Connections
from corral.backends.postgres._schema import SCHEMA_VERSION
from corral.errors import (
    ArgumentTypeError,
    BackendUnavailable,
    ConcurrencyError,
    DuplicateError,
    InvalidArgumentError,
    SerializationError,
)
from corral.eventsourcing import ANY, EventStore, NewEvent
from corral.testing.contracts.eventstore import EventStoreContract, event

pytestmark = pytest.mark.postgres

#: The database the tests use (trust authentication), unless CORRAL_POSTGRES_URL says.
OpenStore = Callable[[], Awaitable[PostgresEventStore]]


@pytest.fixture
async def open_store() -> AsyncIterator[OpenStore]:
    """Opens stores, each in a new schema; the schemas are dropped after the test."""
    schemas: list[str] = []
    stores: list[PostgresEventStore] = []

    async def open_one() -> PostgresEventStore:
        schemas.append(new_schema())
        stores.append(await PostgresEventStore.open(URL, schema=schemas[-1]))
        return stores[-1]

    try:
        yield open_one
    finally:
        for store in stores:
            await store.close()
        await drop_schemas(schemas)


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _remember_opener(self, open_store: OpenStore) -> None:
        self.open_store = open_store

    async def make_store(self) -> EventStore:
        return await self.open_store()

    @pytest.fixture
    def subscription_clock(self) -> None:
        # Waits on the server's socket do not hold the virtual clock: real time.
        return None


# -- global order: a transaction held open while others commit ----------------------------


async def _held_append(connection: asyncpg.Connection, schema: str, event: NewEvent) -> None:
    """Append ``event`` to stream "late" through the store's function, leaving it uncommitted."""
    await connection.execute("BEGIN")
    await connection.fetch(
        f"SELECT * FROM {schema}.append_to_streams($1, $2, $3, $4, $5, $6, $7, $8)",
        ["late"],
        [-1],
        [1],
        [event.id],
        [event.type],
        [event.content_type],
        [event.data],
        [event.metadata],
    )


async def _poll(store: EventStore, seen: list[int], want: int) -> None:
    """Read ``read_all`` from the last position seen until ``want`` events are seen."""
    with corral.fail_after(10):
        while len(seen) < want:
            start = seen[-1] + 1 if seen else 0
            seen.extend([e.position async for e in store.read_all(from_position=start)])
            await asyncio.sleep(0.005)


async def test_a_reader_never_skips_a_transaction_that_commits_late(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    await store.append("early", [event()])
    held = await asyncpg.connect(URL)
    try:
        late = event()
        await _held_append(held, store.schema, late)
        after = [await store.append(f"after-{k}", [event()]) for k in range(5)]
        # Five appends committed after the held one started: none may be returned yet,
        # since the held transaction could still commit below their positions.
        seen: list[int] = []
        await _poll(store, seen, 1)
        for _ in range(5):
            await asyncio.sleep(0.01)
            await _poll(store, seen, len(seen))
            seen.extend([e.position async for e in store.read_all(from_position=seen[-1] + 1)])
        assert len(seen) == 1
        await held.execute("COMMIT")
    finally:
        await held.close()
    await _poll(store, seen, 7)
    everything = await store.read_all().collect()
    assert [e.position for e in everything] == seen
    assert [e.stream for e in everything] == ["early", "late"] + [f"after-{k}" for k in range(5)]
    assert everything[1].id == late.id
    assert [e.position for e in everything[2:]] == [r.positions[0] for r in after]


async def _wait_until_blocked(admin: asyncpg.Connection, schema: str) -> list[int]:
    """Wait until backends of the store in ``schema`` wait for a lock; their pids."""
    with corral.fail_after(10):
        while not (
            pids := await admin.fetchval(
                "SELECT array_agg(pid) FROM pg_stat_activity "
                "WHERE application_name = $1 AND wait_event_type = 'Lock'",
                f"corral {schema}",
            )
        ):
            await asyncio.sleep(0.005)
    return list(pids)


@pytest.mark.parametrize("other_stream", [True, False])
async def test_one_event_racing_a_commit_of_its_id_is_decided_by_the_general_function(
    open_store: OpenStore, other_stream: bool
) -> None:
    # The id is not yet visible when the single-event function checks for it, so its
    # insert waits on the id's index entry and fails once the other append commits:
    # the general function then finds the id stored. (For the same stream, the stream
    # lock makes it wait before the check, which then sees the id.)
    store = await open_store()
    held, admin = await asyncpg.connect(URL), await asyncpg.connect(URL)
    try:
        late = event()
        await _held_append(held, store.schema, late)
        stream = "elsewhere" if other_stream else "late"
        racing = asyncio.ensure_future(store.append(stream, [late]))
        await _wait_until_blocked(admin, store.schema)
        await held.execute("COMMIT")
        if other_stream:
            with pytest.raises(DuplicateError, match="late"):
                await racing
        else:
            assert (await racing).version == 1  # the retry of a stored append
    finally:
        await held.close()
        await admin.close()
    assert [e.stream for e in await store.read_all().collect()] == ["late"]
    assert store.statistics().events_appended == 0


async def test_an_unrelated_transaction_held_open_does_not_hold_readers_back(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    unrelated = await asyncpg.connect(URL)
    try:
        await unrelated.execute("BEGIN")
        assert await unrelated.fetchval("SELECT pg_current_xact_id()")  # it writes
        await store.append("s", [event()])
        assert [e.stream for e in await store.read_all().collect()] == ["s"]
        await unrelated.execute("ROLLBACK")
    finally:
        await unrelated.close()


async def test_a_transaction_rolled_back_leaves_a_gap_that_readers_pass(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    held = await asyncpg.connect(URL)
    try:
        await _held_append(held, store.schema, event())
        await store.append("after", [event()])
        assert await store.read_all().collect() == []
        await held.execute("ROLLBACK")
    finally:
        await held.close()
    seen: list[int] = []
    await _poll(store, seen, 1)
    assert [e.stream for e in await store.read_all().collect()] == ["after"]
    assert (await store.get_stream_metadata("late")).version == 0


# -- concurrency and cancellation ------------------------------------------------------


async def test_concurrent_tasks_keep_versions_and_global_order(open_store: OpenStore) -> None:
    store = await open_store()
    acknowledged: list[tuple[str, int, int]] = []

    async def appender(name: int) -> None:
        for index in range(15):
            stream = f"shared-{index % 3}"
            while True:
                version = (await store.get_stream_metadata(stream)).version
                try:
                    result = await store.append(stream, [event()], expected_version=version)
                except ConcurrencyError as error:
                    assert error.stream == stream
                    continue
                acknowledged.append((stream, result.version, result.positions[0]))
                break
            await store.append_many({f"own-{name}": ([event()], index), "common": ([event()], ANY)})

    async with corral.TaskGroup() as group:
        for name in range(8):
            group.create_task(appender(name))
    everything = await store.read_all().collect()
    assert len(everything) == 8 * 15 * 3
    found = {(e.stream, e.version): e.position for e in everything}
    assert all(found[stream, version] == position for stream, version, position in acknowledged)
    for stream in {e.stream for e in everything}:
        versions = [e.version for e in everything if e.stream == stream]
        assert versions == list(range(1, len(versions) + 1))  # global order agrees


async def test_a_cancelled_append_is_whole_or_absent_and_safe_to_retry(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    for attempt in range(20):
        events = [event() for _ in range(3)]
        task = asyncio.create_task(store.append(f"s-{attempt}", events))
        await asyncio.sleep(attempt * 0.0005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        versions = [e.version for e in await store.read_stream(f"s-{attempt}").collect()]
        assert versions in ([], [1, 2, 3])
        result = await store.append(f"s-{attempt}", events)  # the retry
        assert result.version == 3
    assert len(await store.read_all().collect()) == 60


# -- errors ------------------------------------------------------------------------------


async def test_a_dead_database_is_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1\b") as caught:
        await PostgresEventStore.open("postgresql://127.0.0.1:1/test")
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(BackendUnavailable) as caught:
        await corral.connect("postgresql://127.0.0.1:1/test")
    assert not isinstance(caught.value, asyncpg.PostgresError | asyncpg.InterfaceError)


async def test_a_connection_lost_mid_append_is_backend_unavailable(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    await store.append("s", [event()])
    admin = await asyncpg.connect(URL)
    try:
        await admin.execute("BEGIN")
        await admin.execute(f"SELECT {store.schema}.lock_streams($1)", ["s"])
        blocked = asyncio.create_task(store.append("s", [event()]))
        for pid in await _wait_until_blocked(admin, store.schema):
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(BackendUnavailable) as caught:
            await blocked
        assert isinstance(caught.value.__cause__, asyncpg.PostgresError | asyncpg.InterfaceError)
        await admin.execute("ROLLBACK")
    finally:
        await admin.close()
    # The pool replaces the lost connection; the failed append wrote nothing.
    assert [e.version for e in await store.read_stream("s").collect()] == [1]


async def test_malformed_stored_data_names_stream_and_position(open_store: OpenStore) -> None:
    store = await open_store()
    await store.append("good", [event()])
    (bad,) = (await store.append("bad", [event()])).positions
    await store.append("good", [event()])
    admin = await asyncpg.connect(URL)
    try:
        await admin.execute(f"ALTER TABLE {store.schema}.events ALTER COLUMN type DROP NOT NULL")
        await admin.execute(f"UPDATE {store.schema}.events SET type = NULL WHERE stream = 'bad'")
    finally:
        await admin.close()
    with pytest.raises(SerializationError) as caught:
        await store.read_stream("bad").collect()
    assert (caught.value.stream, caught.value.position) == ("bad", bad)
    assert "type" in str(caught.value)
    with pytest.raises(SerializationError):
        await store.read_all().collect()
    assert [e.version for e in await store.read_stream("good").collect()] == [1, 2]
    assert len(await store.read_all(from_position=bad + 1).collect()) == 1


async def test_a_schema_of_another_version_is_refused(open_store: OpenStore) -> None:
    store = await open_store()
    admin = await asyncpg.connect(URL)
    try:
        await admin.execute(f"UPDATE {store.schema}.schema_version SET version = 99")
    finally:
        await admin.close()
    with pytest.raises(BackendUnavailable, match="version 99"):
        await PostgresEventStore.open(URL, schema=store.schema)


async def test_reopening_a_schema_keeps_its_events(open_store: OpenStore) -> None:
    store = await open_store()
    await store.append("s", [event()])
    again = await PostgresEventStore.open(URL, schema=store.schema)
    try:
        assert [e.version for e in await again.read_stream("s").collect()] == [1]
        assert store.schema in repr(again)
    finally:
        await again.close()


async def test_without_create_only_an_existing_store_opens(open_store: OpenStore) -> None:
    store = await open_store()
    await store.append("s", [event()])
    again = await PostgresEventStore.open(URL, schema=store.schema, create=False)
    try:
        assert len(await again.read_stream("s").collect()) == 1
    finally:
        await again.close()
    absent = new_schema()
    with pytest.raises(BackendUnavailable, match=f"no corral event store in schema '{absent}'"):
        await PostgresEventStore.open(URL, schema=absent, create=False)
    admin = await asyncpg.connect(URL)
    try:
        assert not await admin.fetchval(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", absent
        )
    finally:
        await admin.close()


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"dsn": b"postgresql://"}, ArgumentTypeError, "dsn must be a str"),
        ({"schema": "Bad-Name"}, InvalidArgumentError, "schema"),
        ({"schema": ""}, InvalidArgumentError, "schema"),
        ({"max_size": 0}, InvalidArgumentError, "max_size"),
        ({"create": "no"}, ArgumentTypeError, "create must be a bool"),
    ],
)
async def test_bad_arguments_are_refused(
    arguments: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await PostgresEventStore.open(**{"dsn": URL, **arguments})


# -- one statement per append; upgrading an older schema ---------------------------------


async def _statements(store: PostgresEventStore, body: Awaitable[Any]) -> list[str]:
    """The statements the store sends while ``body`` runs (on its pool of one connection)."""
    sent: list[str] = []
    async with store._connections.lease() as proxy:
        connection = proxy._con
    assert connection is not None

    def log(record: Any) -> None:
        sent.append(record.query)

    connection.add_query_logger(log)
    try:
        with contextlib.suppress(ConcurrencyError, DuplicateError):
            await body
        for _ in range(3):
            await asyncio.sleep(0)  # the driver calls loggers soon, not at once
    finally:
        connection.remove_query_logger(log)
    return sent


async def test_an_append_a_conflict_and_a_retry_are_one_statement_each() -> None:
    schema = new_schema()
    store = await PostgresEventStore.open(URL, schema=schema, max_size=1)
    try:
        # the driver learns the types of both functions once
        await store.append("warm-up", [event()])
        await store.append("warm-up", [event(), event()])
        first = [event(), event()]
        append = f"SELECT * FROM {schema}.append_to_streams("
        one = f'SELECT version, "position" FROM {schema}.append_one('
        sent = [
            await _statements(store, store.append("s", first, expected_version=0)),
            await _statements(store, store.append("s", [event()], expected_version=0)),
            await _statements(store, store.append("s", first, expected_version=0)),  # a retry
            await _statements(store, store.append("s", first[:1], expected_version=2)),
            await _statements(store, store.append("s", [event()], expected_version=2)),
        ]
        kinds = [
            ["general" if q.startswith(append) else "one" if q.startswith(one) else q for q in s]
            for s in sent
        ]
        # An append of several events, a conflict, a retry: one statement each. One
        # event: one statement when it appends or conflicts; when the id is stored (a
        # retry, a duplicate) it writes nothing, and the general function decides.
        assert kinds == [
            ["general"],
            ["one"],
            ["general"],
            ["one", "general"],
            ["one"],
        ]
        # A retry and a new append together: the second call appends the new part.
        both = store.append_many({"s": (first, ANY), "t": ([event()], 0)})
        assert [query.startswith(append) for query in await _statements(store, both)] == [
            True,
            True,
        ]
        versions = {(e.stream, e.version) for e in await store.read_all().collect()}
        assert versions == {("warm-up", 1), ("warm-up", 2), ("warm-up", 3)} | {
            ("s", 1),
            ("s", 2),
            ("s", 3),
            ("t", 1),
        }
        assert store.statistics().conflicts == 1
    finally:
        await store.close()
        await drop_schemas([schema])


@pytest.mark.parametrize(
    ("version", "function"),
    [(1, "append_events"), (2, "append_to_streams"), (3, "append_to_streams")],
)
async def test_an_older_schema_is_upgraded_in_place(
    open_store: OpenStore, version: int, function: str
) -> None:
    store = await open_store()
    kept = await store.append("s", [event()])
    admin = await asyncpg.connect(URL)
    try:
        # Make it look older: version 1 called its append function append_events (other
        # columns, same role); version 2 had this one's, without notifications.
        # Neither had append_one.
        await admin.execute(f"DROP FUNCTION {store.schema}.append_one")
        if function != "append_to_streams":
            await admin.execute(
                f"ALTER FUNCTION {store.schema}.append_to_streams RENAME TO {function}"
            )
        await admin.execute(f"UPDATE {store.schema}.schema_version SET version = $1", version)
        again = await PostgresEventStore.open(URL, schema=store.schema)
        try:
            functions = await admin.fetch(
                "SELECT proname FROM pg_proc WHERE pronamespace = $1::regnamespace",
                store.schema,
            )
            assert sorted(row[0] for row in functions) == [
                "append_one",
                "append_to_streams",
                "lock_streams",
            ]
            stored = await admin.fetchval(f"SELECT version FROM {store.schema}.schema_version")
            assert stored == SCHEMA_VERSION
            assert (await again.append("s", [event()], expected_version=1)).version == 2
            assert (await again.read_stream("s").collect())[0].position == kept.positions[0]
        finally:
            await again.close()
    finally:
        await admin.close()


# -- notifications: a listening connection per store, notified only while it listens -----


def _listener_of(store: PostgresEventStore) -> Any:
    return store._listener


async def _until_listening(store: PostgresEventStore) -> None:
    with corral.fail_after(30):
        while not _listener_of(store).statistics().listening:
            await asyncio.sleep(0.01)


async def _first_payload_after(admin: asyncpg.Connection, store: PostgresEventStore) -> str:
    """Append through ``store``, then notify a marker: the first payload ``admin`` gets.

    Notifications reach a listener in commit order, so an empty payload first means the
    append notified, and the marker first means it did not.
    """
    channel = f"corral_{store.schema}"
    payloads: asyncio.Queue[str] = asyncio.Queue()
    await admin.add_listener(channel, lambda *args: payloads.put_nowait(args[3]))
    try:
        await store.append("s", [event()])
        await admin.execute("SELECT pg_notify($1, 'marker')", channel)
        with corral.fail_after(30):
            first = await payloads.get()
    finally:
        await admin.reset()
    return first


async def test_appends_notify_only_while_a_store_listens(open_store: OpenStore) -> None:
    writer = await open_store()
    reader = await PostgresEventStore.open(URL, schema=writer.schema)
    admin = await asyncpg.connect(URL)
    try:
        assert await _first_payload_after(admin, writer) == "marker"  # nobody listens
        (stored,) = await writer.read_all().collect()
        later = stored.position + 1
        async with reader.subscribe(from_position=later, poll_interval=3600) as subscription:
            waiting = asyncio.ensure_future(anext(subscription))
            await _until_listening(reader)
            assert await _first_payload_after(admin, writer) == ""
            with corral.fail_after(30):
                assert (await waiting).stream == "s"
        statistics = _listener_of(reader).statistics()
        assert statistics.connects == 1
        assert statistics.notifications >= 1
        assert "listening" in repr(_listener_of(reader))
        await reader.close()
        assert not _listener_of(reader).statistics().listening
        assert await _first_payload_after(admin, writer) == "marker"  # nobody listens again
    finally:
        await admin.close()
        await reader.close()


async def test_a_lost_listening_connection_is_opened_again_and_misses_nothing(
    open_store: OpenStore,
) -> None:
    writer = await open_store()
    reader = await PostgresEventStore.open(URL, schema=writer.schema)
    admin = await asyncpg.connect(URL)
    try:
        async with reader.subscribe(poll_interval=3600) as subscription:
            first = asyncio.ensure_future(anext(subscription))
            await _until_listening(reader)
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                f"corral {writer.schema} listener",
            )
            assert killed == 1
            # Appended while the listener may be down: found by the read after reconnecting.
            await writer.append("s", [event()])
            with corral.fail_after(30):
                assert (await first).version == 1
                await writer.append("s", [event()])
                assert (await anext(subscription)).version == 2
        with corral.fail_after(30):
            while _listener_of(reader).statistics().connects < 2:
                await asyncio.sleep(0.01)
        assert _listener_of(reader).statistics().failures >= 1
    finally:
        await admin.close()
        await reader.close()


async def test_closing_the_store_closes_its_listening_connection(open_store: OpenStore) -> None:
    store = await open_store()
    async with store.subscribe(poll_interval=3600) as subscription:
        waiting = asyncio.ensure_future(anext(subscription))
        await _until_listening(store)
        waiting.cancel()
    await store.close()
    admin = await asyncpg.connect(URL)
    try:
        with corral.fail_after(30):
            while await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                f"corral {store.schema} listener",
            ):
                await asyncio.sleep(0.01)
    finally:
        await admin.close()


async def test_a_connection_in_use_while_the_store_closes_goes_back_to_the_pool() -> None:
    pool = await asyncpg.create_pool(URL, min_size=1, max_size=2)
    connections = Connections(pool)
    async with connections.lease():
        pass  # kept idle
    in_use = await connections.take()
    closing = asyncio.ensure_future(connections.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # the pool waits for the connection in use
    await connections.give_back(in_use, clean=True)
    with corral.fail_after(30):
        await closing
