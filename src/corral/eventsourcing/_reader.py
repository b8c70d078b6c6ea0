"""EventReader: events read lazily, one page per round trip to the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from ._types import RecordedEvent

__all__ = ("PAGE_SIZE", "EventReader", "PageFetcher")

#: How many events one round trip to the engine reads at most.
PAGE_SIZE: Final = 500

#: ``fetch(after, count)``: up to ``count`` events that follow ``after`` (the last event
#: of the previous page, ``None`` for the first page), in reading order.
PageFetcher = Callable[[RecordedEvent | None, int], Awaitable[list[RecordedEvent]]]


class EventReader(AsyncIterator[RecordedEvent]):
    """Events read in pages: ``async for event in store.read_stream(...)``.

    Nothing is read until iteration starts; each page is a separate short read, so a
    reader holds no connection, lock or transaction between pages, and abandoning one
    half-way leaks nothing. A reader of a million events keeps one page in memory.

    Events appended while a forward reader runs are read too if they come after its
    current page; a reader never returns an event twice or out of order.

    Cancellation: cancelling a page read abandons it; the reader stays usable and the
    next ``__anext__`` reads the same page again.

    Thread-safety: not thread-safe; iterate from one task.
    """

    __slots__ = ("_count", "_description", "_done", "_fetch", "_index", "_last", "_left", "_page")

    def __init__(self, fetch: PageFetcher, limit: int | None, description: str) -> None:
        self._fetch = fetch
        self._left = limit
        self._description = description
        self._page: list[RecordedEvent] = []
        self._index = 0
        self._last: RecordedEvent | None = None
        self._done = False
        self._count = 0

    def __repr__(self) -> str:
        state = "done" if self._done else "reading"
        return f"<EventReader {self._description}: {self._count} read, {state}>"

    def __aiter__(self) -> EventReader:
        return self

    async def __anext__(self) -> RecordedEvent:
        if self._index == len(self._page):
            await self._next_page()
        event = self._page[self._index]
        self._index += 1
        self._last = event
        self._count += 1
        return event

    async def _next_page(self) -> None:
        left = self._left
        if self._done or left == 0:
            self._done = True
            raise StopAsyncIteration
        count = PAGE_SIZE if left is None else min(left, PAGE_SIZE)
        page = await self._fetch(self._last, count)
        if len(page) < count:
            self._done = True
            if not page:
                raise StopAsyncIteration
        if left is not None:
            self._left = left - len(page)
        self._page = page
        self._index = 0

    async def collect(self) -> list[RecordedEvent]:
        """Read the remaining events into a list (mind the memory for long streams).

        Raises:
            SerializationError, BackendUnavailable, ClosedResourceError: as iteration.
        """
        events = self._page[self._index :]
        self._index = len(self._page)
        if events:
            self._last = events[-1]
        while True:
            try:
                await self._next_page()
            except StopAsyncIteration:
                break
            page = self._page
            events += page
            self._index = len(page)
            self._last = page[-1]
        self._count += len(events)
        return events
