"""ProcessRunner: feeds a process manager the global log and commits its effects exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from typing import Final

from .._core._hooks import INSTRUMENTS
from .._core._time import Seconds, seconds_arg
from ..errors import (
    ArgumentTypeError,
    ConcurrencyError,
    InvalidArgumentError,
    ProcessManagerError,
    UsageError,
)
from ..optimize._limiter import size_arg
from ._position_waiters import PositionWaiters
from ._process import ProcessContext, ProcessManager, accepts, manager_arg
from ._reader import PAGE_SIZE
from ._rules import StreamAppend
from ._store import EventStore
from ._subscription import DEFAULT_POLL_INTERVAL, wait_for_commit
from ._tracking import Tracking, checkpoint_in, checkpoint_stream
from ._types import RecordedEvent

__all__ = ("ProcessRunner", "ProcessRunnerStatistics")

#: How long (seconds) :meth:`ProcessRunner.catch_up` pauses when the log reads empty
#: below the head it saw (PostgreSQL: an append in flight holds readers back).
_HELD_BACK_PAUSE: Final = 0.01

#: Most events without effect whose checkpoint advance waits to be committed in one go.
CHECKPOINT_BATCH: Final = 256


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessRunnerStatistics:
    """A snapshot of a :class:`ProcessRunner`'s work since it was made.

    Attributes:
        name: the process manager's name.
        position: the manager's checkpoint as last committed or read: every event up
            to it is handled (by this runner or another).
        running: a :meth:`~ProcessRunner.catch_up` or :meth:`~ProcessRunner.run` is
            in progress.
        handled: events given to ``handle`` (each counted once, however many runs).
        skipped: events of other categories, passed over.
        effects: events whose staged appends this runner committed.
        events_appended: events those appends wrote.
        checkpoint_commits: commits that only advanced the checkpoint, past events
            without effect (several events each).
        retries: runs of ``handle`` again after a staged append conflicted.
        conflicts: times another runner of the same manager had moved the checkpoint
            first (this runner then reloaded it and went on from there).
        waiters: tasks in :meth:`~ProcessRunner.wait_for_position`.
    """

    name: str
    position: int
    running: bool
    handled: int
    skipped: int
    effects: int
    events_appended: int
    checkpoint_commits: int
    retries: int
    conflicts: int
    waiters: int


class _Counters:
    __slots__ = (
        "checkpoint_commits",
        "conflicts",
        "effects",
        "events_appended",
        "handled",
        "retries",
        "skipped",
    )

    def __init__(self) -> None:
        self.handled = 0
        self.skipped = 0
        self.effects = 0
        self.events_appended = 0
        self.checkpoint_commits = 0
        self.retries = 0
        self.conflicts = 0


class ProcessRunner:
    """Runs a :class:`ProcessManager` over a store's global log, exactly once per effect.

    It reads the global log after the manager's checkpoint, gives each event of the
    manager's categories to ``handle``, and commits what ``handle`` staged together
    with the advance of the checkpoint to that event, in ONE transaction of the store,
    with a compare-and-set on the checkpoint. Events without effect (of other
    categories, or for which ``handle`` staged nothing) only move the checkpoint; those
    advances are batched, one commit for up to 256 events or what is left of a page.

    The checkpoint is the one :class:`~corral.eventsourcing.Checkpoints` reads under the
    manager's name (the metadata of ``$checkpoint-<name>``).

    Crashes and competition: a runner killed at any point has committed each event's
    effect entirely or not at all, and the checkpoint with it; a restarted runner
    resumes after the checkpoint. Runners of the same manager may run at once, in
    several processes: for each event, one of them commits (the effect and the
    checkpoint advance); the others find the checkpoint moved
    (:attr:`ProcessRunnerStatistics.conflicts`), reload it and skip what it covers.
    They duplicate the work of ``handle``, not its effects.

    Conflicts: when a staged append finds its stream moved (it expected a version,
    e.g. a command run through ``ctx.handle``), the runner runs ``handle`` again for
    that event on fresh state, up to ``attempts`` runs in all, then stops with
    :class:`~corral.errors.ProcessManagerError`.

    Failures: when ``handle`` raises, the runner commits the checkpoint up to the event
    before and stops with :class:`~corral.errors.ProcessManagerError` naming the
    manager, the event's stream and position (the exception is its ``__cause__``);
    nothing of that event is committed. Storage errors (``BackendUnavailable``,
    ``ClosedResourceError``, ...) propagate as they are. Either way the runner can be
    started again; it reloads the checkpoint first.

    Cancellation: cancelling :meth:`catch_up` or :meth:`run` leaves each event's
    effect committed entirely or not at all; the next pass reloads the checkpoint.
    :meth:`wait_for_position` can be cancelled without effect.

    Thread-safety: use from the store's event loop; one pass (:meth:`catch_up` or
    :meth:`run`) at a time.

    Args:
        store: the event store the manager reads and writes.
        manager: the process manager.
        poll_interval: how often (seconds or ``timedelta``, loop time) :meth:`run`
            looks for events appended by other processes or store objects, in case
            the engine does not notice them sooner (SQLite does, as for
            subscriptions); appends through ``store`` wake it at once.
        attempts: how many times ``handle`` runs for one event in all when its staged
            appends conflict (``>= 1``).

    Raises:
        ArgumentTypeError, InvalidArgumentError: bad arguments (also a manager with a
            bad ``name`` or ``categories``).
    """

    __slots__ = (
        "_accepts",
        "_attempts",
        "_counters",
        "_known",
        "_manager",
        "_name",
        "_poll_interval",
        "_position",
        "_running",
        "_store",
        "_waiters",
    )

    def __init__(
        self,
        store: EventStore,
        manager: ProcessManager,
        *,
        poll_interval: Seconds = DEFAULT_POLL_INTERVAL,
        attempts: int = 3,
    ) -> None:
        if not isinstance(store, EventStore):
            raise ArgumentTypeError(
                f"store must be an EventStore, not {type(store).__name__} ({store!r})"
            )
        self._manager = manager_arg(manager)
        self._name = manager.name
        checkpoint_stream(self._name)
        self._poll_interval = seconds_arg(poll_interval, "poll_interval")
        if not self._poll_interval > 0:
            raise InvalidArgumentError(
                f"poll_interval must be more than 0 seconds, got {self._poll_interval!r}"
            )
        self._attempts = size_arg(attempts, "attempts")
        self._store = store
        self._accepts = accepts(manager.categories)
        self._position = 0
        self._known = False  # whether _position is the stored checkpoint
        self._running = False
        self._counters = _Counters()
        self._waiters = PositionWaiters()

    # -- state -------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The manager's checkpoint as last committed or read (0 before the first pass)."""
        return self._position

    @property
    def manager(self) -> ProcessManager:
        """The process manager it runs."""
        return self._manager

    def statistics(self) -> ProcessRunnerStatistics:
        """A snapshot of the runner's work since it was made."""
        counters = self._counters
        return ProcessRunnerStatistics(
            name=self._name,
            position=self._position,
            running=self._running,
            handled=counters.handled,
            skipped=counters.skipped,
            effects=counters.effects,
            events_appended=counters.events_appended,
            checkpoint_commits=counters.checkpoint_commits,
            retries=counters.retries,
            conflicts=counters.conflicts,
            waiters=len(self._waiters),
        )

    def __repr__(self) -> str:
        counters = self._counters
        state = "running" if self._running else "idle"
        return (
            f"<ProcessRunner {self._name!r} at position {self._position}, "
            f"{counters.handled} handled, {counters.effects} effects, {state}>"
        )

    # -- passes ------------------------------------------------------------------------

    async def catch_up(self) -> int:
        """Handle every event stored after the checkpoint, up to the store's head, then return.

        The head is :meth:`EventStore.head_position` when the pass starts: everything
        committed before the call is handled (events appended meanwhile may be
        handled too, or be left for the next pass). On PostgreSQL, a page that comes
        back short while the head is not reached yet (an append of another process in
        flight holds readers back) is read again after a short pause.

        Returns:
            How many events this pass gave to ``handle``.

        Raises:
            ProcessManagerError: ``handle`` raised, or its appends kept conflicting.
            UsageError: another pass of this runner is in progress.
            ClosedResourceError, BackendUnavailable, SerializationError: as the
                store's reads and appends.
        """
        self._start()
        store = self._store
        try:
            head = await store.head_position()
            handled = 0
            while True:
                if not self._known:
                    await self._reload()
                if self._position >= head:
                    return handled
                page = await store._fetch_page(self._position + 1, PAGE_SIZE)
                handled += await self._process(page)
                if not page:
                    await asyncio.sleep(_HELD_BACK_PAUSE)
        finally:
            self._stop()

    async def run(self) -> None:
        """Catch up, then handle each new event as it commits; forever, until cancelled.

        Raises:
            ProcessManagerError: as :meth:`catch_up`; so are ``UsageError``,
                ``ClosedResourceError``, ``BackendUnavailable`` and
                ``SerializationError``.
        """
        self._start()
        store = self._store
        signal = store._signal
        try:
            while True:
                generation = signal.generation
                if not self._known:
                    await self._reload()
                page = await self._store._fetch_page(self._position + 1, PAGE_SIZE)
                if page:
                    await self._process(page)
                    continue
                if generation != signal.generation:
                    continue  # something committed through the store since the read
                await wait_for_commit(store, signal.waiter(), self._poll_interval)
        finally:
            self._stop()

    async def wait_for_position(self, position: int, *, timeout: Seconds | None = None) -> None:
        """Wait until every event up to ``position`` is handled (read your writes).

        Returns at once if the checkpoint is there already; otherwise when a pass of
        this runner commits or reads a checkpoint at or after ``position``.

        Args:
            position: a global position, e.g. from an :class:`AppendResult`.
            timeout: give up after this many seconds (loop time); ``None``: never.

        Raises:
            TimeoutError: ``timeout`` passed first (the message says where the runner
                is).
            ArgumentTypeError, InvalidArgumentError: bad arguments.
            Exception: the error that stopped a pass of this runner while it waited
                (e.g. :class:`~corral.errors.ProcessManagerError`).

        Cancellation: leaves nothing behind.
        """
        await self._waiters.wait(
            position, timeout, lambda: self._position, f"process manager {self._name!r}"
        )

    # -- internals ---------------------------------------------------------------------

    def _start(self) -> None:
        self._store._check_open()
        if self._running:
            raise UsageError(f"{self!r} is already running a pass; run one at a time")
        self._running = True

    def _stop(self) -> None:
        self._running = False
        error = sys.exception()
        if isinstance(error, Exception):
            # The pass failed: nobody waits for a position it will not reach.
            self._waiters.fail(error)

    def _moved(self, position: int) -> None:
        self._position = position
        self._waiters.reached(position)

    async def _reload(self) -> None:
        stream = checkpoint_stream(self._name)
        _, _, _, custom = await self._store._get_stream(stream)
        self._known = True
        self._moved(checkpoint_in(stream, custom))

    async def _process(self, page: list[RecordedEvent]) -> int:
        """Handle ``page``; how many events went to ``handle``."""
        handled = 0
        pending = 0  # events without effect after the checkpoint, not yet committed
        last = 0  # the position of the last of them
        accepts = self._accepts
        counters = self._counters
        for event in page:
            if event.position <= self._position:
                continue  # another runner has handled it
            if not accepts(event.stream):
                counters.skipped += 1
            else:
                handled += 1
                counters.handled += 1
                try:
                    parts = await self._handle(event)
                    if parts:
                        await self._commit(event, parts)  # also past the pending events
                        pending = 0
                        continue
                except ProcessManagerError:
                    if pending:  # the events before it are handled: keep that
                        await self._advance(last)
                    raise
            pending += 1
            last = event.position
            if pending >= CHECKPOINT_BATCH:
                await self._advance(last)
                pending = 0
        if pending:
            await self._advance(last)
        return handled

    async def _handle(self, event: RecordedEvent) -> list[StreamAppend]:
        """Run ``handle`` for ``event``; what it staged."""
        context = ProcessContext(self._store, event)
        try:
            await self._manager.handle(event, context)
        except Exception as exc:
            raise ProcessManagerError(
                self._name, event.stream, event.position, f"handle() raised {exc!r}"
            ) from exc
        finally:
            parts = context._finish()
        return parts

    async def _commit(self, event: RecordedEvent, parts: list[StreamAppend]) -> None:
        """Commit ``parts`` with the checkpoint at ``event``; handle again on conflicts."""
        attempt = 1
        counters = self._counters
        while True:
            tracking = Tracking(self._name, self._position, event.position)
            self._known = False  # until the outcome is known
            try:
                await self._store._append_tracked(parts, tracking)
            except ConcurrencyError as conflict:
                self._known = True
                if conflict.stream != tracking.stream:
                    # An engine may check the streams before the checkpoint: if another
                    # runner moved the checkpoint, the streams moved with it.
                    await self._reload()
                if self._position != tracking.expected or conflict.stream == tracking.stream:
                    counters.conflicts += 1
                    if conflict.stream == tracking.stream:
                        self._moved(conflict.actual)
                    if self._position >= event.position:
                        return  # another runner has handled it
                else:
                    if attempt >= self._attempts:
                        raise ProcessManagerError(
                            self._name,
                            event.stream,
                            event.position,
                            f"its appends conflicted {attempt} times in a row, the last "
                            f"time on stream {conflict.stream!r}",
                        ) from conflict
                    attempt += 1
                    counters.retries += 1
                    if INSTRUMENTS.active:
                        INSTRUMENTS.event(
                            self,
                            "conflict_retried",
                            {"stream": conflict.stream, "attempt": attempt},
                        )
                parts = await self._handle(event)
                if not parts:
                    await self._advance(event.position)
                    return
                continue
            self._known = True
            self._moved(event.position)
            counters.effects += 1
            counters.events_appended += sum(len(part.events) for part in parts)
            return

    async def _advance(self, position: int) -> None:
        """Move the checkpoint to ``position`` past events without effect."""
        while self._position < position:
            tracking = Tracking(self._name, self._position, position)
            self._known = False
            try:
                await self._store._append_tracked([], tracking)
            except ConcurrencyError as conflict:
                self._known = True
                self._counters.conflicts += 1
                self._moved(conflict.actual)
                continue  # commit the rest, if anything is left beyond it
            self._known = True
            self._counters.checkpoint_commits += 1
            self._moved(position)
