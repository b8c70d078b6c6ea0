"""Upcasters: functions that turn an event's stored data into its next schema version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from ..errors import ArgumentTypeError, InvalidArgumentError

__all__ = ("Upcaster", "Upcasters")

#: ``upcaster(data) -> data``: the JSON value (``dict``, ``list``, ...) of one schema
#: version turned into the JSON value of the next version.
Upcaster: TypeAlias = Callable[[Any], Any]


class Upcasters:
    """A chain of upcasters per event type: version 1 to 2, 2 to 3, and so on.

    An :class:`EventCodec` that reads an event stored at an older version than the one
    its class is registered with runs the steps from the stored version up to the
    registered one, on the decoded JSON value, before building the object. Stored
    events are never rewritten.

    Thread-safety: register every step before sharing; afterwards reads are safe from
    any thread.
    """

    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def __repr__(self) -> str:
        return f"<Upcasters {len(self._steps)} steps>"

    def add(self, type: str, from_version: int, upcaster: Upcaster) -> None:
        """Register ``upcaster`` as the step from ``from_version`` to ``from_version + 1``.

        Raises:
            ArgumentTypeError: ``type`` is not a ``str``, ``from_version`` not an ``int``,
                or ``upcaster`` is not callable (a coroutine object is refused by name).
            InvalidArgumentError: ``type`` is empty, ``from_version < 1``, or the step is
                already registered.
        """
        if not isinstance(type, str):
            raise ArgumentTypeError(f"type must be a str, not {type.__class__.__name__} ({type!r})")
        if not type:
            raise InvalidArgumentError("type must not be empty")
        if not isinstance(from_version, int) or isinstance(from_version, bool):
            raise ArgumentTypeError(
                f"from_version must be an int, not {from_version.__class__.__name__} "
                f"({from_version!r})"
            )
        if from_version < 1:
            raise InvalidArgumentError(f"from_version must be >= 1, not {from_version}")
        if not callable(upcaster):
            raise ArgumentTypeError(
                f"upcaster must be a function, not {upcaster.__class__.__name__} ({upcaster!r})"
            )
        if (type, from_version) in self._steps:
            raise InvalidArgumentError(
                f"an upcaster of {type!r} from version {from_version} is already registered"
            )
        self._steps[type, from_version] = upcaster

    def register(self, type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`add`: ``@upcasters.register("Placed", from_version=1)``.

        Raises:
            As :meth:`add`.
        """

        def decorate(upcaster: Upcaster) -> Upcaster:
            self.add(type, from_version, upcaster)
            return upcaster

        return decorate

    def missing(self, type: str, version: int, target: int) -> int | None:
        """The first version between ``version`` and ``target`` that has no step, if any."""
        for step in range(version, target):
            if (type, step) not in self._steps:
                return step
        return None

    def upcast(self, type: str, version: int, target: int, data: Any) -> Any:
        """``data`` of ``type`` at ``version`` carried up to ``target``.

        Raises:
            KeyError: a step is missing (check with :meth:`missing` first).
            Exception: whatever a step raises.
        """
        for step in range(version, target):
            data = self._steps[type, step](data)
        return data
