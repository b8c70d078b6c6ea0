"""Subscriptions: every event of the store, a category or a stream, caught up, then live.

A subscription reads the global log (``read_all``) page by page from a position and
keeps going: once it has read everything, it waits for new events and reads on from the
last position it read. Catch-up and live are the same loop, so nothing is skipped or
repeated at the switch. It is woken by appends made through the same store object and,
for appends by other processes or other store objects, by the engine when it can notice
them (SQLite checks ``PRAGMA data_version`` while a subscription waits; PostgreSQL
listens for the append function's notifications), else by polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final

from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError
from ._reader import PAGE_SIZE
from ._rules import version_arg
from ._types import RecordedEvent

if TYPE_CHECKING:
    from ._store import EventStore

__all__ = (
    "DEFAULT_POLL_INTERVAL",
    "AppendSignal",
    "Subscription",
    "subscription_filter",
    "wait_for_commit",
)

#: How often a live subscription looks for events appended elsewhere, in seconds.
DEFAULT_POLL_INTERVAL: Final = 0.5


class AppendSignal:
    """Wakes the subscriptions of one store after each commit made through it.

    Thread-safety: use from the store's event loop only.
    """

    __slots__ = ("_waiters", "generation")

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        #: Grows with every commit; a reader compares it before and after a read.
        self.generation = 0

    def notify(self) -> None:
        """Record a commit and wake every waiter."""
        self.generation += 1
        waiters = self._waiters
        if waiters:
            self._waiters = set()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def waiter(self) -> asyncio.Future[None]:
        """A future completed by the next :meth:`notify`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        return waiter

    def discard(self, waiter: asyncio.Future[None]) -> None:
        """Forget ``waiter`` (it timed out or was cancelled)."""
        self._waiters.discard(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def wait_for_commit(
    store: EventStore, waiter: asyncio.Future[None], poll_interval: float
) -> None:
    """Wait on ``waiter`` (from ``store._signal.waiter()``) for the next commit.

    It completes when an append through ``store`` commits, when the engine notices
    another process's commit (while waiting, the store is watched), when
    ``poll_interval`` seconds (loop time) have passed, or when someone else completes
    it. Cancellation: the wait ends and leaves nothing registered behind.
    """
    handle = asyncio.get_running_loop().call_later(poll_interval, _wake, waiter)
    store._watch()  # engines that notice other processes' commits wake it
    try:
        await waiter
    finally:
        store._unwatch()
        handle.cancel()
        store._signal.discard(waiter)


def subscription_filter(
    stream: str | None, category: str | None
) -> tuple[Callable[[RecordedEvent], bool] | None, str]:
    """Check the filters of :meth:`EventStore.subscribe`: ``(predicate, description)``.

    Raises:
        ArgumentTypeError: ``stream`` or ``category`` is not a ``str``.
        InvalidArgumentError: one is empty, a category holds ``"-"``, or both are given.
    """
    for name, value in (("stream", stream), ("category", category)):
        if value is None:
            continue
        if not isinstance(value, str):
            raise ArgumentTypeError(
                f"{name} must be a str or None, not {type(value).__name__} ({value!r})"
            )
        if not value:
            raise InvalidArgumentError(f"{name} must not be empty")
    if stream is not None and category is not None:
        raise InvalidArgumentError(
            f"subscribe to a stream or to a category, not both (stream={stream!r}, "
            f"category={category!r})"
        )
    if stream is not None:
        return (lambda event: event.stream == stream), f"stream {stream!r}"
    if category is not None:
        if "-" in category:
            raise InvalidArgumentError(
                f"category must not contain '-' (a category is a stream name up to its "
                f"first '-'), got {category!r}"
            )
        prefix = category + "-"
        return (
            lambda event: event.stream == category or event.stream.startswith(prefix)
        ), f"category {category!r}"
    return None, "all"


class Subscription:
    """Events of a store in global order, from a position on, then live as they commit.

    Made by :meth:`EventStore.subscribe`. Iterate it with ``async for``; it never ends
    by itself. Each event's :attr:`~RecordedEvent.position` is larger than the one
    before: no event is delivered twice, and none that matches is skipped, neither
    while catching up nor at or after the switch to live (the subscription reads on
    from the last position it read, so the switch is only a wait). Events of
    soft-deleted and truncated streams are delivered too, like :meth:`EventStore.read_all`.

    Waking up: a live subscription wakes as soon as an append through the same store
    object commits. Appends made by other processes or store objects wake it when the
    engine notices them: SQLite checks the file's ``PRAGMA data_version`` every 10 ms
    (``SqliteEventStore.open(path, watch_interval=...)``) while a subscription waits,
    so such an append arrives within about that interval; PostgreSQL wakes it as the
    append commits (LISTEN/NOTIFY, on one listening connection per store, opened by
    the first subscription that waits). Besides, it polls every
    ``poll_interval`` seconds (loop time), which is how it finds them on engines that
    cannot notice them.

    Resuming: :attr:`position` is the last position read (also past events that did
    not match); save it with :class:`~corral.eventsourcing.Checkpoints` once an event
    is handled, and resume with ``from_position=checkpoint + 1``.

    Cancellation: cancelling ``__anext__`` (or an enclosing cancel scope's deadline)
    abandons the wait or the page read; no event is lost, the next ``__anext__``
    delivers it. The subscription starts no task, so abandoning one leaks nothing;
    :meth:`close` (or ``async with``) ends the iteration, also one waiting in another
    task.

    Raises (from iteration):
        ClosedResourceError: the store was closed.
        SerializationError, BackendUnavailable: as :meth:`EventStore.read_all`.

    Thread-safety: not thread-safe; iterate from one task of the store's loop.
    """

    __slots__ = (
        "_accepts",
        "_buffer",
        "_closed",
        "_delivered",
        "_description",
        "_index",
        "_next",
        "_poll_interval",
        "_signal",
        "_store",
        "_waiter",
    )

    def __init__(
        self,
        store: EventStore,
        signal: AppendSignal,
        *,
        stream: str | None = None,
        category: str | None = None,
        from_position: int = 0,
        poll_interval: Seconds = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._accepts, self._description = subscription_filter(stream, category)
        self._next = max(version_arg(from_position, "from_position"), 1)
        self._poll_interval = seconds_arg(poll_interval, "poll_interval")
        if not self._poll_interval > 0:
            raise InvalidArgumentError(
                f"poll_interval must be more than 0 seconds, got {self._poll_interval!r}"
            )
        self._store = store
        self._signal = signal
        self._buffer: list[RecordedEvent] = []
        self._index = 0
        self._closed = False
        self._delivered = 0
        self._waiter: asyncio.Future[None] | None = None

    @property
    def position(self) -> int:
        """The last global position read (0 before the first); resume after it."""
        return self._next - 1

    @property
    def waiting(self) -> bool:
        """Whether the subscription has read everything and waits for new events."""
        return self._waiter is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "waiting" if self._waiter else "open"
        return (
            f"<Subscription to {self._description} at position {self.position}, "
            f"{self._delivered} delivered, {state}>"
        )

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> RecordedEvent:
        while self._index == len(self._buffer):
            if self._closed:
                raise StopAsyncIteration
            await self._read_or_wait()
        event = self._buffer[self._index]
        self._index += 1
        self._delivered += 1
        return event

    async def _read_or_wait(self) -> None:
        generation = self._signal.generation
        page = await self._store._fetch_page(self._next, PAGE_SIZE)
        if page:
            self._next = page[-1].position + 1
            accepts = self._accepts
            self._buffer = page if accepts is None else [e for e in page if accepts(e)]
            self._index = 0
            return
        if generation == self._signal.generation and not self._closed:
            await self._wait()

    async def _wait(self) -> None:
        waiter = self._signal.waiter()
        self._waiter = waiter
        try:
            await wait_for_commit(self._store, waiter, self._poll_interval)
        finally:
            self._waiter = None

    async def close(self) -> None:
        """End the subscription: iteration stops, also a wait in progress. Idempotent."""
        self._closed = True
        self._buffer = []
        self._index = 0
        waiter = self._waiter
        if waiter is not None:
            _wake(waiter)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
