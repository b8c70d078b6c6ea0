"""Microtask queues for promise reactions.

A *job* is a promise that carries the reaction that will settle it: ``job._runner(job,
queue)`` runs that reaction (a ``then`` callback, say) and queues follow-up jobs on
``queue``, the queue it runs from. Jobs never run where they are queued; they run, first in
first out, from one of two kinds of queue:

* one :class:`LoopJobs` per event loop, drained by a single ``loop.call_soon`` callback that
  runs every queued job, including jobs queued while it drains (JavaScript's microtask
  checkpoint). A long ``then`` chain therefore costs one loop iteration, not one per step.
* one trampoline per thread, for jobs queued while no event loop runs in that thread. It is
  drained when the outermost promise call on the thread returns (see
  :func:`drain_trampoline`).

Both kinds have the same shape: ``jobs`` (a deque), ``loop`` (the running loop while a drain
is scheduled or running; always ``None`` for the trampoline) and ``scheduled`` (always true
for the trampoline, which is never scheduled on a loop). So code holding a queue pushes with
``queue.jobs.append(job)`` and, if not ``queue.scheduled``, calls ``queue.schedule(loop)``
(only a :class:`LoopJobs` gets there).

Threads: a job meant for a loop that runs in another thread is appended to that loop's queue
(``deque.append`` is atomic) and the loop is woken with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from typing import Any, Literal, TypeAlias

__all__ = (
    "Job",
    "JobQueue",
    "LoopJobs",
    "TrampolineGuard",
    "drain_trampoline",
    "push_foreign",
    "queue_for",
)

#: A promise with a job to run: ``job._runner(job, queue)`` (this module does not import
#: the promise module, which imports it).
Job: TypeAlias = Any


class LoopJobs:
    """The job queue of one event loop; only that loop's thread drains it."""

    __slots__ = ("jobs", "loop", "ref", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak, so the registry (loop -> queue) and the cache keep no loop alive; ``loop``
        # is strong only from scheduling to the end of the drain.
        self.ref = weakref.ref(loop)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.jobs: deque[Job] = deque()
        self.scheduled = False

    def schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drain soon; ``loop`` is this queue's loop, running in the calling thread."""
        self.scheduled = True
        self.loop = loop
        loop.call_soon(self.drain)

    def drain(self) -> None:
        """Run every queued job, including the ones queued meanwhile (a loop callback)."""
        loop = self.ref()
        assert loop is not None, "only a live loop runs its callbacks"
        self.loop = loop
        self.scheduled = True
        jobs = self.jobs
        pop = jobs.popleft
        try:
            while jobs:
                job = pop()
                job._runner(job, self)
        finally:
            # Only a BaseException escaping a job leaves work behind: finish it next turn.
            if jobs and not loop.is_closed():
                loop.call_soon(self.drain)
            else:
                self.scheduled = False
                self.loop = None


class _Trampoline(threading.local):
    """The per-thread queue for jobs queued while no event loop runs in the thread."""

    loop: asyncio.AbstractEventLoop | None = None
    scheduled: Literal[True] = True  # never scheduled on a loop: drain_trampoline() runs it

    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()
        self.busy = False


#: What a runner gets: the queue it runs from, to queue follow-up jobs on.
JobQueue: TypeAlias = LoopJobs | _Trampoline

_trampoline = _Trampoline()

_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopJobs] = (
    weakref.WeakKeyDictionary()
)
_registry_lock = threading.Lock()
# The queue used last: a hit costs a weak-reference call instead of a registry lookup.
_last: LoopJobs | None = None


def _lookup(loop: asyncio.AbstractEventLoop) -> LoopJobs:
    with _registry_lock:
        queue = _registry.get(loop)
        if queue is None:
            queue = _registry[loop] = LoopJobs(loop)
        return queue


def queue_for(loop: asyncio.AbstractEventLoop | None) -> JobQueue:
    """The queue for jobs queued in the calling thread, where ``loop`` runs (or none)."""
    global _last
    if loop is None:
        return _trampoline
    last = _last
    if last is not None and last.ref() is loop:
        return last
    _last = queue = _lookup(loop)
    return queue


def push_foreign(job: Job, loop: asyncio.AbstractEventLoop) -> bool:
    """Queue ``job`` on ``loop``, which does not run in the calling thread.

    Returns ``False`` (queueing nothing) when ``loop`` is closed, so the caller can run the
    job locally instead.
    """
    queue = _lookup(loop)
    queue.jobs.append(job)
    try:
        loop.call_soon_threadsafe(queue.drain)
    except RuntimeError:  # the loop is closed: nothing will ever drain it
        queue.jobs.remove(job)
        return False
    return True


def drain_trampoline() -> None:
    """Run the calling thread's trampoline jobs, unless a drain is already under way.

    Called at the end of every promise operation that may have queued jobs while no event
    loop runs; a call made from inside a job returns at once, and the outer drain picks up
    what it queued. So, without a loop, reactions run when the outermost promise call on
    the thread returns.
    """
    trampoline = _trampoline
    if trampoline.busy:
        return
    trampoline.busy = True
    jobs = trampoline.jobs
    try:
        while jobs:
            job = jobs.popleft()
            job._runner(job, trampoline)
    finally:
        trampoline.busy = False


class TrampolineGuard:
    """Keeps the trampoline busy while user code runs inside a promise call (``try_``).

    Jobs that code queues then run when the surrounding call drains the trampoline, after
    the user code returned, not in the middle of it.
    """

    __slots__ = ("_was_busy",)

    def __enter__(self) -> None:
        self._was_busy = _trampoline.busy
        _trampoline.busy = True

    def __exit__(self, *exc_info: object) -> None:
        _trampoline.busy = self._was_busy
