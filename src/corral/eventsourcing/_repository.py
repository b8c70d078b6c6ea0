"""Repositories: load aggregates by replaying their stream, save their new events."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from .._core._hooks import INSTRUMENTS
from ..errors import ArgumentTypeError, ConcurrencyError, InvalidArgumentError
from ..optimize._limiter import size_arg
from ._aggregate import Aggregate, Decider
from ._codec import EventCodec
from ._rules import StreamAppend
from ._snapshots import Snapshots
from ._store import EventStore
from ._types import NO_STREAM

__all__ = ("Decided", "DeciderRepository", "Loaded", "Repository")

A = TypeVar("A", bound=Aggregate)
C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """A functional aggregate's state and the stream version it reflects.

    Attributes:
        state: the state after every stored event.
        version: the stream's version (0: no events).
    """

    state: S
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class Decided(Generic[E, S]):
    """What :meth:`DeciderRepository.handle` did.

    Attributes:
        events: the events the command caused, now stored (empty: nothing changed).
        state: the state after them.
        version: the stream's version after them.
        attempts: how many times the command was decided (more than 1 after conflicts).
    """

    events: tuple[E, ...]
    state: S
    version: int
    attempts: int


class _Streams:
    """What both repositories share: stream names, replay, append, snapshots, retries."""

    __slots__ = ("_attempts", "_category", "_codec", "_snapshots", "_store")

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        category: str,
        snapshots: Snapshots | None,
        attempts: int,
    ) -> None:
        if not isinstance(store, EventStore):
            raise ArgumentTypeError(f"store must be an EventStore, not {type(store).__name__}")
        if not isinstance(codec, EventCodec):
            raise ArgumentTypeError(f"codec must be an EventCodec, not {type(codec).__name__}")
        if not isinstance(category, str):
            raise ArgumentTypeError(f"category must be a str, not {type(category).__name__}")
        if not category or "-" in category:
            raise InvalidArgumentError(
                f"category must be a non-empty name without '-', not {category!r}"
            )
        self._store = store
        self._codec = codec
        self._category = category
        self._snapshots = snapshots
        self._attempts = size_arg(attempts, "attempts")

    def __repr__(self) -> str:
        every = None if self._snapshots is None else self._snapshots.every
        snapshots = "no snapshots" if every is None else f"snapshots every {every} events"
        return f"<{type(self).__name__} {self._category!r}, {snapshots}>"

    def stream_name(self, id: str) -> str:
        """The stream of the aggregate ``id``: ``"{category}-{id}"``.

        Raises:
            ArgumentTypeError, InvalidArgumentError: ``id`` is not a non-empty ``str``.
        """
        if not isinstance(id, str):
            raise ArgumentTypeError(f"id must be a str, not {type(id).__name__} ({id!r})")
        if not id:
            raise InvalidArgumentError("id must not be empty")
        return f"{self._category}-{id}"

    async def _replay(
        self, stream: str, restore: Callable[[Any], None], apply: Callable[[Any], None]
    ) -> int:
        version = 0
        if self._snapshots is not None:
            snapshot = await self._snapshots.load(self._store, stream)
            if snapshot is not None:
                version, state = snapshot
                restore(state)
        decode = self._codec.decode
        async for recorded in self._store.read_stream(stream, from_version=version + 1):
            apply(decode(recorded))
            version = recorded.version
        return version

    def _part(self, stream: str, version: int, events: Sequence[Any]) -> StreamAppend:
        """``events`` encoded, as an append to ``stream`` expecting ``version``."""
        encode = self._codec.encode
        return StreamAppend(stream, tuple(encode(event) for event in events), version or NO_STREAM)

    async def _append(self, part: StreamAppend, version: int, state: Callable[[], Any]) -> int:
        """Make ``part`` (expecting ``version``), then take a snapshot if one is due."""
        stream = part.stream
        result = await self._store.append(stream, part.events, expected_version=part.expected)
        if self._snapshots is not None and self._snapshots.due(version, result.version):
            await self._snapshots.save(self._store, stream, result.version, state())
            if INSTRUMENTS.active:
                INSTRUMENTS.event(
                    self, "snapshot_saved", {"stream": stream, "version": result.version}
                )
        return result.version

    def _retry_or_raise(self, conflict: ConcurrencyError, attempt: int) -> None:
        if attempt >= self._attempts:
            raise conflict
        if INSTRUMENTS.active:
            INSTRUMENTS.event(
                self,
                "conflict_retried",
                {"stream": conflict.stream, "attempt": attempt, "actual": conflict.actual},
            )


def _snapshots_arg(
    every: int | None, state_type: type[Any] | None, schema: int
) -> Snapshots | None:
    if every is None:
        return None
    if state_type is None:
        raise InvalidArgumentError("snapshot_every needs a snapshot_type")
    return Snapshots(every, state_type, schema=schema)


class Repository(_Streams, Generic[A]):
    """Loads and saves :class:`Aggregate` objects of one class, each in its own stream.

    The aggregate ``id`` lives in the stream ``"{category}-{id}"``. :meth:`load`
    replays the stream (from the latest snapshot, if any) through the aggregate's
    ``@when`` handlers; :meth:`save` appends the pending events with the loaded
    version as the expected version, so a save racing with another raises
    :class:`~corral.errors.ConcurrencyError` and writes nothing.

    Snapshots: with ``snapshot_every=N``, a save that crosses a multiple of ``N``
    events stores ``aggregate.snapshot()`` in the stream's metadata (see
    :class:`Snapshots`), and loads start from it through ``aggregate.restore()``.

    Cancellation: a cancelled :meth:`load` leaves nothing behind; a cancelled
    :meth:`save` may or may not have appended (the store makes the append whole or
    absent), so discard the aggregate and load it again.

    Instrumentation: ``conflict_retried`` (``stream``, ``attempt``, ``actual``
    version) before each retry, and ``snapshot_saved`` (``stream``, ``version``).

    Thread-safety: use from one event loop; the repository itself keeps no state
    between calls, so tasks may share it.

    Args:
        store: the event store.
        codec: the codec with every event class of the aggregate registered.
        aggregate_type: the :class:`Aggregate` subclass.
        category: the stream name prefix (no ``-``).
        snapshot_every: take a snapshot every this many events; none by default.
        snapshot_type: the class ``snapshot()`` returns (needed for snapshots).
        snapshot_schema: the snapshot schema version (see :class:`Snapshots`).
        attempts: how many times :meth:`handle` runs a command in all when saves
            conflict (``>= 1``).

    Raises:
        ArgumentTypeError, InvalidArgumentError: bad arguments.
    """

    __slots__ = ("_aggregate_type",)

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        aggregate_type: type[A],
        *,
        category: str,
        snapshot_every: int | None = None,
        snapshot_type: type[Any] | None = None,
        snapshot_schema: int = 1,
        attempts: int = 3,
    ) -> None:
        if not (isinstance(aggregate_type, type) and issubclass(aggregate_type, Aggregate)):
            raise ArgumentTypeError(
                f"aggregate_type must be an Aggregate subclass, not {aggregate_type!r}"
            )
        snapshots = _snapshots_arg(snapshot_every, snapshot_type, snapshot_schema)
        super().__init__(store, codec, category, snapshots, attempts)
        self._aggregate_type = aggregate_type

    async def load(self, id: str) -> A:
        """The aggregate ``id`` as its stream tells (version 0 and fresh if it has none).

        Raises:
            SerializationError: a stored event or the snapshot cannot be decoded.
            UsageError: the aggregate has no handler for a stored event's type.
            ClosedResourceError, BackendUnavailable: as the store's reads.
        """
        stream = self.stream_name(id)
        aggregate = self._aggregate_type(id)
        aggregate._replayed(await self._replay(stream, aggregate.restore, aggregate.apply))
        return aggregate

    async def save(self, aggregate: A) -> None:
        """Append the aggregate's pending events, expecting the version it was loaded at.

        Does nothing if no event is pending. Afterwards the aggregate's version is the
        stream's and nothing is pending.

        Raises:
            ConcurrencyError: the stream moved since the aggregate was loaded; nothing
                was written.
            ArgumentTypeError: ``aggregate`` is not of this repository's class, or an
                event cannot be encoded.
            ClosedResourceError, BackendUnavailable: as the store's writes.
        """
        if not isinstance(aggregate, self._aggregate_type):
            raise ArgumentTypeError(
                f"aggregate must be a {self._aggregate_type.__name__}, "
                f"not {type(aggregate).__name__}"
            )
        pending = aggregate.pending_events
        if not pending:
            return
        stream = self.stream_name(aggregate.id)
        part = self._part(stream, aggregate.version, pending)
        aggregate._saved(await self._append(part, aggregate.version, aggregate.snapshot))

    async def _decide(self, id: str, command: Callable[[A], object]) -> tuple[A, StreamAppend]:
        """Load ``id`` and run ``command``; the aggregate and the append it asks for.

        Writes nothing: the aggregate keeps its events pending. :meth:`handle` saves
        them; a process manager's context stages the append instead.
        """
        _command_arg(command)
        aggregate = await self.load(id)
        _no_awaitable(command(aggregate))
        stream = self.stream_name(id)
        return aggregate, self._part(stream, aggregate.version, aggregate.pending_events)

    async def handle(self, id: str, command: Callable[[A], object]) -> A:
        """Load ``id``, run ``command(aggregate)``, save; on a conflict, all over again.

        ``command`` is a plain function calling the aggregate's methods, e.g.
        ``lambda account: account.deposit(10)``; it runs once per attempt, on a freshly
        loaded aggregate, so it must not have other effects. Only
        :class:`~corral.errors.ConcurrencyError` is retried, at once, up to
        ``attempts`` runs in all; anything ``command`` raises propagates and nothing is
        saved. Cancellation is never retried.

        Returns:
            The saved aggregate.

        Raises:
            ConcurrencyError: every attempt conflicted.
            ArgumentTypeError: ``command`` is not a plain function (a coroutine
                function is refused).
            Whatever ``command``, :meth:`load` and :meth:`save` raise.
        """
        _command_arg(command)
        attempt = 1
        while True:
            aggregate = await self.load(id)
            _no_awaitable(command(aggregate))
            try:
                await self.save(aggregate)
            except ConcurrencyError as conflict:
                self._retry_or_raise(conflict, attempt)
                attempt += 1
            else:
                return aggregate


class DeciderRepository(_Streams, Generic[C, E, S]):
    """Runs commands against functional aggregates (:class:`Decider`), one per stream.

    :meth:`handle` loads the state (replaying ``evolve`` over the stream, from the
    latest snapshot if any), calls ``decide(command, state)``, and appends the events
    it returns with the loaded version as the expected version; when another writer
    got there first it decides again on the new state, up to ``attempts`` times.

    Snapshots: with ``snapshot_every=N``, the state itself is the snapshot (decoded
    as ``snapshot_type``, by default the class of ``decider.initial_state``).

    Cancellation: a cancelled :meth:`handle` may or may not have appended its events
    (all or none of them); a cancelled :meth:`load` leaves nothing behind.

    Instrumentation: ``conflict_retried`` (``stream``, ``attempt``, ``actual``
    version) before each retry, and ``snapshot_saved`` (``stream``, ``version``).

    Thread-safety: use from one event loop; tasks may share it.

    Args:
        store: the event store.
        codec: the codec with every event class registered.
        decider: the aggregate's initial state, ``decide`` and ``evolve``.
        category: the stream name prefix (no ``-``).
        snapshot_every: take a snapshot every this many events; none by default.
        snapshot_type: the state's class for snapshots.
        snapshot_schema: the snapshot schema version (see :class:`Snapshots`).
        attempts: how many times a command is decided in all when appends conflict.

    Raises:
        ArgumentTypeError, InvalidArgumentError: bad arguments.
    """

    __slots__ = ("_decider",)

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        decider: Decider[C, E, S],
        *,
        category: str,
        snapshot_every: int | None = None,
        snapshot_type: type[Any] | None = None,
        snapshot_schema: int = 1,
        attempts: int = 3,
    ) -> None:
        if not isinstance(decider, Decider):
            raise ArgumentTypeError(f"decider must be a Decider, not {type(decider).__name__}")
        if snapshot_type is None:
            snapshot_type = type(decider.initial_state)
        snapshots = _snapshots_arg(snapshot_every, snapshot_type, snapshot_schema)
        super().__init__(store, codec, category, snapshots, attempts)
        self._decider = decider

    async def load(self, id: str) -> Loaded[S]:
        """The state of ``id`` and its stream's version (the initial state and 0 if none).

        Raises:
            SerializationError: a stored event or the snapshot cannot be decoded.
            ClosedResourceError, BackendUnavailable: as the store's reads.
        """
        decider = self._decider
        state = decider.initial_state

        def restore(snapshot: Any) -> None:
            nonlocal state
            state = snapshot

        def apply(event: Any) -> None:
            nonlocal state
            state = decider.evolve(state, event)

        version = await self._replay(self.stream_name(id), restore, apply)
        return Loaded(state, version)

    async def handle(self, id: str, command: C) -> Decided[E, S]:
        """Decide ``command`` on the current state of ``id`` and store the events.

        Only :class:`~corral.errors.ConcurrencyError` is retried (at once, deciding
        again on the reloaded state); whatever ``decide`` raises propagates and
        nothing is stored. Cancellation is never retried.

        Raises:
            ConcurrencyError: every attempt conflicted.
            ArgumentTypeError: ``decide`` returned something that is not an iterable of
                events, or an event cannot be encoded.
            SerializationError, ClosedResourceError, BackendUnavailable: as
                :meth:`load` and the store's appends.
        """
        attempt = 1
        while True:
            decided, part = await self._decide(id, command, attempt)
            if not part.events:
                return decided
            try:
                loaded = decided.version - len(part.events)
                version = await self._append(part, loaded, _returning(decided.state))
            except ConcurrencyError as conflict:
                self._retry_or_raise(conflict, attempt)
                attempt += 1
            else:
                return dataclasses.replace(decided, version=version)

    async def _decide(
        self, id: str, command: C, attempt: int = 1
    ) -> tuple[Decided[E, S], StreamAppend]:
        """Decide ``command`` on the stored state of ``id``, writing nothing.

        Returns what :meth:`handle` returns once the append it asks for (the events
        encoded, expecting the loaded version) is made, and that append. (A stream
        soft-deleted at version ``v`` loads as version 0 and its next events get
        versions from ``v + 1``: then the returned version is ``v`` short.)
        """
        decider = self._decider
        loaded = await self.load(id)
        events = _events_arg(decider.decide(command, loaded.state))
        state = decider.fold(events, loaded.state)
        part = self._part(self.stream_name(id), loaded.version, events)
        return Decided(events, state, loaded.version + len(events), attempt), part


def _returning(value: S) -> Callable[[], S]:
    return lambda: value


def _command_arg(command: object) -> None:
    if inspect.iscoroutinefunction(command):
        raise ArgumentTypeError(
            f"command must be a plain function, not the coroutine function {command!r}"
        )
    if not callable(command):
        raise ArgumentTypeError(
            f"command must be a function, not {type(command).__name__} ({command!r})"
        )


def _no_awaitable(result: object) -> None:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise ArgumentTypeError(
            "command returned an awaitable; it must be a plain function that calls the "
            "aggregate's methods"
        )


def _events_arg(events: object) -> tuple[Any, ...]:
    if isinstance(events, (str, bytes)) or not hasattr(events, "__iter__"):
        raise ArgumentTypeError(
            f"decide must return an iterable of events, not {type(events).__name__} ({events!r})"
        )
    return tuple(events)
