"""Acquire from a rate limit kept in Redis that never makes the caller wait; n in a row.

Any design that shares a limit through Redis in one round trip costs at least one
``EVALSHA``; the floor compares corral's acquire with redis-py running a script that
does nothing. Needs Redis (``CORRAL_REDIS_URL``, default ``redis://127.0.0.1:6379/0``);
without it the cases are reported unavailable.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from benchmarks._harness import AtMost, Case, CaseUnavailable, Workload, timed_case

if TYPE_CHECKING:
    from redis.asyncio import Redis

# High enough that no acquire of the run ever has to wait.
RATE = 1e12
TRIVIAL_SCRIPT = "return 1"


def redis_case(name: str, body: Callable[[Redis, str, int], Awaitable[object]]) -> Case:
    """A case timing ``body(client, key, n)`` on a connected client, in a fresh loop.

    Connecting, and deleting the key afterwards, are not timed.
    """

    async def timed(n: int) -> float:
        import redis.asyncio

        from corral.testing import service_url

        client = redis.asyncio.Redis.from_url(service_url("redis"))
        key = f"corral-bench:{uuid.uuid4().hex}"
        try:
            try:
                await client.ping()
            except (redis.exceptions.ConnectionError, OSError) as error:
                raise CaseUnavailable(f"Redis is not reachable ({error})") from None
            try:
                start = time.perf_counter()
                await body(client, key, n)
                return time.perf_counter() - start
            finally:
                await client.delete(key)
        finally:
            await client.aclose()

    def measure(n: int) -> float:
        with asyncio.Runner() as runner:
            return runner.run(timed(n))

    return timed_case(name, measure)


async def corral_acquire(client: Redis, key: str, n: int) -> None:
    """corral: ``await limiter.acquire()`` on ``RateLimiter(1e12, store=RedisRateLimitStore)``."""
    from corral import RateLimiter
    from corral.backends.redis import RedisRateLimitStore

    limiter = RateLimiter(RATE, store=RedisRateLimitStore(client, key))
    for _ in range(n):
        await limiter.acquire()


async def raw_evalsha(client: Redis, key: str, n: int) -> None:
    """redis-py: ``await client.evalsha(sha, 1, key)`` of ``return 1``, loaded beforehand."""
    sha = await client.script_load(TRIVIAL_SCRIPT)
    for _ in range(n):
        await client.evalsha(sha, 1, key)


CORRAL = "corral RateLimiter.acquire, Redis store"
RAW = "redis-py EVALSHA, trivial script"

WORKLOAD = Workload(
    name="redis-ratelimit",
    title="Acquire from a rate limit kept in Redis that never makes the caller wait",
    n=3_000,
    smoke_n=20,
    unit="acquires",
    baseline=RAW,
    cases=(redis_case(CORRAL, corral_acquire), redis_case(RAW, raw_evalsha)),
    floors=(AtMost(CORRAL, RAW, 1.5),),
)
