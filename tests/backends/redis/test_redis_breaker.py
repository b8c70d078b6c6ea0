"""RedisBreakerStore against a real Redis: the breaker store contract (shared with the
memory store), breakers in two clients sharing one circuit, errors at the boundary.

Each test uses its own key prefix and deletes what it wrote.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

import corral
from corral import BreakerRules, BreakerStore, CircuitState, MemoryBreakerStore
from corral.backends.redis import RedisBreakerStore
from corral.errors import BackendUnavailable, BrokenResourceError, CircuitOpenError
from corral.testing import service_url

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def rules(
    *,
    window_calls: int | None = 4,
    window_seconds: float | None = None,
    minimum_calls: int = 2,
    open_for: float = 60.0,
    probes: int = 2,
) -> BreakerRules:
    return BreakerRules(
        failure_rate=0.5,
        slow_rate=1.0,
        minimum_calls=minimum_calls,
        window_calls=None if window_seconds is not None else window_calls,
        window_seconds=window_seconds,
        open_for=open_for,
        half_open_probes=probes,
    )


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


# The contract: every breaker store follows the state machine of corral.BreakerStore.
# The memory store is synchronous and reads the caller's clock; the Redis store is a
# coroutine store on the server's clock. ``now`` here is the loop's real time, so both
# see the same durations; waits are a few tens of milliseconds.


class BreakerStoreContract:
    store: MemoryBreakerStore | RedisBreakerStore

    async def step(self, method: str, *args: object, **kwargs: object) -> Any:
        result = getattr(self.store, method)(*args, **kwargs)
        if asyncio.iscoroutine(result):
            return await result
        return result

    async def acquire(self, r: BreakerRules) -> Any:
        return await self.step("acquire", "c", r, asyncio.get_running_loop().time())

    async def record(
        self, r: BreakerRules, generation: int, *, failed: bool, slow: bool = False
    ) -> Any:
        now = asyncio.get_running_loop().time()
        return await self.step("record", "c", r, now, generation, failed=failed, slow=slow)

    async def test_a_new_circuit_is_closed_and_admits(self) -> None:
        r = rules()
        admission = await self.acquire(r)
        assert admission == (True, CLOSED, 0, 0.0)
        view = await self.step("view", "c", r, asyncio.get_running_loop().time())
        assert view == (CLOSED, 0, 0.0, 0, 0, 0)

    async def test_failures_at_the_rate_open_the_circuit(self) -> None:
        r = rules()
        assert await self.record(r, 0, failed=False) == (CLOSED, 0, 0.0, 1, 0, 0)
        opened = await self.record(r, 0, failed=True)  # 1 of 2 failed: rate 0.5
        assert opened == (OPEN, 1, 60.0, 2, 1, 0)
        admitted, state, generation, retry_after = await self.acquire(r)
        assert (admitted, state, generation) == (False, OPEN, 1)
        assert 59 < retry_after <= 60

    async def test_slow_calls_count_against_the_slow_rate(self) -> None:
        r = rules()
        await self.record(r, 0, failed=False, slow=True)
        assert (await self.record(r, 0, failed=False, slow=True))[:2] == (OPEN, 1)

    async def test_a_count_window_keeps_only_the_last_outcomes(self) -> None:
        r = rules(window_calls=3, minimum_calls=3)
        await self.record(r, 0, failed=True)
        for _ in range(3):
            view = await self.record(r, 0, failed=False)
        assert view == (CLOSED, 0, 0.0, 3, 0, 0)  # the failure left the window

    async def test_a_time_window_drops_old_outcomes(self) -> None:
        r = rules(window_seconds=0.05, minimum_calls=3)
        await self.record(r, 0, failed=True)
        await self.record(r, 0, failed=True)
        await asyncio.sleep(0.06)
        view = await self.step("view", "c", r, asyncio.get_running_loop().time())
        assert view == (CLOSED, 0, 0.0, 0, 0, 0)
        assert (await self.record(r, 0, failed=True))[3:] == (1, 1, 0)

    async def test_outcomes_of_an_older_generation_are_ignored(self) -> None:
        r = rules()
        await self.step("force", "c", r, asyncio.get_running_loop().time(), CLOSED)
        view = await self.record(r, 0, failed=True)  # admitted before the forced change
        assert view == (CLOSED, 1, 0.0, 0, 0, 0)

    async def test_after_open_for_probes_go_through_and_successes_close(self) -> None:
        r = rules(open_for=0.03, probes=2)
        await self.step("force", "c", r, asyncio.get_running_loop().time(), OPEN)
        await asyncio.sleep(0.04)
        first = await self.acquire(r)
        assert first == (True, HALF_OPEN, 2, 0.0)
        assert await self.acquire(r) == (True, HALF_OPEN, 2, 0.0)
        assert await self.acquire(r) == (False, HALF_OPEN, 2, 0.0)  # both slots taken
        assert await self.record(r, 2, failed=False) == (HALF_OPEN, 2, 0.0, 1, 0, 0)
        assert await self.record(r, 2, failed=False) == (CLOSED, 3, 0.0, 0, 0, 0)

    async def test_a_failed_probe_opens_again(self) -> None:
        r = rules(open_for=0.03, probes=2)
        await self.step("force", "c", r, asyncio.get_running_loop().time(), HALF_OPEN)
        assert (await self.acquire(r))[:3] == (True, HALF_OPEN, 1)
        view = await self.record(r, 1, failed=True)
        assert view[:2] == (OPEN, 2)
        assert view[2] == pytest.approx(0.03, abs=0.01)

    async def test_a_released_probe_frees_its_slot(self) -> None:
        r = rules(probes=1)
        await self.step("force", "c", r, asyncio.get_running_loop().time(), HALF_OPEN)
        assert (await self.acquire(r))[0] is True
        assert (await self.acquire(r))[0] is False
        await self.step("release", "c", r, 1)
        assert (await self.acquire(r))[0] is True
        await self.step("release", "c", r, 0)  # an older generation frees nothing
        assert (await self.acquire(r))[0] is False

    async def test_circuits_are_kept_apart_by_name(self) -> None:
        r = rules()
        await self.step("force", "other", r, asyncio.get_running_loop().time(), OPEN)
        assert await self.acquire(r) == (True, CLOSED, 0, 0.0)


class TestMemoryBreakerStoreContract(BreakerStoreContract):
    @pytest.fixture(autouse=True)
    def _store(self) -> None:
        self.store = MemoryBreakerStore()


@pytest.mark.redis
class TestRedisBreakerStoreContract(BreakerStoreContract):
    @pytest.fixture(autouse=True)
    def _store(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self.store = RedisBreakerStore(client, prefix)


@pytest.mark.redis
async def test_breakers_in_two_clients_share_one_circuit(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    async def failing() -> None:
        raise ConnectionError("payments are down")

    def payments(store: RedisBreakerStore) -> corral.CircuitBreaker:
        return corral.CircuitBreaker(
            "payments", store=store, window_calls=4, minimum_calls=2, open_for=60
        )

    here = payments(RedisBreakerStore(client, prefix))
    async with RedisBreakerStore(service_url("redis"), prefix) as elsewhere_store:
        elsewhere = payments(elsewhere_store)
        assert isinstance(elsewhere_store, BreakerStore)
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await here.call(failing)
        with pytest.raises(CircuitOpenError) as info:
            await elsewhere.call(failing)  # never called: the circuit is open for both
        assert 59 < info.value.retry_after <= 60
        await elsewhere.close()
        with pytest.raises(ConnectionError):
            await here.call(failing)  # closed again, for both


@pytest.mark.redis
async def test_a_client_that_decodes_replies_works_too(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    url = service_url("redis") + "?decode_responses=True"
    async with RedisBreakerStore(url, prefix) as store:
        assert await store.acquire("c", rules(), 0.0) == (True, CLOSED, 0, 0.0)
        view = await store.force("c", rules(), 0.0, OPEN)
        assert view[:2] == (OPEN, 1)


@pytest.mark.redis
async def test_keys_holding_something_else_are_a_clear_error(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    store = RedisBreakerStore(client, prefix)
    await client.hset(f"{prefix}c", mapping={"state": "ajar"})
    with pytest.raises(BrokenResourceError, match="does not hold a circuit breaker state"):
        await store.acquire("c", rules(), 0.0)
    await client.delete(f"{prefix}c")
    await client.set(f"{prefix}c", "x")
    with pytest.raises(BrokenResourceError, match="WRONGTYPE"):
        await store.view("c", rules(), 0.0)
    stats = store.statistics()
    assert (stats.operations, stats.refused, stats.unavailable) == (2, 2, 0)
    assert stats.owns_client is False


async def test_redis_down_is_backend_unavailable() -> None:
    async with RedisBreakerStore("redis://127.0.0.1:1/0") as store:
        breaker = corral.CircuitBreaker("payments", store=store)
        with pytest.raises(BackendUnavailable, match="circuit breaker prefix 'corral:breaker:'"):
            await breaker.call(asyncio.sleep, 0)
    assert repr(store) == "<RedisBreakerStore 'corral:breaker:' at 127.0.0.1:1/0>"
    assert store.prefix == "corral:breaker:"
    stats = store.statistics()
    assert stats.server == "127.0.0.1:1/0"
    assert stats.owns_client is True
    assert stats.operations == stats.unavailable >= 1
    assert stats.refused == 0
