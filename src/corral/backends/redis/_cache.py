"""RedisCacheStore: the entries of one cached function in Redis, expired by Redis."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, cast

import msgspec
import redis.asyncio

from ..._core._hooks import INSTRUMENTS
from ...errors import ArgumentTypeError, BrokenResourceError, InvalidArgumentError
from ...optimize._cache import _KEYWORDS
from ...optimize._cache_store import CacheEntry
from ._client import RedisStore, Script, key_arg
from ._serializer import JsonValueSerializer, ValueSerializer

__all__ = ("RedisCacheStore",)

# The value and the milliseconds it has left, read together (a key could expire between
# a GET and a PTTL sent one after the other).
_READ = Script(
    """
local value = redis.call('GET', KEYS[1])
if not value then
    return false
end
return {value, redis.call('PTTL', KEYS[1])}
"""
)

# A stored value is this header, the seconds it may be served stale, a newline, then
# the serializer's bytes.
_HEADER = b"corral-cache:1 "
_KEY_ENCODER = msgspec.json.Encoder()


class RedisCacheStore(RedisStore):
    """The entries of one :func:`corral.cached` function, kept in Redis.

    A :class:`~corral.CacheStore`: ``corral.cached(ttl=60, store=RedisCacheStore(url,
    "users:"))`` shares one cache between every process that uses the prefix, and Redis
    forgets each entry when its time is up (``ttl`` plus ``stale_while_revalidate``;
    entries without ``ttl`` never expire). Each method is one round trip.

    Keys: each key is stored as ``prefix`` followed by the key in JSON (the default key
    of ``f(1, "a")`` is ``prefix[1,"a"]``; keyword arguments are sorted by name), so keys
    must be made of what JSON can encode: strings, numbers, booleans, ``None``, and
    tuples and frozensets of them. For other arguments pass ``key=`` to ``cached``.

    Values go through ``serializer``, JSON by default. A shared store must not decode
    with ``pickle``: anyone who can write to the Redis could then run code in every
    process that reads it. A value the serializer cannot encode, and every cached
    exception (negative caching), is not stored, so the call is made again next time;
    the store reports each such value to instruments as a ``cache_store.declined``
    event.

    Cancellation: a call cancelled during its round trip may or may not have reached
    Redis; each is one atomic command or script, so it happened completely or not at all.

    Thread-safety: like the redis-py asyncio client it uses, use it from one event loop.

    Args:
        client_or_url: a ``redis.asyncio.Redis`` client, borrowed (you close it), or a URL
            for a client the store opens and :meth:`aclose` closes.
        prefix: put before every key; one prefix per cached function (:meth:`clear`
            deletes every key that starts with it).
        serializer: turns values into bytes and back; a :class:`JsonValueSerializer` if
            ``None``.

    Raises:
        ArgumentTypeError: an argument has the wrong type.
        InvalidArgumentError: ``prefix`` is empty, the URL cannot be parsed, or the
            client decodes replies to ``str`` (``decode_responses=True``).
    """

    __slots__ = ("_prefix", "_serializer")

    def __init__(
        self,
        client_or_url: redis.asyncio.Redis | str,
        prefix: str,
        *,
        serializer: ValueSerializer | None = None,
    ) -> None:
        self._prefix = key_arg(prefix, "prefix")
        if serializer is None:
            serializer = JsonValueSerializer()
        elif not isinstance(serializer, ValueSerializer):
            raise ArgumentTypeError(
                "serializer must have encode(value) -> bytes and decode(bytes) methods, "
                f"not {type(serializer).__name__} ({serializer!r})"
            )
        self._serializer = serializer
        super().__init__(client_or_url, f"cache prefix {prefix!r}")
        if self._client.connection_pool.connection_kwargs.get("decode_responses"):
            raise InvalidArgumentError(
                "client_or_url must be a client that returns bytes (decode_responses=False): "
                "cached values are the serializer's bytes"
            )

    @property
    def prefix(self) -> str:
        """What every key of this store starts with."""
        return self._prefix

    def redis_key(self, key: Hashable) -> str:
        """The Redis key that holds the entry for ``key``.

        Raises:
            ArgumentTypeError: ``key`` holds something JSON cannot encode.
        """
        try:
            text = _KEY_ENCODER.encode(_canonical(key))
        except TypeError as error:
            raise ArgumentTypeError(
                f"cache key {key!r} cannot be stored in Redis ({error}); pass key= to "
                "cached() to build a key of strings and numbers"
            ) from None
        return self._prefix + text.decode()

    async def get(self, key: Hashable) -> CacheEntry | None:
        """The entry under ``key`` with the time it has left, or ``None``.

        Raises:
            ArgumentTypeError: ``key`` cannot be encoded (see the class docs).
            BackendUnavailable: Redis could not be reached.
            BrokenResourceError: the key holds what this store did not write, or what
                its serializer cannot decode.
        """
        name = self.redis_key(key)
        with self._errors:
            reply = await _READ.run(self._client, (name,))
        if reply is None:
            return None
        data, left_ms = cast(list[Any], reply)
        stale_for, value = self._unpack(name, data)
        if left_ms < 0:  # no expiry: stored without a ttl
            return CacheEntry(value, False, math.inf)
        left = left_ms / 1000
        return CacheEntry(value, False, max(0.0, left - stale_for), min(stale_for, left))

    async def set(self, key: Hashable, entry: CacheEntry) -> None:
        """Store ``entry`` under ``key``; Redis forgets it when its lifetime is up.

        A failed entry (an exception) or a value the serializer cannot encode is not
        stored (see the class docs), nor is an entry with less than a millisecond left.

        Raises:
            ArgumentTypeError: ``key`` cannot be encoded (see the class docs).
            BackendUnavailable: Redis could not be reached.
        """
        name = self.redis_key(key)
        if entry.failed:
            self._decline(name, "an exception is not shared through Redis")
            return
        try:
            payload = self._serializer.encode(entry.value)
        except (TypeError, ValueError) as error:
            self._decline(name, f"the serializer cannot encode it: {error}")
            return
        data = b"%b%r\n%b" % (_HEADER, entry.stale_for, payload)
        lifetime = entry.lifetime
        with self._errors:
            if lifetime == math.inf:
                await self._client.set(name, data)
            elif lifetime >= 0.001:
                await self._client.set(name, data, px=math.ceil(lifetime * 1000))

    async def delete(self, key: Hashable) -> bool:
        """Remove the entry under ``key``; whether there was one.

        Raises:
            ArgumentTypeError: ``key`` cannot be encoded (see the class docs).
            BackendUnavailable: Redis could not be reached.
        """
        name = self.redis_key(key)
        with self._errors:
            return bool(await self._client.delete(name))

    async def clear(self) -> None:
        """Remove every entry whose key starts with the prefix (``SCAN``, then ``UNLINK``).

        Raises:
            BackendUnavailable: Redis could not be reached.
        """
        pattern = _glob_escape(self._prefix) + "*"
        with self._errors:
            batch: list[bytes] = []
            async for name in self._client.scan_iter(match=pattern, count=500):
                batch.append(name)
                if len(batch) == 500:
                    await self._client.unlink(*batch)
                    batch.clear()
            if batch:
                await self._client.unlink(*batch)

    def _unpack(self, name: str, data: bytes) -> tuple[float, Any]:
        header, newline, payload = data.partition(b"\n")
        problem = "no corral cache header"
        if newline and header.startswith(_HEADER):
            try:
                return float(header[len(_HEADER) :]), self._serializer.decode(payload)
            except ValueError as error:
                problem = str(error)
        raise BrokenResourceError(
            f"the Redis key {name!r} holds {data[:40]!r}, which this store cannot read "
            f"({problem}); was it written by another program or serializer?"
        )

    def _decline(self, name: str, reason: str) -> None:
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "cache_store.declined", {"key": name, "reason": reason})

    def __repr__(self) -> str:
        return f"<RedisCacheStore {self._prefix!r} at {self._where()}>"


def _canonical(part: object) -> object:
    """``part`` with the same JSON in every process: frozensets sorted, kwargs marked."""
    if isinstance(part, tuple):
        return [_canonical(item) for item in part]
    if isinstance(part, frozenset):
        items = [_canonical(item) for item in part]
        return sorted(items, key=_KEY_ENCODER.encode)
    if part is _KEYWORDS:  # keyword arguments follow; no hashable argument is a dict
        return {"keywords": True}
    return part


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
