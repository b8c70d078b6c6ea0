"""The single writer thread of a SQLite store, and its group commit.

Every write of a store goes through one thread that owns the writing connection.
Callers queue *jobs*; the thread takes every job queued so far, runs them all in ONE
transaction (each inside its own ``SAVEPOINT``, so a job that fails, say on an
expected-version conflict, is undone alone), commits once (one fsync for the whole
batch) and then reports each job's outcome to its caller's event loop, one
``call_soon_threadsafe`` per loop and batch. Under load, many appends share a commit;
alone, an append pays one commit as it would anyway.

Before it takes the next batch, the writer waits (at most :data:`CATCH_UP_TIMEOUT`)
until each loop has handled the outcomes and the callers it woke have taken their next
step. Without that pause, callers that append again at once would trickle in behind a
writer that has already started the next commit, and concurrent appenders would
alternate between a small and a large batch instead of sharing one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from ...errors import BackendUnavailable

__all__ = ("Job", "Writer")

#: Most jobs one transaction takes; the rest wait for the next commit.
MAX_BATCH: Final = 1024

#: Longest the writer waits (seconds) for the callers of the last batch to act on their
#: outcomes before it takes the next batch.
CATCH_UP_TIMEOUT: Final = 0.002


class Job:
    """One unit of writing work and, once run, its outcome.

    ``work(connection, now, recheck)`` runs on the writer thread inside a savepoint
    (``now`` is the batch's commit time, in seconds since the epoch);
    what it returns or raises is the outcome, delivered to ``future`` on ``loop``. If
    it hits a unique-key violation, its writes are undone and it runs once more with
    ``recheck=True``, when it must look every key up before writing.
    """

    __slots__ = ("error", "future", "loop", "result", "settled", "taken", "work")

    def __init__(
        self,
        work: Callable[[sqlite3.Connection, float, bool], Any],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.work = work
        self.loop = loop
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None
        self.taken = False  # set by the writer thread when it takes the job
        # A future a cancelled caller waits on until the outcome is known.
        self.settled: asyncio.Future[None] | None = None


class Writer:
    """The thread that runs a store's write jobs, batch by batch.

    ``deliver(jobs, committed)`` is called on each job's loop with the jobs of one
    batch that belong to that loop, once their outcomes are set. The writer holds it
    weakly, so a store that is dropped without being closed can still be collected
    (its finalizer then stops the writer).
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: str,
        deliver: Callable[[list[Job], bool], None],  # a bound method
    ) -> None:
        self._connection = connection
        self._path = path
        self._deliver = weakref.WeakMethod(deliver)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[Job] = deque()
        self._stopping = False
        # Set once every loop of the last batch has handled its outcomes.
        self._caught_up = threading.Event()
        self._report_number = 0
        self._loops_behind = 0
        self._thread = threading.Thread(
            target=self._run, name=f"corral-sqlite-writer {path}", daemon=True
        )
        self._thread.start()

    @property
    def queued(self) -> int:
        """Jobs waiting for the writer."""
        return len(self._queue)

    def submit(self, job: Job) -> None:
        """Queue ``job`` for the next batch."""
        with self._lock:
            self._queue.append(job)
            if len(self._queue) == 1:
                self._wake.notify()

    def withdraw(self, job: Job) -> bool:
        """Take ``job`` back if the writer has not taken it yet; ``True`` if withdrawn."""
        with self._lock:
            if job.taken:
                return False
            self._queue.remove(job)
            return True

    def stop(self) -> None:
        """Finish the queued jobs, then close the connection and end the thread."""
        with self._lock:
            self._stopping = True
            self._wake.notify()

    def join(self) -> None:
        """Wait (blocking) for the thread to end after :meth:`stop`."""
        self._thread.join()

    def _take(self) -> list[Job] | None:
        with self._lock:
            queue = self._queue
            while not queue:
                if self._stopping:
                    return None
                self._wake.wait()
            count = min(len(queue), MAX_BATCH)
            jobs = [queue.popleft() for _ in range(count)]
            for job in jobs:
                job.taken = True
            return jobs

    def _run(self) -> None:
        try:
            while (jobs := self._take()) is not None:
                committed = self._run_batch(jobs)
                self._report(jobs, committed)
                # Give the callers a moment to act on their outcomes: an appender that
                # appends again right away then joins the next batch instead of
                # waiting for the one after it.
                self._caught_up.wait(CATCH_UP_TIMEOUT)
        finally:
            self._connection.close()

    def _run_batch(self, jobs: list[Job]) -> bool:
        """Run ``jobs`` in one transaction; whether it committed."""
        connection = self._connection
        execute = connection.execute
        try:
            execute("BEGIN IMMEDIATE")
            now = time.time()
            for job in jobs:
                self._run_job(job, connection, now)
            execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                execute("ROLLBACK")
            for job in jobs:
                job.error = error = BackendUnavailable(f"SQLite database {self._path!r}: {exc}")
                error.__cause__ = exc
            return False
        return True

    @staticmethod
    def _run_job(job: Job, connection: sqlite3.Connection, now: float) -> None:
        execute = connection.execute
        execute("SAVEPOINT job")
        try:
            try:
                job.result = job.work(connection, now, False)
            except sqlite3.IntegrityError:
                # A unique key refused a row the fast path did not expect to exist: undo
                # and run again, this time checking every key before writing.
                execute("ROLLBACK TO job")
                job.result = job.work(connection, now, True)
        except sqlite3.Error:
            raise
        except Exception as exc:  # the job's own outcome, handed to its caller
            execute("ROLLBACK TO job")
            job.error = exc
        execute("RELEASE job")

    def _report(self, jobs: list[Job], committed: bool) -> None:
        deliver = self._deliver()
        if deliver is None:
            return  # the store is gone, and with it everybody who waited on it
        by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        with self._lock:
            self._caught_up.clear()
            self._report_number += 1
            self._loops_behind = len(by_loop)
        number = self._report_number
        for loop, loop_jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(
                    self._deliver_on_loop, deliver, loop_jobs, committed, number
                )
            except RuntimeError:  # the loop closed: nobody waits for these outcomes
                self._caught_up_on(number)

    def _deliver_on_loop(
        self,
        deliver: Callable[[list[Job], bool], None],
        jobs: list[Job],
        committed: bool,
        number: int,
    ) -> None:
        try:
            deliver(jobs, committed)
        finally:
            # Runs after the callers woken by ``deliver`` have taken their next step.
            jobs[0].loop.call_soon(self._caught_up_on, number)

    def _caught_up_on(self, number: int) -> None:
        with self._lock:
            if number != self._report_number:
                return  # late news of an earlier batch, whose wait already timed out
            self._loops_behind -= 1
            if self._loops_behind == 0:
                self._caught_up.set()
