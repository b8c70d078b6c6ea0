"""Aggregates in two styles: a functional decider, and a class whose methods record events."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

from ..errors import ArgumentTypeError, UsageError

__all__ = ("Aggregate", "Decider", "when")

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")
A = TypeVar("A", bound="Aggregate")

_HANDLES = "__corral_handles__"


@dataclasses.dataclass(frozen=True, slots=True)
class Decider(Generic[C, E, S]):
    """An aggregate as three pure parts: an initial state, ``decide`` and ``evolve``.

    ``decide(command, state)`` returns the events a command causes (or raises to refuse
    it); ``evolve(state, event)`` returns the state after an event. The state is never
    mutated in place by the repository: treat it as immutable. Load and run commands
    with :class:`DeciderRepository`.

    Thread-safety: immutable; safe to share (if ``decide`` and ``evolve`` are pure).

    Attributes:
        initial_state: the state of a stream without events.
        decide: ``(command, state) -> events``.
        evolve: ``(state, event) -> state``.
    """

    initial_state: S
    decide: Callable[[C, S], Iterable[E]]
    evolve: Callable[[S, E], S]

    def __post_init__(self) -> None:
        for name in ("decide", "evolve"):
            function = getattr(self, name)
            if not callable(function):
                raise ArgumentTypeError(
                    f"{name} must be a function, not {function.__class__.__name__} ({function!r})"
                )

    def fold(self, events: Iterable[E], state: S | None = None) -> S:
        """The state after ``events``, starting from ``state`` (the initial state by default)."""
        current = self.initial_state if state is None else state
        evolve = self.evolve
        for event in events:
            current = evolve(current, event)
        return current


def when(event_type: type[E]) -> Callable[[Callable[[A, E], None]], Callable[[A, E], None]]:
    """Mark an :class:`Aggregate` method as the handler that applies ``event_type``.

    ``@when(Deposited)`` above ``def _deposited(self, event: Deposited) -> None`` makes
    the method run for each ``Deposited`` event, both when the aggregate records one
    and when it is loaded from its stream. A handler only changes state; it decides
    nothing and raises nothing for valid events.

    Raises:
        ArgumentTypeError: ``event_type`` is not a class.
    """
    if not isinstance(event_type, type):
        raise ArgumentTypeError(
            f"event_type must be a class, not {event_type.__class__.__name__} ({event_type!r})"
        )

    def mark(handler: Callable[[A, E], None]) -> Callable[[A, E], None]:
        setattr(handler, _HANDLES, event_type)
        return handler

    return mark


class Aggregate:
    """Base class of aggregates whose command methods record events.

    A command method checks its rules against the current state, then calls
    :meth:`record` with the event; :meth:`record` applies it at once through the
    method marked ``@when(ThatEvent)`` and keeps it as pending until a
    :class:`Repository` saves it. Loading replays the stream through the same
    handlers. Subclasses take the aggregate's id as their only required constructor
    argument (``__init__(self, id)``), so a repository can make an empty one.

    For snapshots, override :meth:`snapshot` and :meth:`restore`.

    Thread-safety: not thread-safe; an instance belongs to one task at a time.

    Attributes:
        id: the aggregate's id (its stream is named from it).
        version: the stream version the aggregate was loaded at or last saved at
            (0: never saved); pending events are not counted.
    """

    __handlers: ClassVar[dict[type[Any], Callable[[Any, Any], None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own: dict[type[Any], Callable[[Any, Any], None]] = {}
        for value in vars(cls).values():
            event_type = getattr(value, _HANDLES, None)
            if event_type is not None:
                if event_type in own:
                    raise UsageError(f"{cls.__name__} has two handlers of {event_type.__name__}")
                own[event_type] = value
        cls.__handlers = {**cls.__handlers, **own}

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self.__pending: list[Any] = []

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.id!r} version {self.version}, "
            f"{len(self.__pending)} pending>"
        )

    @property
    def pending_events(self) -> tuple[Any, ...]:
        """The events recorded since the aggregate was loaded or saved, in order."""
        return tuple(self.__pending)

    def record(self, event: object) -> None:
        """Apply ``event`` now and keep it for the next save.

        Raises:
            UsageError: the class has no ``@when`` handler for the event's type (nothing
                is recorded).
        """
        self.apply(event)
        self.__pending.append(event)

    def apply(self, event: object) -> None:
        """Run the ``@when`` handler of ``event``'s type (used by replay and :meth:`record`).

        Raises:
            UsageError: no handler applies events of this type.
        """
        handler = self.__handlers.get(type(event))
        if handler is None:
            raise UsageError(f"{type(self).__name__} has no @when({type(event).__name__}) handler")
        handler(self, event)

    def snapshot(self) -> Any:
        """The aggregate's state as an object msgspec encodes (override for snapshots).

        Raises:
            UsageError: the class does not support snapshots (the default).
        """
        raise UsageError(f"{type(self).__name__} does not override snapshot()")

    def restore(self, snapshot: Any) -> None:
        """Set the state of a fresh aggregate from a :meth:`snapshot` value (override).

        Raises:
            UsageError: the class does not support snapshots (the default).
        """
        raise UsageError(f"{type(self).__name__} does not override restore()")

    def _saved(self, version: int) -> None:
        self.version = version
        self.__pending.clear()

    def _replayed(self, version: int) -> None:
        self.version = version
