"""MemoryEventStore: the event store in a process's memory, with the full semantics."""

from __future__ import annotations

import time
import uuid

from ...errors import ConcurrencyError
from ...eventsourcing._rules import StreamAppend, check_expected, match_retry
from ...eventsourcing._store import EventStore
from ...eventsourcing._tracking import Tracking
from ...eventsourcing._types import AppendResult, ExpectedVersion, RecordedEvent, StreamInfo

__all__ = ("MemoryEventStore",)


class _Stream:
    __slots__ = ("custom", "deleted", "events", "truncate_before")

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []  # events[i] has version i + 1
        self.deleted = False
        self.truncate_before = 0
        self.custom = b""

    @property
    def version(self) -> int:
        return len(self.events)

    @property
    def exists(self) -> bool:
        return bool(self.events) and not self.deleted


class MemoryEventStore(EventStore):
    """An event store held in memory: for tests, examples and single-process prototypes.

    It keeps every guarantee of :class:`~corral.eventsourcing.EventStore` that does not
    need a disk (conflicts, atomic multi-stream appends, idempotency, global order,
    metadata, truncation, soft delete), so code tested on it behaves the same on SQLite.
    Events live until :meth:`close`, which drops them.

    Every operation completes without yielding to the event loop, so an append is
    never interrupted: a cancelled ``append`` either ran entirely before the
    cancellation arrived or did not start.

    Thread-safety: not thread-safe; use it from one event loop.
    """

    engine = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._streams: dict[str, _Stream] = {}
        self._log: list[RecordedEvent] = []  # _log[i] has position i + 1
        self._by_id: dict[uuid.UUID, RecordedEvent] = {}

    def _describe(self) -> str:
        return f"{len(self._log)} events in {len(self._streams)} streams,"

    async def _append(
        self, parts: list[StreamAppend], tracking: Tracking | None = None
    ) -> list[AppendResult]:
        # Decide every part before changing anything, so a failure writes nothing.
        if tracking is not None:
            checkpoint = self._streams.get(tracking.stream)
            try:
                tracking.check(b"" if checkpoint is None else checkpoint.custom)
            except ConcurrencyError:
                self._counters.conflicts += 1
                raise
        retries: list[AppendResult | None] = []
        for part in parts:
            state = self._streams.get(part.stream)
            retry = match_retry(part, [self._by_id.get(event.id) for event in part.events])
            if retry is None:
                version = 0 if state is None else state.version
                exists = state is not None and state.exists
                try:
                    check_expected(part.stream, part.expected, version, exists)
                except ConcurrencyError:
                    self._counters.conflicts += 1
                    raise
            retries.append(retry)
        now = time.time()
        results = []
        for part, retry in zip(parts, retries, strict=True):
            result = retry if retry is not None else self._write(part, now)
            self._counters.count_part(result, retry is not None)
            results.append(result)
        if tracking is not None:
            self._streams.setdefault(tracking.stream, _Stream()).custom = tracking.metadata
        self._counters.transactions += 1
        return results

    def _write(self, part: StreamAppend, now: float) -> AppendResult:
        state = self._streams.get(part.stream)
        if state is None:
            state = self._streams[part.stream] = _Stream()
        log, events = self._log, state.events
        if part.events:
            state.deleted = False
        for event in part.events:
            record = RecordedEvent(
                part.stream,
                len(events) + 1,
                len(log) + 1,
                event.id,
                event.type,
                event.data,
                event.metadata,
                event.content_type,
                now,
            )
            events.append(record)
            log.append(record)
            self._by_id[event.id] = record
        positions = tuple(range(len(log) - len(part.events) + 1, len(log) + 1))
        return AppendResult(part.stream, len(events), positions)

    async def _fetch_stream(
        self, stream: str, start: int | None, backwards: bool, count: int
    ) -> list[RecordedEvent]:
        state = self._streams.get(stream)
        if state is None:
            return []
        events = state.events
        first = max(state.truncate_before, 1)  # the first visible version
        if not backwards:
            low = max(first, start or 0)
            return events[low - 1 : low - 1 + count]
        high = len(events) if start is None else min(start, len(events))
        low = max(first, high - count + 1)
        return events[low - 1 : high][::-1]

    async def _fetch_all(self, start: int, count: int) -> list[RecordedEvent]:
        low = max(start, 1)
        return self._log[low - 1 : low - 1 + count]

    async def _fetch_streams(self, prefix: str, after: str, count: int) -> list[StreamInfo]:
        names = sorted(
            name
            for name, state in self._streams.items()
            if state.events and name > after and name.startswith(prefix)
        )
        page = []
        for name in names[:count]:
            state = self._streams[name]
            last = state.events[-1]
            page.append(
                StreamInfo(
                    name,
                    state.version,
                    state.deleted,
                    state.truncate_before,
                    last.position,
                    last.recorded_at,
                )
            )
        return page

    async def _head_position(self) -> int:
        return len(self._log)

    async def _get_stream(self, stream: str) -> tuple[int, bool, int, bytes]:
        state = self._streams.get(stream)
        if state is None:
            return 0, False, 0, b""
        return state.version, state.deleted, state.truncate_before, state.custom

    async def _set_stream(
        self, stream: str, *, custom: bytes | None = None, truncate_before: int | None = None
    ) -> None:
        state = self._streams.setdefault(stream, _Stream())
        if custom is not None:
            state.custom = custom
        if truncate_before is not None:
            state.truncate_before = truncate_before

    async def _delete_stream(self, stream: str, expected: ExpectedVersion) -> None:
        state = self._streams.get(stream)
        version = 0 if state is None else state.version
        try:
            check_expected(stream, expected, version, state is not None and state.exists)
        except ConcurrencyError:
            self._counters.conflicts += 1
            raise
        if state is not None and state.exists:
            state.deleted = True
            state.truncate_before = version + 1

    async def _close(self) -> None:
        self._streams.clear()
        self._log.clear()
        self._by_id.clear()
