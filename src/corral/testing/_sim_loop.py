"""The simulation loop: a virtual-clock loop whose every ordering decision is a choice.

asyncio's ``BaseEventLoop`` runs one *batch* per iteration: after waiting for I/O and
moving due timers onto its ready queue (``self._ready``, a deque) it pops exactly the
callbacks that were queued at that moment, oldest first. This loop swaps the deque for
one whose first ``popleft()`` of each batch reorders the batch, so a seeded (or
hypothesis-driven) chooser decides which task runs first.

The reordering keeps every task's own callbacks in order and keeps plain callbacks
(transports, ``call_soon`` functions, future callbacks that are not task wake-ups) in
their FIFO order among themselves: it merges these *lanes*, choosing at each position
which lane goes next. Choice ``0`` always takes the oldest callback, so a chooser that
answers ``0`` reproduces the plain loop exactly.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVarTuple, Unpack

from ._clock import VirtualClock
from ._loop import VirtualClockLoop

__all__ = ("JITTER_STEPS", "LoopCounters", "SimulationLoop", "describe_callback")

_Ts = TypeVarTuple("_Ts")

#: A jittered timer picks its extra delay among this many equal steps of the maximum.
JITTER_STEPS = 100

#: The lane of every callback that is not a task's own step or wake-up.
_PLAIN_LANE = object()


@dataclass(slots=True)
class LoopCounters:
    """What a :class:`SimulationLoop` did, counted as it runs."""

    batches: int = 0
    callbacks: int = 0
    reordered_batches: int = 0
    timers: int = 0
    jittered_timers: int = 0


class SimulationLoop(VirtualClockLoop):
    """A :class:`VirtualClockLoop` that asks ``decide`` how to order each ready batch.

    Args:
        decide: Called with a number of options ``n >= 2``; returns the chosen index.
        jitter: Most seconds added to each timer (``call_at``/``call_later``, so also
            ``asyncio.sleep`` and timeouts); each timer's share is a decision.
        trace: Called with one line per ready batch and per timer, when given.
        on_close: Called once when the loop closes.
        clock: The virtual clock, as for :class:`VirtualClockLoop`.

    Raises:
        RuntimeError: this Python's asyncio no longer keeps its ready queue in a
            ``collections.deque`` named ``_ready``; the simulator cannot work there.
    """

    def __init__(
        self,
        decide: Callable[[int], int],
        *,
        jitter: float = 0.0,
        trace: Callable[[str], None] | None = None,
        on_close: Callable[[], None] | None = None,
        clock: VirtualClock | None = None,
    ) -> None:
        super().__init__(clock)
        ready = getattr(self, "_ready", None)
        if type(ready) is not collections.deque or ready:
            super().close()
            raise RuntimeError(
                "corral's simulation loop needs asyncio's BaseEventLoop to keep its ready "
                f"queue in an empty collections.deque named _ready; found {type(ready)!r} "
                "in this Python version"
            )
        self._ready: _ReorderingReady = _ReorderingReady(self)
        self._decide = decide
        self._jitter = jitter
        self._trace = trace
        self._on_close = on_close
        self.counters = LoopCounters()

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback(*args)`` at loop time ``when``, plus the chosen jitter.

        Same contract as :meth:`asyncio.loop.call_at`; ``call_later`` and
        ``asyncio.sleep`` come through here too.
        """
        counters = self.counters
        counters.timers += 1
        if self._jitter > 0 and not self.is_closed():
            step = self._decide(JITTER_STEPS + 1)
            if step:
                counters.jittered_timers += 1
                when += self._jitter * step / JITTER_STEPS
        if self._trace is not None:
            self._trace(f"t={self.time():g} timer set for t={when:g}: {_name(callback)}")
        return super().call_at(when, callback, *args, context=context)

    def close(self) -> None:
        """Close the loop (see :meth:`VirtualClockLoop.close`)."""
        super().close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def _run_once(self) -> None:
        # The batch this iteration runs is whatever is ready once I/O and timers have
        # been collected, which is when its first callback is popped.
        self._ready.batch_starts = True
        super()._run_once()  # type: ignore[misc]

    def _reorder(self, ready: collections.deque[asyncio.Handle]) -> None:
        counters = self.counters
        counters.batches += 1
        counters.callbacks += len(ready)
        lanes: dict[object, collections.deque[asyncio.Handle]] = {}
        for handle in ready:
            lanes.setdefault(_lane(handle), collections.deque()).append(handle)
        if len(lanes) > 1:
            queues = list(lanes.values())
            order: list[asyncio.Handle] = []
            while len(queues) > 1:
                index = self._decide(len(queues))
                queue = queues[index]
                order.append(queue.popleft())
                if not queue:
                    del queues[index]
            order.extend(queues[0])
            if any(a is not b for a, b in zip(order, ready, strict=True)):
                counters.reordered_batches += 1
                ready.clear()
                ready.extend(order)
        if self._trace is not None:
            names = [describe_callback(h) for h in ready if not h.cancelled()]
            if names:
                self._trace(f"t={self.time():g} run {', '.join(names)}")


class _ReorderingReady(collections.deque[asyncio.Handle]):
    """The loop's ready queue; reorders each batch just before its first callback runs."""

    def __init__(self, loop: SimulationLoop) -> None:
        super().__init__()
        self._loop = loop
        self.batch_starts = False

    def popleft(self) -> asyncio.Handle:
        if self.batch_starts:
            self.batch_starts = False
            self._loop._reorder(self)
        return super().popleft()


def _lane(handle: asyncio.Handle) -> object:
    owner = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
    return owner if isinstance(owner, asyncio.Task) else _PLAIN_LANE


def describe_callback(handle: asyncio.Handle) -> str:
    """A short name for what ``handle`` runs: ``step Task-2``, ``wake Task-2`` or a function."""
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        verb = "wake" if "wakeup" in getattr(callback, "__name__", "") else "step"
        return f"{verb} {owner.get_name()}"
    return _name(callback)


def _name(callback: object) -> str:
    name = getattr(callback, "__qualname__", None)
    return name if isinstance(name, str) else repr(callback)
