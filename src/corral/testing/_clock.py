"""The virtual clock: time that moves only when the loop says everything is waiting."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .._core._hooks import INSTRUMENTS
from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError

__all__ = ("ClockStatistics", "VirtualClock")


@dataclass(frozen=True, slots=True)
class ClockStatistics:
    """A snapshot of a :class:`VirtualClock`.

    Attributes:
        now: The current virtual time, in seconds.
        jumps: How many times autojump moved the clock forward.
        total_jumped: Seconds added by autojump, in total.
        total_advanced: Seconds added by :meth:`VirtualClock.advance`, in total.
    """

    now: float
    jumps: int
    total_jumped: float
    total_advanced: float


class VirtualClock:
    """A clock for tests: virtual seconds that pass instantly.

    A :class:`VirtualClockLoop` reads its time from a ``VirtualClock``. Time never moves
    by itself: it moves when you call :meth:`advance`, or, with ``autojump`` on, when
    every task of the loop is waiting and the next thing that can happen is a timer. The
    loop then jumps straight to that timer, so ``await asyncio.sleep(3600)`` returns at
    once with ``loop.time()`` exactly one hour later.

    A clock drives one open loop at a time.

    Args:
        start: The virtual time the clock starts at, in seconds.
        autojump: Whether the loop jumps to the next timer when all tasks are waiting.
        autojump_threshold: Real seconds the loop waits for real I/O (sockets, threads
            calling back) before it jumps. ``0`` jumps as soon as nothing is ready.

    Raises:
        ArgumentTypeError: ``start`` or ``autojump_threshold`` is not a number, or
            ``autojump`` is not a bool.
        InvalidArgumentError: ``start`` is NaN or infinite, or ``autojump_threshold`` is
            NaN or negative.
    """

    __slots__ = (
        "_autojump",
        "_jumps",
        "_now",
        "_threshold",
        "_total_advanced",
        "_total_jumped",
        "_waker",
    )

    def __init__(
        self,
        start: Seconds = 0.0,
        *,
        autojump: bool = True,
        autojump_threshold: Seconds = 0.0,
    ) -> None:
        now = seconds_arg(start, "start", allow_negative=True)
        if math.isinf(now):
            raise InvalidArgumentError(f"start must be a finite time, got {now!r}")
        self._now = now
        self._autojump = _bool_arg(autojump, "autojump")
        self._threshold = seconds_arg(autojump_threshold, "autojump_threshold")
        self._jumps = 0
        self._total_jumped = 0.0
        self._total_advanced = 0.0
        self._waker: Callable[[], None] | None = None

    def time(self) -> float:
        """The current virtual time, in seconds."""
        return self._now

    @property
    def autojump(self) -> bool:
        """Whether the loop jumps to the next timer once every task is waiting.

        Settable at any time, from any thread; the loop notices at once.

        Raises:
            ArgumentTypeError: on set, the value is not a bool.
        """
        return self._autojump

    @autojump.setter
    def autojump(self, value: bool) -> None:
        self._autojump = _bool_arg(value, "autojump")
        self._wake()

    @property
    def autojump_threshold(self) -> float:
        """Real seconds to wait for real I/O before an automatic jump.

        Raises:
            ArgumentTypeError: on set, the value is not a number of seconds.
            InvalidArgumentError: on set, the value is NaN or negative.
        """
        return self._threshold

    @autojump_threshold.setter
    def autojump_threshold(self, value: float) -> None:
        self._threshold = seconds_arg(value, "autojump_threshold")
        self._wake()

    def advance(self, seconds: Seconds) -> None:
        """Move the clock forward by ``seconds`` (a ``float`` or ``timedelta``).

        Timers that fall due run on the loop's next iteration. Safe to call from a task
        of the loop or from another thread; a loop waiting for a timer wakes up.

        Raises:
            ArgumentTypeError: ``seconds`` is not a number of seconds.
            InvalidArgumentError: ``seconds`` is NaN, infinite or negative (virtual time
                never goes backwards).
        """
        delta = seconds_arg(seconds, "seconds")
        if math.isinf(delta):
            raise InvalidArgumentError(f"seconds must be finite, got {delta!r}")
        self._move(delta, automatic=False)
        self._wake()

    def statistics(self) -> ClockStatistics:
        """A frozen snapshot of the clock's time and how it got there."""
        return ClockStatistics(
            now=self._now,
            jumps=self._jumps,
            total_jumped=self._total_jumped,
            total_advanced=self._total_advanced,
        )

    def __repr__(self) -> str:
        mode = "autojump" if self._autojump else "manual"
        if self._autojump and self._threshold:
            mode += f" after {self._threshold:g}s real"
        return (
            f"<VirtualClock now={self._now:g} {mode}, "
            f"{self._jumps} jumps ({self._total_jumped:g}s), "
            f"{self._total_advanced:g}s advanced by hand>"
        )

    # -- used by VirtualClockLoop ------------------------------------------------------

    def _jump(self, delta: float) -> None:
        """Jump forward by ``delta`` because every task was waiting for a timer."""
        self._move(delta, automatic=True)

    def _move(self, delta: float, *, automatic: bool) -> None:
        before = self._now
        self._now = before + delta
        if automatic:
            self._jumps += 1
            self._total_jumped += delta
        else:
            self._total_advanced += delta
        if INSTRUMENTS.active:
            INSTRUMENTS.event(
                self,
                "clock_jump",
                {"from": before, "to": self._now, "delta": delta, "automatic": automatic},
            )

    def _attach(self, waker: Callable[[], None]) -> None:
        """Let a loop use this clock; ``waker`` interrupts the loop's wait for I/O."""
        if self._waker is not None:
            raise UsageError(
                f"{self!r} already drives an open event loop; close that loop first, "
                "or give each loop its own VirtualClock"
            )
        self._waker = waker

    def _detach(self, waker: Callable[[], None]) -> None:
        if self._waker == waker:
            self._waker = None

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None:
            waker()


def _bool_arg(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(
            f"{name} must be True or False, not {type(value).__name__} ({value!r})"
        )
    return value
