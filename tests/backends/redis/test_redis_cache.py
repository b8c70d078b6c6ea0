"""RedisCacheStore against a real Redis: entries with their time left, expiry by Redis,
keys that mean the same in every process, safe serialization, and corral.cached on it.

Each test uses its own key prefix and deletes what it wrote.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

import corral
from corral import CacheEntry, CacheStore
from corral.backends.redis import JsonValueSerializer, RedisCacheStore
from corral.errors import (
    ArgumentTypeError,
    BackendUnavailable,
    BrokenResourceError,
    InvalidArgumentError,
)
from corral.testing import service_url
from corral.testing.contracts.cachestore import CacheStoreContract

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> str:
    return f"corral-test:{uuid.uuid4().hex}:"


@pytest.fixture
async def client(prefix: str) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(service_url("redis"))
    try:
        yield connection
    finally:
        keys = [key async for key in connection.scan_iter(match=f"{prefix}*")]
        if keys:
            await connection.delete(*keys)
        await connection.aclose()


@pytest.fixture
def store(client: redis.asyncio.Redis, prefix: str) -> RedisCacheStore:
    return RedisCacheStore(client, prefix)


class TestRedisCacheStoreContract(CacheStoreContract):
    """The contract every cache store passes, on Redis's clock: units of 50 ms."""

    unit = 0.05
    tolerance = 0.02  # Redis keeps time to the millisecond; a loaded machine adds some

    @pytest.fixture(autouse=True)
    def _redis(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    async def make_store(self) -> CacheStore:
        store = RedisCacheStore(self.client, self.prefix)
        assert isinstance(store, CacheStore)
        return store


async def test_redis_expires_the_entry_after_its_whole_lifetime(
    store: RedisCacheStore, client: redis.asyncio.Redis
) -> None:
    await store.set("k", CacheEntry("v", False, 60.0, 30.0))
    ttl = await client.pttl(store.redis_key("k"))
    assert 89_000 < ttl <= 90_000
    await store.set("forever", CacheEntry("v", False, math.inf))
    assert await client.pttl(store.redis_key("forever")) == -1
    entry = await store.get("forever")
    assert entry is not None
    assert (entry.fresh_for, entry.stale_for) == (math.inf, 0.0)


async def test_a_stale_entry_reports_only_stale_time(
    store: RedisCacheStore, client: redis.asyncio.Redis
) -> None:
    await store.set("k", CacheEntry("v", False, 60.0, 30.0))
    await client.pexpire(store.redis_key("k"), 10_000)  # as if 80 s had passed
    entry = await store.get("k")
    assert entry is not None
    assert entry.fresh_for == 0.0
    assert entry.stale_for == pytest.approx(10.0, abs=1)


async def test_failed_and_unencodable_values_are_declined_and_reported(
    store: RedisCacheStore, client: redis.asyncio.Redis
) -> None:
    events: list[tuple[str, dict[str, object]]] = []

    class Recorder:
        def event(self, source: object, name: str, fields: dict[str, object]) -> None:
            if source is store:
                events.append((name, fields))

    instrument = Recorder()
    corral.INSTRUMENTS.add(instrument)
    try:
        await store.set("error", CacheEntry(ValueError("no"), True, 60.0))
        await store.set("object", CacheEntry(object(), False, 60.0))
    finally:
        corral.INSTRUMENTS.remove(instrument)
    assert await store.get("error") is None
    assert await store.get("object") is None
    assert [name for name, _ in events] == ["cache_store.declined"] * 2
    assert "an exception is not shared" in str(events[0][1]["reason"])
    assert "cannot encode" in str(events[1][1]["reason"])


async def test_keys_are_json_the_same_in_every_process(store: RedisCacheStore, prefix: str) -> None:
    assert store.redis_key("k") == f'{prefix}"k"'
    assert store.redis_key((1, "a", None)) == f'{prefix}[1,"a",null]'
    # frozensets (keyword arguments in default keys) are sorted, whatever the hash seed
    assert store.redis_key(frozenset({"b", "a", "c"})) == f'{prefix}["a","b","c"]'
    with pytest.raises(ArgumentTypeError, match=r"cannot be stored in Redis.*pass key="):
        store.redis_key((object(),))


async def test_delete_and_clear_touch_only_this_prefix(
    store: RedisCacheStore, client: redis.asyncio.Redis, prefix: str
) -> None:
    other = RedisCacheStore(client, prefix + "other*")
    for key in ("a", "b"):
        await store.set(key, CacheEntry(key, False, 60.0))
    await other.set("a", CacheEntry("kept", False, 60.0))
    assert await store.delete("a") is True
    assert await store.delete("a") is False
    await other.clear()  # the * in its prefix is a character, not a pattern
    assert await store.get("b") is not None
    assert await other.get("a") is None
    await other.set("a", CacheEntry("kept", False, 60.0))
    await store.clear()  # its prefix is a prefix of the other's: both go
    assert await store.get("b") is None
    assert [key async for key in client.scan_iter(match=f"{prefix}*")] == []


async def test_a_typed_serializer_decodes_into_the_type(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    @dataclasses.dataclass
    class User:
        name: str
        ids: list[int]

    store = RedisCacheStore(client, prefix, serializer=JsonValueSerializer(User))
    await store.set(7, CacheEntry(User("Ada", [1]), False, 60.0))
    entry = await store.get(7)
    assert entry is not None
    assert entry.value == User("Ada", [1])
    assert repr(JsonValueSerializer(User)).startswith("<JsonValueSerializer type=")


async def test_data_the_store_did_not_write_is_a_clear_error(
    store: RedisCacheStore, client: redis.asyncio.Redis, prefix: str
) -> None:
    await client.set(store.redis_key("k"), b"\x80\x04pickled")
    with pytest.raises(BrokenResourceError, match="which this store cannot read"):
        await store.get("k")
    typed = RedisCacheStore(client, prefix, serializer=JsonValueSerializer(int))
    await store.set("text", CacheEntry("not an int", False, 60.0))
    with pytest.raises(BrokenResourceError, match="Expected `int`, got `str`"):
        await typed.get("text")


async def test_cached_functions_in_two_processes_share_entries(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    calls: list[int] = []

    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    first = corral.cached(ttl=60, store=RedisCacheStore(client, prefix))(square)
    async with RedisCacheStore(service_url("redis"), prefix) as elsewhere:
        second = corral.cached(ttl=60, store=elsewhere)(square)
        assert await first(3) == 9
        assert await second(3) == 9  # another client, as another process would have
        assert await second(4) == 16
        assert await first(4) == 16
        await second.aclose()
    await first.aclose()
    assert calls == [3, 4]


async def test_redis_down_is_backend_unavailable() -> None:
    async with RedisCacheStore("redis://127.0.0.1:1/0", "corral-test:") as store:
        with pytest.raises(BackendUnavailable, match="cache prefix 'corral-test:'"):
            await store.get("k")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="serializer must have encode"):
        RedisCacheStore("redis://127.0.0.1:1/0", "p", serializer=object())  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="prefix must be a str"):
        RedisCacheStore("redis://127.0.0.1:1/0", 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="decode_responses=False"):
        RedisCacheStore("redis://127.0.0.1:1/0?decode_responses=True", "p")
    store = RedisCacheStore("redis://127.0.0.1:1/4", "users:")
    assert repr(store) == "<RedisCacheStore 'users:' at 127.0.0.1:1/4>"
    assert store.prefix == "users:"
