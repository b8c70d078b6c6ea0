"""RedisRateLimitStore: one GCRA state in Redis, shared by every process using the key."""

from __future__ import annotations

from typing import cast

import redis.asyncio

from ._client import RedisStore, Script, key_arg

__all__ = ("RedisRateLimitStore",)

# The GCRA step on one key, atomic because Redis runs a script alone. The key holds the
# theoretical arrival time (TAT) in seconds of the Redis server's clock (TIME), written
# with all 17 digits (about 0.2 us of resolution at today's clock), and expires when the
# TAT passes (the limit is idle again; at least a millisecond on). With a
# burst (ARGV[3]) it takes ARGV[1] units or returns the seconds to wait; without one it
# gives ARGV[1] units back. Replies are strings: Redis would truncate a Lua number.
_GCRA = Script(
    """
local function ttl(tat, now)
    return math.max(1, math.ceil((tat - now) * 1000))
end
local key = KEYS[1]
local cost = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = now
local stored = redis.call('GET', key)
if stored then
    local value = tonumber(stored)
    if value == nil then
        return redis.error_reply('CORRAL_BAD_STATE the key ' .. key .. ' holds ' ..
            string.format('%q', string.sub(stored, 1, 40)) ..
            ', not a rate limit state (a number); delete it or use another key')
    end
    if value > now then
        tat = value
    end
end
if ARGV[3] == nil then
    tat = tat - cost * interval
    if tat > now then
        redis.call('SET', key, string.format('%.17g', tat), 'PX', ttl(tat, now))
    else
        redis.call('DEL', key)
    end
    return '0'
end
tat = tat + cost * interval
local wait = tat - tonumber(ARGV[3]) * interval - now
if wait > 0.000001 then
    return string.format('%.17g', wait)
end
redis.call('SET', key, string.format('%.17g', tat), 'PX', ttl(tat, now))
return '0'
"""
)


class RedisRateLimitStore(RedisStore):
    """A rate limit kept in Redis, shared by every limiter (in any process) using ``key``.

    An :class:`~corral.AsyncRateLimitStore`: pass it to :class:`~corral.RateLimiter`, and
    limiters in several processes, on several machines, admit at most ``burst + rate * w
    / per`` units together over any window of ``w`` seconds::

        limiter = corral.RateLimiter(100, store=RedisRateLimitStore(url, "api:github"))

    Each :meth:`try_take` is one round trip: a Lua script (run by SHA1 with ``EVALSHA``,
    loaded again on ``NOSCRIPT``) that reads the Redis server's clock (``TIME``), applies
    the GCRA step to the theoretical arrival time stored at ``key`` and answers with the
    wait, atomically. The server's clock is the one every process agrees on; the
    processes' own clocks only time their local waits. The key expires once the limit is
    idle again, so an idle limit leaves nothing in Redis. Limiters with different rates
    may share a key; each applies its own rate and burst to the shared state.

    Cancellation: a call cancelled while its round trip is in flight may or may not have
    taken the units (redis-py drops the connection); see :meth:`corral.RateLimiter.acquire`.

    Thread-safety: like the redis-py asyncio client it uses, use it from one event loop.

    Args:
        client_or_url: a ``redis.asyncio.Redis`` client, borrowed (you close it), or a URL
            (``"redis://host:6379/0"``) for a client the store opens and :meth:`aclose`
            closes.
        key: the Redis key that holds the state; every limiter sharing the limit uses it.

    Raises:
        ArgumentTypeError: ``client_or_url`` is neither a client nor a string, or ``key``
            is not a string.
        InvalidArgumentError: ``key`` is empty, or the URL cannot be parsed.
    """

    __slots__ = ("_key", "_keys")

    def __init__(self, client_or_url: redis.asyncio.Redis | str, key: str) -> None:
        self._key = key_arg(key)
        self._keys = (self._key,)
        super().__init__(client_or_url, f"rate limit key {key!r}")

    @property
    def key(self) -> str:
        """The Redis key that holds the state."""
        return self._key

    async def try_take(self, cost: float, interval: float, burst: float) -> float:
        """Admit ``cost`` units now if the limit allows it, in one round trip.

        Returns:
            ``0.0`` if admitted, else the seconds until ``cost`` units could be admitted
            (the state is unchanged).

        Raises:
            BackendUnavailable: Redis could not be reached.
            BrokenResourceError: ``key`` holds something other than this store's state.
        """
        with self._errors:
            answer = await _GCRA.run(self._client, self._keys, cost, interval, burst)
        return float(cast(bytes, answer))  # the script replies with a number's text

    async def give_back(self, cost: float, interval: float) -> None:
        """Return ``cost`` admitted units that were never used, in one round trip.

        Raises:
            BackendUnavailable: Redis could not be reached.
            BrokenResourceError: ``key`` holds something other than this store's state.
        """
        with self._errors:
            await _GCRA.run(self._client, self._keys, cost, interval)

    def __repr__(self) -> str:
        return f"<RedisRateLimitStore {self._key!r} at {self._where()}>"
