"""Projector: runs a projection over the global log, one read-model transaction per batch."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError, ProjectionError
from ..optimize._limiter import size_arg
from ._position_waiters import PositionWaiters
from ._projection import Projection, categories_arg, name_arg
from ._read_model import ReadModel
from ._store import EventStore
from ._subscription import DEFAULT_POLL_INTERVAL, wait_for_commit
from ._types import RecordedEvent

__all__ = ("DEFAULT_BATCH_SIZE", "Progress", "Projector", "ProjectorStatistics")

T = TypeVar("T")

#: Events a projector reads and applies per transaction, unless told otherwise.
DEFAULT_BATCH_SIZE = 256

#: ``progress(applied, position, head)``: called after each batch of a catch-up.
Progress = Callable[[int, int, int], object]


@dataclasses.dataclass(frozen=True, slots=True)
class ProjectorStatistics:
    """A snapshot of a :class:`Projector`."""

    #: The projection's name.
    name: str
    #: The last position applied (the projection's checkpoint), 0 before the first.
    position: int
    #: Events passed to ``apply`` (or ``apply_batch``) and committed, since the projector
    #: was made.
    events_applied: int
    #: Events read but not for this projection (other categories, system streams).
    events_skipped: int
    #: Batches committed.
    batches: int
    #: Batches rolled back (``apply`` or ``apply_batch`` raised, the commit failed, or a
    #: cancellation).
    failed_batches: int
    #: Rebuilds completed.
    rebuilds: int
    #: Calls of :meth:`Projector.run` in progress.
    running: int
    #: Callers of :meth:`Projector.wait_for_position` waiting.
    waiting: int


class _CheckpointMoved(Exception):
    """Another projector committed this projection's checkpoint meanwhile."""


class Projector(Generic[T]):
    """Applies a :class:`Projection` to a :class:`ReadModel`, each event exactly once.

    It reads the store's global log in batches from the projection's checkpoint on;
    each batch is applied in ONE read-model transaction that also moves the
    checkpoint past the batch's last position, so the read model never holds half a
    batch, and an event is never applied twice or skipped, whatever crashes when.
    Events of streams the projection does not want (see
    :attr:`Projection.categories`) are not applied, but the checkpoint moves past them.

    On its first use the projector runs :meth:`Projection.setup` and loads the
    checkpoint, in one transaction. :meth:`catch_up` applies what is stored now,
    :meth:`run` follows the store for good, :meth:`rebuild` starts over from an empty
    read model, and :meth:`wait_for_position` lets a writer read its own writes.
    Several calls may overlap (``run`` in one task, ``rebuild`` or ``catch_up`` in
    another): batches are applied one at a time, each from the current checkpoint.

    Waking up: :meth:`run` wakes as soon as an append through the same store object
    commits, as a subscription does for commits elsewhere (SQLite watches its file),
    and polls every ``poll_interval`` seconds (loop time) in any case.

    Args:
        store: the event store to read.
        projection: the projection to apply.
        read_model: where the projection's state and checkpoint live.
        batch_size: most events read and applied per transaction (``>= 1``).
        poll_interval: seconds (or ``timedelta``) between looks for new events while
            live (``> 0``).

    Raises:
        ArgumentTypeError, InvalidArgumentError: a bad argument, or a projection whose
            ``name`` or ``categories`` are malformed.

    Thread-safety: use a projector from the tasks of one event loop.
    """

    __slots__ = (
        "_accepts",
        "_applied",
        "_batch_size",
        "_batches",
        "_batches_whole",
        "_failed",
        "_lock",
        "_name",
        "_poll_interval",
        "_position",
        "_position_known",
        "_projection",
        "_read_model",
        "_rebuilds",
        "_running",
        "_set_up",
        "_skipped",
        "_store",
        "_waiters",
    )

    def __init__(
        self,
        store: EventStore,
        projection: Projection[T],
        read_model: ReadModel[T],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: Seconds = DEFAULT_POLL_INTERVAL,
    ) -> None:
        if not isinstance(store, EventStore):
            raise ArgumentTypeError(
                f"store must be an EventStore, not {type(store).__name__} ({store!r})"
            )
        if not isinstance(projection, Projection):
            raise ArgumentTypeError(
                f"projection must be a Projection, not {type(projection).__name__} ({projection!r})"
            )
        if not isinstance(read_model, ReadModel):
            raise ArgumentTypeError(
                f"read_model must be a ReadModel, not {type(read_model).__name__} ({read_model!r})"
            )
        self._name = name_arg(projection)
        self._accepts = _stream_filter(categories_arg(projection))
        # A projection that overrides apply_batch gets each batch in one call; else the
        # events go to apply one by one, so that an error names the event it came from.
        self._batches_whole = type(projection).apply_batch is not Projection.apply_batch
        self._batch_size = size_arg(batch_size, "batch_size")
        self._poll_interval = seconds_arg(poll_interval, "poll_interval")
        if not self._poll_interval > 0:
            raise InvalidArgumentError(
                f"poll_interval must be more than 0 seconds, got {self._poll_interval!r}"
            )
        self._store = store
        self._projection = projection
        self._read_model = read_model
        self._lock = asyncio.Lock()
        self._set_up = False
        self._position_known = False
        self._position = 0
        self._waiters = PositionWaiters()
        self._applied = 0
        self._skipped = 0
        self._batches = 0
        self._failed = 0
        self._rebuilds = 0
        self._running = 0

    @property
    def name(self) -> str:
        """The projection's name."""
        return self._name

    @property
    def position(self) -> int:
        """The last position applied (committed with the checkpoint), 0 before the first.

        Before the projector's first use it is 0, not the stored checkpoint.
        """
        return self._position

    def statistics(self) -> ProjectorStatistics:
        """A snapshot of the projector's activity since it was made."""
        return ProjectorStatistics(
            name=self._name,
            position=self._position,
            events_applied=self._applied,
            events_skipped=self._skipped,
            batches=self._batches,
            failed_batches=self._failed,
            rebuilds=self._rebuilds,
            running=self._running,
            waiting=len(self._waiters),
        )

    def __repr__(self) -> str:
        state = "running" if self._running else "idle"
        return (
            f"<Projector {self._name!r} at position {self._position}, {self._applied} "
            f"applied in {self._batches} batches, {state}, {len(self._waiters)} waiting>"
        )

    # -- applying batches ------------------------------------------------------------

    async def _start(self) -> None:
        """Run ``setup`` once and load the checkpoint when it is not known (lock held)."""
        if self._set_up and self._position_known:
            return
        async with self._read_model.transaction() as tx:
            if not self._set_up:
                await self._read_model._lock_projection(tx, self._name)
                await self._projection.setup(tx)
            position = await self._read_model._load_checkpoint(tx, self._name)
        self._set_up = True
        self._position_known = True
        self._moved_to(position)

    async def _step(self) -> tuple[int, int]:
        """Read and apply one batch: ``(events read, events applied)``."""
        async with self._lock:
            await self._start()
            page = await self._store._fetch_page(self._position + 1, self._batch_size)
            if not page:
                return 0, 0
            try:
                applied = await self._apply(page)
            except _CheckpointMoved:
                self._failed += 1
                self._position_known = False
                return len(page), 0
            except BaseException:
                self._failed += 1
                # A commit cut short may or may not have happened: ask the read model.
                self._position_known = False
                raise
        return len(page), applied

    async def _apply(self, page: list[RecordedEvent]) -> int:
        accepts = self._accepts
        projection = self._projection
        read_model = self._read_model
        last = page[-1].position
        accepted = [event for event in page if accepts(event.stream)]
        applied = len(accepted)
        async with read_model.transaction() as tx:
            # The checkpoint first: a projector that lost the race stops before applying
            # anything (on a server database the row lock makes it wait for the winner).
            if not await read_model._store_checkpoint(tx, self._name, last, self._position):
                raise _CheckpointMoved
            if self._batches_whole and accepted:
                try:
                    await projection.apply_batch(accepted, tx)
                except Exception as exc:
                    first = accepted[0]
                    raise ProjectionError(
                        self._name, first.stream, first.position, first.type, applied
                    ) from exc
            else:
                apply = projection.apply
                for event in accepted:
                    try:
                        await apply(event, tx)
                    except Exception as exc:
                        raise ProjectionError(
                            self._name, event.stream, event.position, event.type
                        ) from exc
        self._applied += applied
        self._skipped += len(page) - applied
        self._batches += 1
        self._moved_to(last)
        return applied

    def _moved_to(self, position: int) -> None:
        """Record the committed ``position`` and wake the waiters it satisfies."""
        self._position = position
        self._waiters.reached(position)

    # -- the public interface --------------------------------------------------------

    async def catch_up(self, progress: Progress | None = None) -> int:
        """Apply every event up to the store's head (read when the call starts).

        Args:
            progress: called as ``progress(applied, position, head)`` after each
                batch: events applied so far by this call, the position reached, and
                the head this call catches up to.

        Returns:
            How many events this call applied (events of other categories not counted).

        Raises:
            ProjectionError: ``apply`` (or ``apply_batch``) raised; that batch was
                rolled back, the batches before it are committed. The cause is the
                projection's exception.
            ArgumentTypeError: ``progress`` is not callable.
            ClosedResourceError: the store or the read model is closed.
            BackendUnavailable: from the store or the read model, as is
                ``SerializationError``.
            Exception: whatever ``setup`` or ``progress`` raise.

        Cancellation: the batch in progress is rolled back (or, if its commit had
        started, committed); the batches before it stay committed. Calling again
        resumes from the checkpoint.
        """
        _progress_arg(progress)
        head = await self._store.head_position()
        return await self._catch_up_to(head, progress)

    async def _catch_up_to(self, head: int, progress: Progress | None) -> int:
        applied = 0
        async with self._lock:
            await self._start()
        while self._position < head:
            read, count = await self._step()
            if not read:
                break
            applied += count
            if progress is not None:
                progress(applied, self._position, head)
        return applied

    async def run(self) -> None:
        """Catch up, then apply new events as they commit, until cancelled.

        Raises:
            ProjectionError: ``apply`` (or ``apply_batch``) raised (the batch was rolled
                back; the projector stops: fix the cause, then run again).
            ClosedResourceError: the store or the read model was closed.
            BackendUnavailable, SerializationError: from the store or the read model.

        Cancellation: the only way to stop it; the batch in progress is rolled back (or
        committed if its commit had started), nothing else is left behind.
        """
        self._running += 1
        try:
            await self.catch_up()
            store = self._store
            signal = store._signal
            while True:
                generation = signal.generation
                read, _ = await self._step()
                if read or generation != signal.generation:
                    continue
                await wait_for_commit(store, signal.waiter(), self._poll_interval)
        finally:
            self._running -= 1

    async def rebuild(self, progress: Progress | None = None) -> int:
        """Empty the read model and apply every event again, from position 1.

        In ONE transaction it calls :meth:`Projection.reset`, sets the checkpoint back
        to 0 and calls :meth:`Projection.setup`; then it catches up as
        :meth:`catch_up` does. Readers see the old state until that transaction
        commits, then a state that grows back batch by batch.

        Args:
            progress: as for :meth:`catch_up`.

        Returns:
            How many events were applied.

        Raises:
            As :meth:`catch_up`; whatever ``reset`` raises (nothing was reset then).

        Cancellation: a cancelled reset leaves the read model as it was; a cancelled
        catch-up leaves the batches applied so far, and :meth:`catch_up` resumes.
        """
        _progress_arg(progress)
        head = await self._store.head_position()
        async with self._lock:
            if not self._set_up:
                await self._start()
            try:
                async with self._read_model.transaction() as tx:
                    await self._read_model._lock_projection(tx, self._name)
                    await self._projection.reset(tx)
                    await self._read_model._store_checkpoint(tx, self._name, 0, None)
                    await self._projection.setup(tx)
            except BaseException:
                self._position_known = False
                raise
            self._position = 0  # waiters stay: what they wait for is not there yet
            self._position_known = True
            self._rebuilds += 1
        return await self._catch_up_to(head, progress)

    async def wait_for_position(self, position: int, *, timeout: Seconds | None = None) -> None:
        """Wait until every event up to ``position`` has been applied and committed.

        Read-your-writes: after ``result = await store.append(...)``, await
        ``projector.wait_for_position(result.positions[-1])`` before reading the read
        model. It returns at once if the projector is there already. Somebody must be
        running :meth:`run` (or :meth:`catch_up`) on this projector object: it wakes
        the waiters as it commits each batch. A :meth:`rebuild` sets the position back
        to 0, so waiters then wait for the rebuild to reach their position.

        Args:
            position: the global position to wait for (``>= 0``).
            timeout: the longest wait in seconds (or ``timedelta``, loop time); ``None``
                waits for as long as it takes.

        Raises:
            TimeoutError: ``timeout`` passed first (the message says where the
                projector is).
            ArgumentTypeError, InvalidArgumentError: a bad argument.

        Cancellation: a cancelled wait leaves nothing behind.
        """
        await self._waiters.wait(
            position, timeout, lambda: self._position, f"projection {self._name!r}"
        )


def _progress_arg(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise ArgumentTypeError(
            f"progress must be a callable or None, not {type(progress).__name__} ({progress!r})"
        )


def _stream_filter(categories: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a stream's events are for a projection of ``categories``."""
    if not categories:
        return lambda stream: not stream.startswith("$")
    wanted = frozenset(categories)
    return lambda stream: stream.partition("-")[0] in wanted
