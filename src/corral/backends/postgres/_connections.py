"""The store's connections: a stack of idle ones in front of its asyncpg pool.

Taking a connection from the stack and putting it back costs a list operation; the
pool's own acquire and release cost a task and several awaits each, a good part of a
plain append. The pool still opens, replaces and closes connections, and hands them
out whenever the stack is empty; a connection is given back to the pool (not kept)
when a task waits there, or when it ended a statement in an unknown state (cancelled,
or lost), so the pool resets or replaces it.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import asyncpg

from ...errors import ConcurrencyError, DuplicateError, SerializationError

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

__all__ = ("Connections",)

# Errors after which a connection is as good as before: the server refused a statement,
# or the store refused what it answered.
_CLEAN: Final = (asyncpg.PostgresError, ConcurrencyError, DuplicateError, SerializationError)


class Connections:
    """Idle connections kept in front of ``pool``.

    Thread-safety: use from the pool's event loop only.
    """

    __slots__ = ("_closing", "_idle", "_pool", "_waiting")

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool
        self._idle: list[PoolConnectionProxy[asyncpg.Record]] = []
        self._waiting = 0
        self._closing = False

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The pool behind the stack."""
        return self._pool

    def lease(self) -> Lease:
        """``async with connections.lease() as connection:``, one connection for the block."""
        return Lease(self)

    async def take(self) -> PoolConnectionProxy[asyncpg.Record]:
        """An idle connection, else one from the pool (waiting for one if all are taken).

        Cancellation: a wait in the pool is abandoned; nothing is taken.
        """
        if self._idle:
            return self._idle.pop()
        self._waiting += 1
        try:
            return await self._pool.acquire()
        finally:
            self._waiting -= 1

    async def give_back(self, connection: PoolConnectionProxy[asyncpg.Record], clean: bool) -> None:
        """Keep ``connection`` idle if ``clean`` and nobody waits in the pool, else release it.

        Once :meth:`close` has begun, every connection goes back to the pool.
        """
        if clean and not self._waiting and not self._closing and not connection.is_closed():
            self._idle.append(connection)
        else:
            await self._pool.release(connection)

    async def close(self) -> None:
        """Give the idle connections back and close the pool (waits for those in use,
        which go back to the pool when their statements end)."""
        self._closing = True
        idle, self._idle = self._idle, []
        try:
            for connection in idle:
                await self._pool.release(connection)
        finally:
            await self._pool.close()

    def terminate(self) -> None:
        """Close every connection at once."""
        self._closing = True
        self._idle = []
        self._pool.terminate()


class Lease:
    """One connection of :class:`Connections` for an ``async with`` block.

    A block that ends without an exception, with a server error (the statement failed;
    the connection is fine) or with a ``ConcurrencyError``, ``DuplicateError`` or
    ``SerializationError`` keeps the connection idle; any other exception (cancellation, a
    lost connection) releases it to the pool, which resets or replaces it.
    """

    __slots__ = ("_connection", "_connections")

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._connection: Any = None

    async def __aenter__(self) -> PoolConnectionProxy[asyncpg.Record]:
        self._connection = await self._connections.take()
        connection: PoolConnectionProxy[asyncpg.Record] = self._connection
        return connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        clean = exc is None or isinstance(exc, _CLEAN)
        await self._connections.give_back(connection, clean)
