"""``Sequencer``: force blocks in different tasks to run in a chosen order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from ..errors import ArgumentTypeError, BrokenResourceError, InvalidArgumentError, UsageError

__all__ = ("Sequencer", "SequencerStatistics")


@dataclass(frozen=True, slots=True)
class SequencerStatistics:
    """A snapshot of a :class:`Sequencer`.

    Attributes:
        next_position: The position whose block may run next.
        waiting: Positions whose tasks are waiting for their turn, ascending.
        used: How many positions have been entered so far.
        broken_at: The position whose waiting task was cancelled, or ``None``.
    """

    next_position: int
    waiting: tuple[int, ...]
    used: int
    broken_at: int | None


class Sequencer:
    """Make ``async with seq(n)`` blocks in different tasks run in order 0, 1, 2, ...

    Useful to pin down an interleaving in a test: each task wraps the step that must
    happen at a given point in ``async with seq(position)``. The block for position
    ``n`` starts only after the block for ``n - 1`` has finished (whether it returned,
    raised or was cancelled); position ``0`` starts at once::

        seq = Sequencer()

        async def first() -> None:
            async with seq(0):
                log.append("a")
            async with seq(2):
                log.append("c")

        async def second() -> None:
            async with seq(1):
                log.append("b")

    Each position may be used once. A position nobody enters holds up every later one.

    Cancellation: a task cancelled while waiting for its turn breaks the sequencer,
    since the order can no longer be kept: every task waiting for a later position, and
    every later ``async with seq(...)``, raises :class:`~corral.errors.BrokenResourceError`
    with the cancellation as its ``__cause__``. Cancelling a task inside its block
    is fine; the next position goes ahead.

    Raises:
        ArgumentTypeError: the position is not an ``int``.
        InvalidArgumentError: the position is negative.
        UsageError: the position was already used.
        BrokenResourceError: a task waiting for its turn was cancelled.
    """

    __slots__ = ("_broken", "_next", "_turns", "_used")

    def __init__(self) -> None:
        self._next = 0
        self._used: set[int] = set()
        self._turns: dict[int, asyncio.Event] = {}
        self._broken: tuple[int, asyncio.CancelledError] | None = None

    def __call__(self, position: int) -> AbstractAsyncContextManager[None]:
        """The block for ``position``: enter it with ``async with``."""
        if not isinstance(position, int) or isinstance(position, bool):
            raise ArgumentTypeError(
                f"position must be an int, not {type(position).__name__} ({position!r})"
            )
        if position < 0:
            raise InvalidArgumentError(f"position must not be negative, got {position!r}")
        return self._turn(position)

    @asynccontextmanager
    async def _turn(self, position: int) -> AsyncIterator[None]:
        if position in self._used:
            raise UsageError(f"Sequencer position {position} was already used")
        self._used.add(position)
        self._check_broken()
        if position != self._next:
            turn = self._turns[position] = asyncio.Event()
            try:
                await turn.wait()
            except asyncio.CancelledError as cancelled:
                self._break(position, cancelled)
                raise
            finally:
                del self._turns[position]
            self._check_broken()
        try:
            yield
        finally:
            self._next = position + 1
            following = self._turns.get(self._next)
            if following is not None:
                following.set()

    def statistics(self) -> SequencerStatistics:
        """A frozen snapshot of the order's progress."""
        return SequencerStatistics(
            next_position=self._next,
            waiting=tuple(sorted(self._turns)),
            used=len(self._used),
            broken_at=None if self._broken is None else self._broken[0],
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        state = f"next={stats.next_position}, waiting={list(stats.waiting)}"
        if stats.broken_at is not None:
            state += f", broken at {stats.broken_at}"
        return f"<Sequencer {state}>"

    def _break(self, position: int, cancelled: asyncio.CancelledError) -> None:
        if self._broken is None:
            self._broken = (position, cancelled)
        for turn in self._turns.values():
            turn.set()

    def _check_broken(self) -> None:
        if self._broken is not None:
            position, cancelled = self._broken
            raise BrokenResourceError(
                f"Sequencer is broken: the task waiting for position {position} was cancelled"
            ) from cancelled
