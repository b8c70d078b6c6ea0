"""RedisRateLimitStore against a real Redis: the store contract (shared with the memory
store), several processes sharing one limit, errors at the boundary, bad input.

Each test uses its own key under a unique prefix and deletes what it wrote.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

import corral
from corral import MemoryRateLimitStore, RateLimiter
from corral.backends.redis import RedisRateLimitStore
from corral.backends.redis._client import Script
from corral.errors import (
    ArgumentTypeError,
    BackendUnavailable,
    BrokenResourceError,
    DeadlineExceeded,
    InvalidArgumentError,
)
from corral.testing import service_url

ROOT = Path(__file__).resolve().parents[3]


def unique_prefix() -> str:
    return f"corral-test:{uuid.uuid4().hex}:"


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own; the client fixture deletes its keys afterwards."""
    return unique_prefix()


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


# The contract: what every rate limit store does, whatever keeps the state. A store
# is driven through ``take`` / ``give_back`` so that a synchronous store (which reads
# the caller's clock) and an asynchronous one (which reads its own) run the same tests.
# Intervals are long (100 s a unit) so the real time a test takes does not matter.

INTERVAL = 100.0


class RateLimitStoreContract:
    async def take(self, cost: float, burst: float, interval: float = INTERVAL) -> float:
        raise NotImplementedError

    async def give_back(self, cost: float, interval: float = INTERVAL) -> None:
        raise NotImplementedError

    async def test_a_fresh_state_admits_the_burst_at_once_then_refuses(self) -> None:
        assert [await self.take(1, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
        assert await self.take(1, 3) == pytest.approx(INTERVAL, abs=1)

    async def test_a_refusal_changes_nothing(self) -> None:
        assert await self.take(2, 2) == 0.0
        assert await self.take(1, 2) == pytest.approx(INTERVAL, abs=1)
        assert await self.take(1, 2) == pytest.approx(INTERVAL, abs=1)
        assert await self.take(0.5, 2) == pytest.approx(INTERVAL / 2, abs=1)

    async def test_costs_count_units(self) -> None:
        assert await self.take(3, 5) == 0.0
        assert await self.take(3, 5) == pytest.approx(INTERVAL, abs=1)
        assert await self.take(2, 5) == 0.0
        assert await self.take(0.25, 5) == pytest.approx(INTERVAL / 4, abs=1)

    async def test_given_back_units_can_be_taken_again(self) -> None:
        assert await self.take(2, 2) == 0.0
        await self.give_back(1)
        assert await self.take(1, 2) == 0.0
        assert await self.take(1, 2) == pytest.approx(INTERVAL, abs=1)

    async def test_giving_back_more_than_was_taken_refills_only_to_the_burst(self) -> None:
        assert await self.take(1, 2) == 0.0
        await self.give_back(5)
        assert [await self.take(1, 2) for _ in range(3)] == [
            0.0,
            0.0,
            pytest.approx(INTERVAL, abs=1),
        ]

    async def test_the_state_refills_with_time(self) -> None:
        interval = 0.02
        assert await self.take(1, 1, interval) == 0.0
        wait = await self.take(1, 1, interval)
        assert 0 < wait <= interval + 1e-6
        await asyncio.sleep(wait + 0.002)
        assert await self.take(1, 1, interval) == 0.0


class TestMemoryStoreContract(RateLimitStoreContract):
    @pytest.fixture(autouse=True)
    def _store(self) -> None:
        self.store = MemoryRateLimitStore()

    async def take(self, cost: float, burst: float, interval: float = INTERVAL) -> float:
        now = asyncio.get_running_loop().time()
        return self.store.try_take(cost, now, interval, burst)

    async def give_back(self, cost: float, interval: float = INTERVAL) -> None:
        self.store.give_back(cost, interval)


@pytest.mark.redis
class TestRedisStoreContract(RateLimitStoreContract):
    @pytest.fixture(autouse=True)
    def _store(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self.store = RedisRateLimitStore(client, f"{prefix}contract")

    async def take(self, cost: float, burst: float, interval: float = INTERVAL) -> float:
        return await self.store.try_take(cost, interval, burst)

    async def give_back(self, cost: float, interval: float = INTERVAL) -> None:
        await self.store.give_back(cost, interval)


@pytest.mark.redis
async def test_two_clients_on_one_key_share_the_limit(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    key = f"{prefix}shared"
    async with RedisRateLimitStore(service_url("redis"), key) as other:
        first = RateLimiter(1, per=INTERVAL, burst=2, store=RedisRateLimitStore(client, key))
        second = RateLimiter(1, per=INTERVAL, burst=2, store=other)
        await first.acquire()
        await second.acquire()
        assert await other.try_take(1, INTERVAL, 2) == pytest.approx(INTERVAL, abs=1)
        stats = other.statistics()
        assert (stats.operations, stats.unavailable, stats.refused) == (2, 0, 0)
        assert stats.owns_client is True


@pytest.mark.redis
async def test_the_limiter_paces_waiters_through_redis(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    limiter = RateLimiter(20, burst=1, store=RedisRateLimitStore(client, f"{prefix}pace"))
    start = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        for _ in range(4):
            tg.create_task(limiter.acquire())
    elapsed = time.monotonic() - start
    stats = limiter.statistics()
    assert (stats.admitted, stats.waiting) == (4, 0)
    # Redis admitted them 50 ms apart on its clock; a busy machine only adds to that.
    assert elapsed >= 3 * 0.05 - 0.005


@pytest.mark.redis
async def test_a_wait_past_the_deadline_is_refused_at_once(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    limiter = RateLimiter(1, per=100, burst=2, store=RedisRateLimitStore(client, f"{prefix}dl"))
    await limiter.acquire(2)
    with corral.move_on_after(10):
        with pytest.raises(DeadlineExceeded, match=r"would admit cost 1 in 9\d\.\d+ s"):
            await limiter.acquire()
    assert limiter.statistics().waiting == 0


@pytest.mark.redis
async def test_the_key_expires_when_the_limit_is_idle_again(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    key = f"{prefix}ttl"
    store = RedisRateLimitStore(client, key)
    assert await store.try_take(3, 10.0, 5) == 0.0
    ttl = await client.pttl(key)
    assert 29_000 < ttl <= 30_000  # the TAT is 30 s ahead: idle again then
    await store.give_back(3, 10.0)
    assert await client.exists(key) == 0  # nothing left to remember


@pytest.mark.redis
async def test_the_state_is_the_servers_time_of_the_theoretical_arrival(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    key = f"{prefix}tat"
    store = RedisRateLimitStore(client, key)
    seconds, microseconds = await client.time()
    await store.try_take(2, 5.0, 2)
    stored = await client.get(key)
    assert stored is not None
    assert float(stored) == pytest.approx(seconds + microseconds / 1e6 + 10.0, abs=1)


@pytest.mark.redis
async def test_malformed_state_is_a_clear_error(client: redis.asyncio.Redis, prefix: str) -> None:
    key = f"{prefix}garbage"
    await client.set(key, "not a number")
    store = RedisRateLimitStore(client, key)
    with pytest.raises(BrokenResourceError, match='holds "not a number", not a rate limit') as info:
        await store.try_take(1, 1.0, 1)
    assert isinstance(info.value.__cause__, redis.exceptions.ResponseError)
    assert key in str(info.value)
    assert await client.get(key) == b"not a number"  # left as it was


@pytest.mark.redis
async def test_a_key_of_another_type_is_a_clear_error(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    key = f"{prefix}list"
    await client.rpush(key, "x")
    limiter = RateLimiter(1, store=RedisRateLimitStore(client, key))
    with pytest.raises(BrokenResourceError, match=f"rate limit key '{key}'.*WRONGTYPE"):
        await limiter.acquire()
    assert limiter.statistics().admitted == 0


@pytest.mark.redis
async def test_a_script_redis_does_not_know_is_loaded_and_run(client: redis.asyncio.Redis) -> None:
    script = Script(f"-- {uuid.uuid4().hex}\nreturn ARGV[1] .. KEYS[1]")
    assert await client.script_exists(script.sha) == [False]
    assert await script.run(client, ("key",), "the ") == b"the key"
    assert await client.script_exists(script.sha) == [True]
    assert await script.run(client, ("key",), "a ") == b"a key"


async def test_redis_down_is_backend_unavailable() -> None:
    async with RedisRateLimitStore("redis://127.0.0.1:1/0", "corral-test:down") as store:
        limiter = RateLimiter(1, store=store)
        with pytest.raises(
            BackendUnavailable, match="Redis is unavailable for rate limit key"
        ) as info:
            await limiter.acquire()
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
        with pytest.raises(BackendUnavailable):
            await store.give_back(1, 1.0)
        assert limiter.statistics().admitted == 0


async def test_repr_key_and_ownership() -> None:
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/3")
    borrowed = RedisRateLimitStore(client, "api")
    assert repr(borrowed) == "<RedisRateLimitStore 'api' at 127.0.0.1:1/3>"
    assert borrowed.key == "api"
    await borrowed.aclose()  # a borrowed client stays open: closing it is the owner's job
    assert client.connection_pool.connection_kwargs["db"] == 3
    await client.aclose()
    owned = RedisRateLimitStore("unix:///tmp/redis.sock?db=2", "api")
    assert repr(owned) == "<RedisRateLimitStore 'api' at /tmp/redis.sock/2>"
    await owned.aclose()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="key must be a str, not bytes"):
        RedisRateLimitStore("redis://127.0.0.1:6379/0", b"k")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="key must not be empty"):
        RedisRateLimitStore("redis://127.0.0.1:6379/0", "")
    with pytest.raises(ArgumentTypeError, match=r"client_or_url must be .* not int"):
        RedisRateLimitStore(6379, "k")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"not Redis \(the synchronous client\)"):
        RedisRateLimitStore(redis.Redis(), "k")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="client_or_url must be a redis:// URL"):
        RedisRateLimitStore("http://127.0.0.1", "k")


# Several processes, one limit: each child hammers the key with several tasks for
# about a second of real time and reports when each of its acquisitions was admitted.

RATE, BURST, SECONDS, CHILDREN, TASKS = 100, 10, 1.0, 3, 4

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import corral
    from corral.backends.redis import RedisRateLimitStore

    async def main(url, key, rate, burst, seconds, tasks):
        admitted = []
        async with RedisRateLimitStore(url, key) as store:
            limiter = corral.RateLimiter(rate, burst=burst, store=store)
            stop = time.time() + seconds

            async def hammer():
                while time.time() < stop:
                    await limiter.acquire()
                    admitted.append(time.time())

            with corral.move_on_after(seconds + 0.5):
                async with corral.TaskGroup() as tg:
                    for _ in range(tasks):
                        tg.start_soon(hammer)
        print(json.dumps(admitted))

    url, key, rate, burst, seconds, tasks = sys.argv[1:]
    asyncio.run(main(url, key, float(rate), float(burst), float(seconds), int(tasks)))
    """
)


@pytest.mark.redis
@pytest.mark.slow
def test_several_processes_share_one_limit() -> None:
    key = f"{unique_prefix()}processes"
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-c", CHILD, service_url("redis"), key]
    argv += [str(RATE), str(BURST), str(SECONDS), str(TASKS)]
    children = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(CHILDREN)
    ]
    times: list[float] = []
    try:
        for child in children:
            out, err = child.communicate(timeout=30)
            assert child.returncode == 0, err
            times += json.loads(out)
    finally:
        for child in children:
            child.kill()
        redis.Redis.from_url(service_url("redis")).delete(key)
    times.sort()
    elapsed = times[-1] - times[0]
    assert elapsed > 0.5  # the children overlapped for most of the second
    # GCRA over any window: at most burst + rate * window. The times are read by the
    # children after the reply, so a child that the machine stalls reads its admitted
    # requests late, bunched: each of its tasks may shift one admission into a window.
    slack = CHILDREN * TASKS
    assert len(times) <= BURST + RATE * elapsed + slack
    # and the limit was used, not just refused: the children did share it
    assert len(times) >= RATE * elapsed * 0.5
    for i, start in enumerate(times):
        for count, end in enumerate(times[i:], start=1):
            assert count <= BURST + RATE * (end - start) + slack
