"""Process managers: policies that turn stored events into new events and commands.

A :class:`ProcessManager` handles one stored event at a time through a
:class:`ProcessContext`, which stages what the event causes; the
:class:`~corral.eventsourcing.ProcessRunner` commits the staged appends together with
the manager's checkpoint, in one transaction of the store.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar, overload

from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError
from ._aggregate import Aggregate
from ._projection import categories_arg, name_arg
from ._repository import Decided, DeciderRepository, Repository
from ._rules import StreamAppend, single_append_arg
from ._store import EventStore
from ._types import ANY, ExpectedVersion, NewEvent, RecordedEvent

__all__ = ("ProcessContext", "ProcessManager", "manager_arg")

A = TypeVar("A", bound=Aggregate)
C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


class ProcessManager(abc.ABC):
    """A policy: for each stored event of its categories, what new events it causes.

    Subclass it, set :attr:`name` (its checkpoint's name: keep it stable) and, to see
    only some streams, :attr:`categories`; implement :meth:`handle`. Run it with a
    :class:`~corral.eventsourcing.ProcessRunner`.

    Exactly-once effect: whatever ``handle`` stages through its context for an event
    is committed in ONE transaction with the advance of the manager's checkpoint past
    that event, and only if the checkpoint was still just before it. After a crash, or
    with two runners of the same manager, each event's effect is therefore committed
    once, never twice and never half. ``handle`` itself may run more than once for an
    event (after a crash before the commit, after a conflict): it must have no effect
    other than what it stages, and reads only through ``ctx.store`` or its own state.

    Example::

        class Payments(ProcessManager):
            name = "payments"
            categories = ("order",)

            async def handle(self, event, ctx):
                if event.type == "OrderPlaced":
                    order = codec.decode(event)
                    ctx.append(f"payment-{order.id}", [codec.encode(PaymentRequested(...))])
    """

    #: The manager's name: its checkpoint is stored under it (``$checkpoint-<name>``).
    name: ClassVar[str]

    #: The categories whose events it handles (a stream's category is its name up to
    #: the first ``"-"``); empty: every stream except system streams (named ``$...``).
    categories: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
        """Stage, through ``ctx``, what ``event`` causes (nothing: the event has no effect).

        Raising stops the runner with :class:`~corral.errors.ProcessManagerError`;
        nothing staged for ``event`` is committed.
        """


def manager_arg(manager: object) -> ProcessManager:
    """Check a process manager: its type, name and categories.

    Raises:
        ArgumentTypeError: not a :class:`ProcessManager`, or a name or category of the
            wrong type.
        InvalidArgumentError: an empty name, an empty category or one holding ``"-"``.
    """
    if not isinstance(manager, ProcessManager):
        raise ArgumentTypeError(
            f"manager must be a ProcessManager, not {type(manager).__name__} ({manager!r})"
        )
    name_arg(manager)
    categories_arg(manager)
    return manager


def accepts(categories: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a stream's events go to a manager of ``categories``."""
    if not categories:
        return lambda stream: not stream.startswith("$")
    wanted = frozenset(categories)
    return lambda stream: stream.partition("-")[0] in wanted


class ProcessContext:
    """What a :class:`ProcessManager` may do while it handles one event.

    Made by the runner for each run of ``handle``. Appends are *staged*: nothing is
    written until ``handle`` returns, and then the runner commits all of them with the
    manager's checkpoint, in one transaction. If a staged append conflicts (its stream
    is not at the expected version any more), the runner runs ``handle`` again for the
    same event with a fresh context, so it decides on fresh state.

    Use it only inside the ``handle`` call it was given to; afterwards it raises
    :class:`~corral.errors.UsageError`.
    """

    __slots__ = ("_event", "_finished", "_parts", "_store")

    def __init__(self, store: EventStore, event: RecordedEvent) -> None:
        self._store = store
        self._event = event
        self._parts: dict[str, StreamAppend] = {}
        self._finished = False

    def __repr__(self) -> str:
        state = "finished" if self._finished else "open"
        count = sum(len(part.events) for part in self._parts.values())
        return (
            f"<ProcessContext for {self._event.stream!r} position {self._event.position}, "
            f"{count} events staged in {len(self._parts)} streams, {state}>"
        )

    @property
    def store(self) -> EventStore:
        """The store, for reads (write through :meth:`append` and :meth:`handle`)."""
        return self._store

    @property
    def event(self) -> RecordedEvent:
        """The event being handled."""
        return self._event

    @property
    def staged(self) -> dict[str, tuple[tuple[NewEvent, ...], ExpectedVersion]]:
        """What is staged so far: ``{stream: (events, expected_version)}`` (a copy)."""
        return {stream: (part.events, part.expected) for stream, part in self._parts.items()}

    def _check_open(self) -> None:
        if self._finished:
            raise UsageError(
                f"{self!r} is used after its handle() returned; stage appends while "
                "handling the event"
            )

    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> None:
        """Stage an append of ``events`` to ``stream``, committed with the checkpoint.

        A stream staged twice in one ``handle`` gets both lists of events in one append
        if the second append expects :data:`ANY`; any other expectation for a stream
        already staged is refused (stage all its events in one call).

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad arguments (as
                :meth:`EventStore.append`), raised here; nothing is staged.
            UsageError: the stream is staged already with another expectation, or
                ``handle`` has returned.
        """
        part = single_append_arg(stream, events, expected_version)
        self._stage(part)

    def _stage(self, part: StreamAppend) -> None:
        self._check_open()
        staged = self._parts.get(part.stream)
        if staged is None:
            self._parts[part.stream] = part
            return
        if part.expected is not ANY:
            raise UsageError(
                f"stream {part.stream!r} is staged already; a second append to it in one "
                f"handle() must expect ANY, not {part.expected!r}"
            )
        ids = {event.id for event in staged.events}
        for event in part.events:
            if event.id in ids:
                raise InvalidArgumentError(f"event id {event.id} is staged twice")
        events = staged.events + part.events
        self._parts[part.stream] = StreamAppend(part.stream, events, staged.expected)

    @overload
    async def handle(
        self, repository: DeciderRepository[C, E, S], id: str, command: C
    ) -> Decided[E, S]: ...

    @overload
    async def handle(
        self, repository: Repository[A], id: str, command: Callable[[A], object]
    ) -> A: ...

    async def handle(self, repository: Any, id: str, command: Any) -> Any:
        """Run a command as ``repository.handle`` would, staging its events.

        Loads ``id`` from the store, decides ``command`` (a :class:`DeciderRepository`)
        or runs ``command(aggregate)`` (a :class:`Repository`), and stages the new events
        expecting the loaded version: if the aggregate moves before the commit, the
        runner handles the event again on its new state. Snapshots are not taken for
        staged events.

        Returns:
            For a :class:`DeciderRepository`, the :class:`Decided` outcome (its version
            is the stream's once the staged events are committed); for a
            :class:`Repository`, the aggregate with the new events applied and no longer
            pending.

        Raises:
            ArgumentTypeError: ``repository`` is neither kind of repository, or bad
                ``id`` or ``command`` (as the repository's ``handle``).
            InvalidArgumentError: ``repository`` reads another store object.
            UsageError: as :meth:`append`.
            Exception: whatever loading and deciding raise.
        """
        self._check_open()
        if not isinstance(repository, DeciderRepository | Repository):
            raise ArgumentTypeError(
                "repository must be a DeciderRepository or a Repository, "
                f"not {type(repository).__name__} ({repository!r})"
            )
        if repository._store is not self._store:
            raise InvalidArgumentError(
                f"{repository!r} reads {repository._store!r}, not this runner's store "
                f"{self._store!r}"
            )
        result: Any
        result, part = await repository._decide(id, command)
        if isinstance(result, Aggregate):
            result._saved(result.version + len(part.events))
        if part.events:
            self._stage(part)
        return result

    def _finish(self) -> list[StreamAppend]:
        """Close the context; the staged appends, in the order first staged."""
        self._finished = True
        return list(self._parts.values())
