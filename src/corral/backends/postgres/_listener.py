"""The listening connection of a PostgreSQL store: appends elsewhere wake its subscriptions.

Every append that writes events notifies the store's channel (``pg_notify`` in the
append function, delivered when it commits), but only while some connection listens:
a listener holds the store's listener lock (a session-level advisory lock, shared), and
the append function notifies only when it cannot take that lock itself. A store opens
one listening connection, with the first subscription that waits, and keeps it until
it is closed; each notification wakes the store's waiting subscriptions, which then
read the log from where they are.

If the connection is lost, the listener connects again, waiting longer after each
failure (from :data:`RECONNECT_DELAY` up to :data:`RECONNECT_MAX_DELAY` seconds), and
wakes the subscriptions once it listens again, so they read what was committed
meanwhile. Subscriptions also keep polling, so no event waits longer than their poll
interval even without the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg

__all__ = ("RECONNECT_DELAY", "RECONNECT_MAX_DELAY", "Listener", "ListenerStatistics")

#: Seconds before the first attempt to connect again after the listening connection
#: was lost or could not be opened; each further failure doubles it.
RECONNECT_DELAY: Final = 0.05

#: Longest wait (seconds) between two attempts to connect again.
RECONNECT_MAX_DELAY: Final = 5.0

_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerStatistics:
    """A snapshot of a store's listening connection.

    Attributes:
        listening: whether the connection listens right now.
        connects: connections opened that listened (the first, and each reconnect).
        failures: connections lost or attempts that failed.
        notifications: notifications received.
    """

    listening: bool
    connects: int
    failures: int
    notifications: int


class Listener:
    """One listening connection for a store; ``wake()`` on every notification.

    ``connect`` opens a new connection; ``channel`` is the store's channel and
    ``lock_key`` its listener lock, ``(writers key, LISTENING)``. :meth:`start` (on the
    store's loop) opens it in a task of its own, at most once; :meth:`close` ends it.

    Thread-safety: use from the store's event loop only.
    """

    __slots__ = (
        "_channel",
        "_connect",
        "_connects",
        "_failures",
        "_listening",
        "_lock_key",
        "_notifications",
        "_task",
        "_wake",
    )

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channel: str,
        lock_key: tuple[int, int],
        wake: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._lock_key = lock_key
        self._wake = wake
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._connects = 0
        self._failures = 0
        self._notifications = 0

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has been called (and :meth:`close` not yet)."""
        return self._task is not None

    def statistics(self) -> ListenerStatistics:
        """What the listener has done so far."""
        return ListenerStatistics(
            self._listening, self._connects, self._failures, self._notifications
        )

    def __repr__(self) -> str:
        state = "listening" if self._listening else "started" if self._task else "idle"
        return (
            f"<Listener on {self._channel!r}, {state}, {self._connects} connects, "
            f"{self._failures} failures, {self._notifications} notifications>"
        )

    def start(self) -> None:
        """Start listening (in a task on the running loop) unless started already."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"corral listener {self._channel}"
            )

    async def close(self) -> None:
        """Stop listening and close the connection. Idempotent.

        Cancellation: the listener's task is cancelled first; cancelling ``close`` while
        it waits for that task leaves the task to end by itself.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = RECONNECT_DELAY
        while True:
            try:
                await self._listen_once()
            except _ERRORS:
                pass  # not connected, or lost before listening: wait longer each time
            else:
                delay = RECONNECT_DELAY  # it listened until the connection was lost
            self._failures += 1
            await asyncio.sleep(delay)
            delay = min(2 * delay, RECONNECT_MAX_DELAY)

    async def _listen_once(self) -> None:
        """Listen on one connection until it is lost (returns) or fails (raises)."""
        connection = await self._connect()
        try:
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_lost(_: Any) -> None:
                if not lost.done():
                    lost.set_result(None)

            connection.add_termination_listener(on_lost)
            await connection.add_listener(self._channel, self._on_notification)
            writers, listening = self._lock_key
            await connection.execute("SELECT pg_advisory_lock_shared($1, $2)", writers, listening)
            # Appends that checked for listeners before this one held its lock may not
            # notify: wait until they have ended (each holds the writer lock, shared,
            # until it commits), so the read the wake-up below causes sees them.
            await connection.execute(
                "SELECT pg_advisory_lock($1, 0), pg_advisory_unlock($1, 0)", writers
            )
            self._listening = True
            self._connects += 1
            self._wake()  # read what was committed while nobody listened
            await lost
        finally:
            self._listening = False
            connection.terminate()

    def _on_notification(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._notifications += 1
        self._wake()
