"""Fault injection points: where a simulator may make an operation fail or wait.

Primitives that hand data between tasks or touch the outside world (channel operations,
sleeps, socket and database calls) announce themselves at a named *fault point*::

    if FAULTS.active:
        await FAULTS.hit("channel.send", self)

With no injector installed that costs one attribute check. ``corral.testing``'s simulation
loop installs an injector that decides, per point, to do nothing, raise an exception or
wait a while, reproducibly from its seed. Application code marks its own points (a
database call, a socket write) with :func:`fault_point`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from ..errors import ArgumentTypeError, UsageError

__all__ = ("FAULTS", "FaultInjector", "Faults", "fault_point")

#: An injector: called at every fault point with the point's name and target; it may
#: return at once, raise (the operation fails with that error) or wait (the operation
#: is delayed). It must not swallow cancellation.
FaultInjector = Callable[[str, object], Awaitable[None]]


class Faults:
    """The process-wide fault injection switch; at most one injector at a time."""

    __slots__ = ("_injector", "active")

    def __init__(self) -> None:
        self.active = False
        self._injector: FaultInjector | None = None

    def install(self, injector: FaultInjector) -> Callable[[], None]:
        """Send every fault point to ``injector``; returns a function that removes it.

        Raises:
            ArgumentTypeError: ``injector`` is not callable.
            UsageError: another injector is installed.
        """
        if not callable(injector):
            raise ArgumentTypeError(
                f"a fault injector is an async callable (point, target), "
                f"not {type(injector).__name__}"
            )
        if self._injector is not None:
            raise UsageError("a fault injector is already installed; remove it first")
        self._injector = injector
        self.active = True

        def uninstall() -> None:
            if self._injector is injector:
                self._injector = None
                self.active = False

        return uninstall

    async def hit(self, point: str, target: object) -> None:
        """Let the installed injector act on ``point`` (no-op without one)."""
        injector = self._injector
        if injector is not None:
            await injector(point, target)


#: The switch every corral primitive consults.
FAULTS: Final = Faults()


async def fault_point(point: str, target: object = None) -> None:
    """Mark a place in your code where a simulation may inject a fault.

    ``await corral.fault_point("db.query", conn)`` before a database call lets a test on
    corral's simulation loop make that call fail or stall, reproducibly. Without an
    injector it returns at once.

    Cancellation: if an injected delay is cancelled, ``CancelledError`` propagates.

    Raises:
        ArgumentTypeError: ``point`` is not a string.
        BaseException: whatever the installed injector raises for this point.
    """
    if not isinstance(point, str):
        raise ArgumentTypeError(f"a fault point is named by a string, not {type(point).__name__}")
    if FAULTS.active:
        await FAULTS.hit(point, target)
