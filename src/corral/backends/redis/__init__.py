"""Redis stores: state shared by every process that points at the same Redis keys.

Needs redis-py (``pip install 'corral[redis]'``); nothing else in corral imports it.
Each store takes a ``redis.asyncio.Redis`` client (borrowed: you close it) or a URL such
as ``"redis://127.0.0.1:6379/0"`` (the store opens a client and ``aclose()`` closes it).
Errors from Redis come out as corral errors: an unreachable server as
:class:`~corral.errors.BackendUnavailable`, a key holding something the store did not
write as :class:`~corral.errors.BrokenResourceError`; the redis-py error is the cause.
"""

from ._breaker import RedisBreakerStore as RedisBreakerStore
from ._cache import RedisCacheStore as RedisCacheStore
from ._client import RedisStoreStatistics as RedisStoreStatistics
from ._ratelimit import RedisRateLimitStore as RedisRateLimitStore
from ._serializer import JsonValueSerializer as JsonValueSerializer
from ._serializer import ValueSerializer as ValueSerializer

__all__ = (
    "JsonValueSerializer",
    "RedisBreakerStore",
    "RedisCacheStore",
    "RedisRateLimitStore",
    "RedisStoreStatistics",
    "ValueSerializer",
)
