"""One timer per loop for every scope deadline.

Most scopes exit long before their deadline. Giving each one its own ``TimerHandle``
(created, pushed on the loop's heap, then cancelled) is most of what a timeout costs, so
scopes share a per-loop queue instead: a heap of ``(deadline, seq, scope)`` and a single
loop timer armed for the earliest live entry. A scope that exits leaves a dead entry
behind; dead entries are skipped when they reach the top and swept out in bulk once
they are the majority.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import weakref
from itertools import count
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._scope import CancelScope

__all__ = ("DeadlineQueue", "deadline_queue")

_COMPACT_AFTER: Final = 64  # dead entries tolerated before a sweep is considered


class DeadlineQueue:
    """The deadlines of the active scopes of one loop, behind one armed timer."""

    __slots__ = ("_armed", "_dead", "_heap", "_loop", "_seq", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, CancelScope]] = []
        self._seq = count()
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf
        self._dead = 0

    def add(self, deadline: float, scope: CancelScope) -> None:
        """Watch ``scope``: call its ``_on_deadline()`` once the loop clock reaches ``deadline``."""
        heapq.heappush(self._heap, (deadline, next(self._seq), scope))
        if deadline < self._armed:
            self._arm(deadline)

    def forget(self) -> None:
        """One entry went dead (its scope exited, or moved its deadline)."""
        self._dead += 1
        if self._dead > _COMPACT_AFTER and self._dead * 2 > len(self._heap):
            self._compact()

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = deadline
        self._timer = self._loop.call_at(deadline, self._fire)

    def _compact(self) -> None:
        heap = [entry for entry in self._heap if entry[2]._deadline_live(entry[0])]
        heapq.heapify(heap)
        self._heap = heap
        self._dead = 0
        if not heap:
            self._close()
        elif heap[0][0] != self._armed:
            self._arm(heap[0][0])

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed = math.inf

    def _fire(self) -> None:
        self._timer = None
        # The loop runs a timer up to one clock resolution early: everything up to the
        # deadline this timer was armed for is due.
        limit = max(self._loop.time(), self._armed)
        self._armed = math.inf
        heap = self._heap
        due: list[CancelScope] = []
        while heap and heap[0][0] <= limit:
            deadline, _, scope = heapq.heappop(heap)
            if scope._deadline_live(deadline):
                due.append(scope)
            elif self._dead:
                self._dead -= 1
        while heap and not heap[0][2]._deadline_live(heap[0][0]):
            heapq.heappop(heap)
            if self._dead:
                self._dead -= 1
        if heap:
            self._arm(heap[0][0])
        else:
            self._close()
        for scope in due:
            scope._on_deadline()

    def __len__(self) -> int:
        return len(self._heap) - self._dead


_ATTRIBUTE: Final = "_corral_deadline_queue"
# For loop classes that take no new attributes; keyed weakly so closed loops are freed.
_FALLBACK: Final[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeadlineQueue]] = (
    weakref.WeakKeyDictionary()
)


def deadline_queue(loop: asyncio.AbstractEventLoop) -> DeadlineQueue:
    """The deadline queue of ``loop``, kept on the loop itself and created on first use."""
    queue: DeadlineQueue | None = getattr(loop, _ATTRIBUTE, None)
    if queue is None:
        queue = DeadlineQueue(loop)
        try:
            setattr(loop, _ATTRIBUTE, queue)
        except AttributeError:
            queue = _FALLBACK.setdefault(loop, queue)
    return queue
