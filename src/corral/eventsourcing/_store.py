"""The EventStore port: what every engine guarantees, and the checks they all share."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar

from .._core._hooks import INSTRUMENTS
from .._core._time import Seconds
from ..errors import ArgumentTypeError, ClosedResourceError
from ._reader import PAGE_SIZE, EventReader
from ._rules import (
    StreamAppend,
    appends_arg,
    count_arg,
    custom_metadata_arg,
    decode_custom_metadata,
    expected_arg,
    single_append_arg,
    stream_arg,
    version_arg,
)
from ._subscription import DEFAULT_POLL_INTERVAL, AppendSignal, Subscription
from ._tracking import Tracking
from ._types import (
    ANY,
    AppendResult,
    EventStoreStatistics,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamInfo,
    StreamMetadata,
)

__all__ = ("EventStore", "StoreCounters")


class StoreCounters:
    """The running totals behind :meth:`EventStore.statistics` (engines add to them)."""

    __slots__ = (
        "appends",
        "conflicts",
        "events_appended",
        "events_read",
        "idempotent_appends",
        "last_position",
        "transactions",
    )

    def __init__(self) -> None:
        self.appends = 0
        self.events_appended = 0
        self.idempotent_appends = 0
        self.conflicts = 0
        self.transactions = 0
        self.events_read = 0
        self.last_position = 0

    def count_part(self, result: AppendResult, retried: bool) -> None:
        """Count one committed stream append (``retried``: answered as a retry)."""
        if retried:
            self.idempotent_appends += 1
            return
        self.appends += 1
        positions = result.positions
        if positions:
            self.events_appended += len(positions)
            if positions[-1] > self.last_position:
                self.last_position = positions[-1]


class EventStore(abc.ABC):
    """An append-only store of events in streams, with one global order over all of them.

    Open one with :func:`corral.connect` (``"memory://"``, ``"sqlite:///app.db"``) and
    close it with :meth:`close` or ``async with``. Every engine passes the same contract
    suite (``corral.testing.contracts.eventstore``), so the guarantees below hold on all
    of them.

    Streams and versions: a stream is named by a non-empty string; its events are
    numbered 1, 2, 3, ... (an event's *version*) and a stream's version is the version
    of its last event (0 for a stream without events). Versions never restart, not even
    after a soft delete. Each event also has a *position* in the global order of all
    events; positions grow with every commit (they may skip numbers), and a reader of
    :meth:`read_all` never sees an event appear later at a position it has passed.

    Optimistic concurrency: an append names what it expects of its stream, an exact
    version or :data:`ANY`, :data:`NO_STREAM`, :data:`STREAM_EXISTS`; when the stream
    does not match, nothing is written and :class:`~corral.errors.ConcurrencyError`
    names the stream, the expected and the actual version.

    Atomicity and durability: an append (also one over several streams with
    :meth:`append_many`) is written entirely or not at all. Once it returns, the events
    are durable as far as the engine goes (SQLite: on disk; memory: until the process
    exits).

    Idempotency: event ids are unique in the store. An append retried with the same
    ids and content returns the original result and writes nothing, whatever the
    stream's version is now; ids stored with other content, in another stream, or only
    some of an append's ids raise :class:`~corral.errors.DuplicateError`.

    Cancellation: an append is never half-written. A cancelled append was either not
    made at all or completed as a whole, and the caller cannot tell which from the
    ``CancelledError``: retry it with the same event ids, which is safe. Reads can be
    cancelled at any point without effect.

    Bad input is refused before anything is written: ``ArgumentTypeError`` for a wrong
    type, ``InvalidArgumentError`` for a bad value (empty stream name, negative version,
    an event id used twice in one append), each naming the argument. Using a closed
    store raises ``ClosedResourceError``; a database that cannot be used raises
    ``BackendUnavailable``.

    Thread-safety: use a store from the tasks of one event loop. Engines that use
    threads keep them to themselves.
    """

    #: The engine's name, as in :attr:`EventStoreStatistics.engine`.
    engine: ClassVar[str]

    def __init__(self) -> None:
        self._closed = False
        self._counters = StoreCounters()
        self._signal = AppendSignal()

    # -- what an engine implements ---------------------------------------------------

    @abc.abstractmethod
    async def _append(
        self, parts: list[StreamAppend], tracking: Tracking | None = None
    ) -> list[AppendResult]:
        """Apply ``parts`` atomically (all or none), updating the counters.

        With ``tracking``, the same transaction also compares the checkpoint it names
        with ``tracking.expected`` and stores ``tracking.position`` in its place (the
        metadata of ``tracking.stream``, where :class:`Checkpoints` reads it); a
        different stored checkpoint raises ``ConcurrencyError`` for ``tracking.stream``
        and writes nothing. ``parts`` may then be empty: a checkpoint-only advance.
        """

    @abc.abstractmethod
    async def _fetch_stream(
        self, stream: str, start: int | None, backwards: bool, count: int
    ) -> list[RecordedEvent]:
        """Up to ``count`` visible events of ``stream`` from version ``start`` on.

        Backwards from the last version when ``start`` is ``None``. Events before the
        stream's ``truncate_before`` are not visible.
        """

    @abc.abstractmethod
    async def _fetch_all(self, start: int, count: int) -> list[RecordedEvent]:
        """Up to ``count`` events at positions from ``start`` on, in global order."""

    @abc.abstractmethod
    async def _fetch_streams(self, prefix: str, after: str, count: int) -> list[StreamInfo]:
        """Up to ``count`` streams with events, named ``prefix...`` and after ``after``.

        In name order (code point order; PostgreSQL: the database's collation), each
        name greater than ``after`` (``""``: from the first).
        """

    @abc.abstractmethod
    async def _head_position(self) -> int:
        """The last position :meth:`_fetch_all` would return now (0 if none)."""

    @abc.abstractmethod
    async def _get_stream(self, stream: str) -> tuple[int, bool, int, bytes]:
        """``(version, deleted, truncate_before, custom metadata bytes)`` of ``stream``."""

    @abc.abstractmethod
    async def _set_stream(
        self, stream: str, *, custom: bytes | None = None, truncate_before: int | None = None
    ) -> None:
        """Store ``custom`` metadata and/or ``truncate_before`` for ``stream``."""

    @abc.abstractmethod
    async def _delete_stream(self, stream: str, expected: ExpectedVersion) -> None:
        """Check ``expected``, then mark ``stream`` deleted and hide its events."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Finish queued work and release every resource."""

    def _pending(self) -> int:
        """Appends queued but not yet committed."""
        return 0

    def _watch(self) -> None:
        """A subscription starts waiting for new events (on the running loop).

        Engines that can notice commits made by other processes or store objects look
        for them until the matching :meth:`_unwatch`, and call ``self._signal.notify()``
        on the loop when they see one. The default does nothing: subscriptions then
        find such commits by polling.
        """
        return

    def _unwatch(self) -> None:
        """A subscription stopped waiting (one call per :meth:`_watch`)."""
        return

    def _describe(self) -> str:
        """What the store is, for ``repr`` (a path, a URL)."""
        return self.engine

    # -- the public interface --------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError(f"{self!r} is closed")

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append ``events`` to ``stream``, atomically, if it is at ``expected_version``.

        Args:
            stream: the stream's name (not empty).
            events: the events, in order; an empty list only checks the version.
            expected_version: the stream's exact version (0: no events yet), or
                :data:`ANY`, :data:`NO_STREAM`, :data:`STREAM_EXISTS`.

        Returns:
            The stream's new version and each event's global position; for a retry
            (same event ids and content), the original append's result.

        Raises:
            ConcurrencyError: the stream is not as expected; nothing was written.
            DuplicateError: an event id is stored with other content or elsewhere.
            ArgumentTypeError, InvalidArgumentError: bad input; nothing was written.
            ClosedResourceError: the store is closed.
            BackendUnavailable: the database cannot be used.
        """
        part = single_append_arg(stream, events, expected_version)
        self._check_open()
        (result,) = await self._append([part])
        self._signal.notify()
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "appended", {"stream": part.stream, "version": result.version})
        return result

    async def append_many(
        self, appends: Mapping[str, tuple[Sequence[NewEvent], ExpectedVersion]]
    ) -> dict[str, AppendResult]:
        """Append to several streams in one atomic step: all of them, or none.

        ``appends`` maps each stream to ``(events, expected_version)``. Every stream's
        expected version is checked; one failing check fails the whole append.
        Positions follow the mapping's order.

        Returns:
            Each stream's :class:`AppendResult`, keyed by stream.

        Raises:
            ConcurrencyError: a stream is not as expected (the first one found); nothing
                was written to any stream.
            DuplicateError: as :meth:`append`; so are ``ArgumentTypeError``,
                ``InvalidArgumentError``, ``ClosedResourceError`` and
                ``BackendUnavailable``.
        """
        parts = appends_arg(appends)
        self._check_open()
        results = await self._append(parts)
        self._signal.notify()
        if INSTRUMENTS.active:
            versions = {result.stream: result.version for result in results}
            INSTRUMENTS.event(self, "appended_many", {"versions": versions})
        return {result.stream: result for result in results}

    def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> EventReader:
        """Read a stream's events, forward or backward: ``async for event in ...``.

        A stream without events, or soft-deleted, reads as empty; events before its
        ``truncate_before`` are skipped. See :class:`EventReader` for paging.

        Args:
            stream: the stream's name.
            from_version: the first version to return (inclusive). Forward, the default
                is the start; backward, the end.
            backwards: read from newer to older events.
            limit: return at most this many events (``>= 1``); all by default.

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad input, raised by this call.
            ClosedResourceError: the store is closed (also raised mid-iteration).
            BackendUnavailable: the database cannot be used (raised by iteration).
        """
        stream = stream_arg(stream)
        start = None if from_version is None else version_arg(from_version, "from_version")
        if not isinstance(backwards, bool):
            raise _bool_error("backwards", backwards)
        left = count_arg(limit, "limit")
        self._check_open()
        if start is None and not backwards:
            start = 0
        step = -1 if backwards else 1

        async def fetch(after: RecordedEvent | None, count: int) -> list[RecordedEvent]:
            self._check_open()
            first = start if after is None else after.version + step
            page = await self._fetch_stream(stream, first, backwards, count)
            self._counters.events_read += len(page)
            return page

        direction = "backward" if backwards else "forward"
        return EventReader(fetch, left, f"stream {stream!r} {direction}")

    def read_all(self, *, from_position: int = 0, limit: int | None = None) -> EventReader:
        """Read every event of every stream in global order: ``async for event in ...``.

        Events of soft-deleted and truncated streams are included: the global log is
        never rewritten.

        Args:
            from_position: the first position to return (inclusive; positions start at
                1). To resume after a checkpoint, pass ``checkpoint + 1``.
            limit: return at most this many events (``>= 1``); all by default.

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad input, raised by this call.
            ClosedResourceError: the store is closed (also raised mid-iteration).
            BackendUnavailable: the database cannot be used (raised by iteration).
        """
        start = version_arg(from_position, "from_position")
        left = count_arg(limit, "limit")
        self._check_open()

        async def fetch(after: RecordedEvent | None, count: int) -> list[RecordedEvent]:
            return await self._fetch_page(start if after is None else after.position + 1, count)

        return EventReader(fetch, left, f"all from position {start}")

    async def _append_tracked(
        self, parts: list[StreamAppend], tracking: Tracking
    ) -> list[AppendResult]:
        """Append validated ``parts`` and advance a checkpoint in one transaction.

        Raises:
            ConcurrencyError: a part's stream, or the checkpoint, is not as expected;
                nothing was written.
            DuplicateError, ClosedResourceError, BackendUnavailable: as :meth:`append`.
        """
        self._check_open()
        results = await self._append(parts, tracking)
        if parts:
            self._signal.notify()
            if INSTRUMENTS.active:
                versions = {result.stream: result.version for result in results}
                INSTRUMENTS.event(self, "appended_many", {"versions": versions})
        return results

    async def _fetch_page(self, start: int, count: int) -> list[RecordedEvent]:
        """Up to ``count`` events of the global log from position ``start`` on."""
        self._check_open()
        page = await self._fetch_all(start, count)
        self._counters.events_read += len(page)
        return page

    def list_streams(
        self, *, prefix: str | None = None, limit: int | None = None
    ) -> AsyncIterator[StreamInfo]:
        """List the streams that have events, by name: ``async for info in ...``.

        Soft-deleted streams are listed too (``deleted`` is set); names that only
        have metadata (a :class:`~corral.eventsourcing.Checkpoints` entry, say) and
        no event are not. Nothing is read until iteration starts; the streams are read
        in pages, so listing a million streams keeps one page in memory, and a stream
        created while the listing runs is listed if its name comes after the current
        page.

        Args:
            prefix: list only the streams whose name starts with it (``"order-"``).
            limit: list at most this many streams (``>= 1``); all by default.

        Returns:
            An async iterator of :class:`StreamInfo`, in name order (code point order;
            on PostgreSQL, the database's collation).

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad input, raised by this call.
            ClosedResourceError: the store is closed (also raised mid-iteration).
            BackendUnavailable: the database cannot be used (raised by iteration).

        Cancellation: cancelling a page read abandons it; nothing is held between pages.
        """
        if prefix is not None and not isinstance(prefix, str):
            raise ArgumentTypeError(
                f"prefix must be a str or None, not {type(prefix).__name__} ({prefix!r})"
            )
        left = count_arg(limit, "limit")
        self._check_open()
        return self._list_streams(prefix or "", left)

    async def _list_streams(self, prefix: str, left: int | None) -> AsyncIterator[StreamInfo]:
        after = ""
        while left is None or left > 0:
            count = PAGE_SIZE if left is None else min(left, PAGE_SIZE)
            self._check_open()
            page = await self._fetch_streams(prefix, after, count)
            for info in page:
                yield info
            if len(page) < count:
                return
            after = page[-1].stream
            if left is not None:
                left -= len(page)

    async def head_position(self) -> int:
        """The position of the last event in the global log, 0 while it is empty.

        It is the position of the last event :meth:`read_all` would return if it read
        now (on PostgreSQL, events behind an append still in flight are not counted yet).
        One cheap query: use it to tell how far behind a reader is.

        Raises:
            ClosedResourceError: the store is closed.
            BackendUnavailable: the database cannot be used.
        """
        self._check_open()
        return await self._head_position()

    def subscribe(
        self,
        *,
        stream: str | None = None,
        category: str | None = None,
        from_position: int = 0,
        poll_interval: Seconds = DEFAULT_POLL_INTERVAL,
    ) -> Subscription:
        """Follow the events of the store, a category or a stream: ``async for event in ...``.

        The :class:`Subscription` first delivers the stored events from
        ``from_position`` on (catch-up), then each new event as it commits (live), in
        global order, with no gap and no duplicate at the switch. It never ends by
        itself: break out of the loop, or :meth:`Subscription.close` it.

        Args:
            stream: deliver only this stream's events.
            category: deliver only the events of streams named ``category`` or
                ``category-...`` (a stream's category is its name up to the first
                ``"-"``). At most one of ``stream`` and ``category``; neither: all events.
            from_position: the first position to deliver (inclusive, as in
                :meth:`read_all`); to resume after a checkpoint, pass ``checkpoint + 1``.
            poll_interval: how often (seconds or ``timedelta``, loop time) a live
                subscription looks for events appended by other processes or store
                objects, in case the engine does not notice them sooner (SQLite
                does, within its watch interval; PostgreSQL as they commit, by
                LISTEN/NOTIFY); appends through this store object wake it at once.

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad input, raised by this call.
            ClosedResourceError: the store is closed (also raised by iteration).
        """
        subscription = Subscription(
            self,
            self._signal,
            stream=stream,
            category=category,
            from_position=from_position,
            poll_interval=poll_interval,
        )
        self._check_open()
        return subscription

    async def get_stream_metadata(self, stream: str) -> StreamMetadata:
        """The stream's version, state and custom metadata (for any name, even unused).

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad ``stream``.
            ClosedResourceError: the store is closed.
            BackendUnavailable: the database cannot be used.
        """
        stream = stream_arg(stream)
        self._check_open()
        version, deleted, truncate_before, custom = await self._get_stream(stream)
        return StreamMetadata(
            stream,
            version,
            version > 0 and not deleted,
            deleted,
            truncate_before,
            decode_custom_metadata(custom),
        )

    async def set_stream_metadata(self, stream: str, metadata: Mapping[str, Any]) -> None:
        """Replace the stream's custom metadata (a JSON-like mapping with ``str`` keys).

        Setting metadata does not create the stream: it still does not exist for
        :data:`NO_STREAM` checks until an event is appended.

        Raises:
            ArgumentTypeError: bad ``stream``, or ``metadata`` is not JSON-like.
            InvalidArgumentError: ``stream`` is empty.
            ClosedResourceError: the store is closed.
            BackendUnavailable: the database cannot be used.
        """
        stream = stream_arg(stream)
        custom = custom_metadata_arg(metadata)
        self._check_open()
        await self._set_stream(stream, custom=custom)

    async def truncate_before(self, stream: str, version: int) -> None:
        """Hide the stream's events before ``version`` from :meth:`read_stream`.

        The events stay in the global log (:meth:`read_all`); the stream's version does
        not change. Setting a lower value later shows them again.

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad ``stream`` or ``version``.
            ClosedResourceError: the store is closed.
            BackendUnavailable: the database cannot be used.
        """
        stream = stream_arg(stream)
        version = version_arg(version, "version")
        self._check_open()
        await self._set_stream(stream, truncate_before=version)

    async def delete_stream(self, stream: str, *, expected_version: ExpectedVersion = ANY) -> None:
        """Soft-delete ``stream``: it reads as empty and no longer exists.

        Its events stay in the global log. Appending to it again is allowed (a
        :data:`NO_STREAM` append passes): versions continue where they were and only
        the new events are read. Deleting a stream that does not exist does nothing.

        Raises:
            ConcurrencyError: the stream is not at ``expected_version``.
            ArgumentTypeError, InvalidArgumentError: bad input.
            ClosedResourceError: the store is closed.
            BackendUnavailable: the database cannot be used.
        """
        stream = stream_arg(stream)
        expected = expected_arg(expected_version)
        self._check_open()
        await self._delete_stream(stream, expected)

    async def close(self) -> None:
        """Finish the appends already queued, then release the database. Idempotent.

        Later calls to anything but :meth:`close`, :meth:`statistics` and ``repr``
        raise ``ClosedResourceError``.

        Cancellation: the store is closed even if the wait is cancelled.
        """
        if self._closed:
            return
        self._closed = True
        self._signal.notify()
        await self._close()

    async def __aenter__(self) -> EventStore:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def statistics(self) -> EventStoreStatistics:
        """A snapshot of the store's activity since it was opened."""
        counters = self._counters
        return EventStoreStatistics(
            engine=self.engine,
            closed=self._closed,
            appends=counters.appends,
            events_appended=counters.events_appended,
            idempotent_appends=counters.idempotent_appends,
            conflicts=counters.conflicts,
            transactions=counters.transactions,
            pending_appends=self._pending(),
            events_read=counters.events_read,
            last_position=counters.last_position,
        )

    def __repr__(self) -> str:
        counters = self._counters
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} {self._describe()} {state}, {counters.appends} appends, "
            f"last position {counters.last_position}, {self._pending()} pending>"
        )


def _bool_error(name: str, value: object) -> ArgumentTypeError:
    return ArgumentTypeError(f"{name} must be a bool, not {type(value).__name__} ({value!r})")
