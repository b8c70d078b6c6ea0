"""What every Redis store shares: its client, its keys, its scripts, its error boundary."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

from ...errors import ArgumentTypeError, InvalidArgumentError
from ._errors import map_exceptions

__all__ = ("RedisStore", "RedisStoreStatistics", "Script", "client_arg", "describe", "key_arg")


def client_arg(client_or_url: object) -> tuple[redis.asyncio.Redis, bool]:
    """The client for ``client_or_url``, and whether the store owns (and closes) it.

    Raises:
        ArgumentTypeError: neither a ``redis.asyncio.Redis`` nor a URL string.
        InvalidArgumentError: a URL redis-py cannot parse.
    """
    if isinstance(client_or_url, redis.asyncio.Redis):
        return client_or_url, False
    if isinstance(client_or_url, str):
        try:
            return redis.asyncio.Redis.from_url(client_or_url), True
        except ValueError as error:
            raise InvalidArgumentError(
                f"client_or_url must be a redis:// URL, got {client_or_url!r} ({error})"
            ) from None
    hint = " (the synchronous client)" if isinstance(client_or_url, redis.Redis) else ""
    raise ArgumentTypeError(
        "client_or_url must be a redis.asyncio.Redis or a URL string, "
        f"not {type(client_or_url).__name__}{hint} ({client_or_url!r})"
    )


def key_arg(key: object, name: str = "key") -> str:
    """``key`` if it is a non-empty string.

    Raises:
        ArgumentTypeError: not a string.
        InvalidArgumentError: an empty string.
    """
    if not isinstance(key, str):
        raise ArgumentTypeError(f"{name} must be a str, not {type(key).__name__} ({key!r})")
    if not key:
        raise InvalidArgumentError(f"{name} must not be empty, got {key!r}")
    return key


def describe(client: redis.asyncio.Redis) -> str:
    """Where ``client`` connects, for a ``repr``: ``127.0.0.1:6379/0`` or a socket path."""
    options = client.connection_pool.connection_kwargs
    if "path" in options:
        return f"{options['path']}/{options.get('db', 0)}"
    return f"{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"


class Script:
    """A Lua script run by its SHA1 (``EVALSHA``), loaded again when Redis has lost it.

    The SHA1 is computed here, so the first call needs no ``SCRIPT LOAD`` round trip;
    after a restart or ``SCRIPT FLUSH`` Redis answers ``NOSCRIPT`` and the script is
    loaded and run again. Immutable: share one instance between stores and tasks.
    """

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    async def run(
        self, client: redis.asyncio.Redis, keys: Sequence[str], *args: float | str
    ) -> object:
        """The script's reply for ``keys`` and ``args`` (one round trip).

        Raises:
            redis.exceptions.RedisError: what Redis or the script answered (the stores
                translate it at their boundary).
        """
        execute: Callable[..., Awaitable[object]] = client.execute_command  # untyped upstream
        try:
            return await execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await execute("SCRIPT", "LOAD", self.text)
            return await execute("EVALSHA", self.sha, len(keys), *keys, *args)


@dataclasses.dataclass(frozen=True, slots=True)
class RedisStoreStatistics:
    """A snapshot of a Redis store's traffic since it was made.

    Attributes:
        server: where the store's client points (``host:port/db``).
        owns_client: whether the store opened its client (and ``aclose()`` closes it).
        operations: store operations started (each one round trip, or two when Redis had
            lost the store's script).
        unavailable: operations that failed with ``BackendUnavailable``.
        refused: operations that failed with ``BrokenResourceError``.
    """

    server: str
    owns_client: bool
    operations: int
    unavailable: int
    refused: int


class RedisStore:
    """The base of the Redis stores: the client, who closes it, and the error boundary.

    A store made from a URL owns its client and :meth:`aclose` closes it; a store given a
    client borrows it and leaves it open. ``async with store:`` closes it on the way out.
    """

    __slots__ = ("_client", "_errors", "_owned")

    def __init__(self, client_or_url: redis.asyncio.Redis | str, what: str) -> None:
        self._client, self._owned = client_arg(client_or_url)
        self._errors = map_exceptions(what)

    def statistics(self) -> RedisStoreStatistics:
        """A snapshot of the operations this store sent to Redis, and how many failed."""
        errors = self._errors
        return RedisStoreStatistics(
            server=self._where(),
            owns_client=self._owned,
            operations=errors.operations,
            unavailable=errors.unavailable,
            refused=errors.refused,
        )

    async def aclose(self) -> None:
        """Close the client if the store opened it from a URL; a borrowed one stays open."""
        if self._owned:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _where(self) -> str:
        return describe(self._client)
