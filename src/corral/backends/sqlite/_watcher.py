"""The watcher thread of a SQLite store: it notices commits made by other connections.

SQLite has no notifications between processes, but every connection can ask cheaply
whether anybody else has committed since it last asked: ``PRAGMA data_version`` (a
read of the WAL index in shared memory, a few microseconds, no disk access). While at
least one subscription of the store waits for new events, the watcher asks every
``interval`` seconds on its own reading connection and, when the answer changed, wakes
the store's subscriptions on their loop; they then read what was committed. While no
subscription waits, the thread sleeps and asks nothing.

A commit by another process therefore reaches a waiting subscription within about one
interval (10 ms by default) plus the time of one page read. Commits through the store
itself wake its subscriptions directly, without waiting for the watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from typing import Final

from ._connection import open_reader

__all__ = ("DEFAULT_WATCH_INTERVAL", "Watcher")

#: Seconds between two ``PRAGMA data_version`` checks while a subscription waits.
DEFAULT_WATCH_INTERVAL: Final = 0.01


class Watcher:
    """Calls ``notify`` on the waiting loop when another connection commits.

    The thread starts with the first :meth:`watch` and ends with :meth:`stop`.
    A database error while checking (the file vanished, say) ends the checks; the
    subscriptions then still find new events by their own polling.

    Thread-safety: :meth:`watch`, :meth:`unwatch` and :meth:`stop` may be called from
    any thread.
    """

    def __init__(self, path: str, interval: float, notify: Callable[[], None]) -> None:
        self._path = path
        self._interval = interval
        self._notify = notify
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._watchers = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: Checks made, and changes seen (for statistics and tests).
        self.checks = 0
        self.wakeups = 0

    @property
    def interval(self) -> float:
        """Seconds between two checks while a subscription waits."""
        return self._interval

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """One more subscription of ``loop`` waits: check until :meth:`unwatch`."""
        with self._lock:
            if self._stopping:
                return
            self._watchers += 1
            self._loop = loop
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"corral-sqlite-watcher {self._path}", daemon=True
                )
                self._thread.start()
            elif self._watchers == 1:
                self._changed.notify()

    def unwatch(self) -> None:
        """A subscription stopped waiting."""
        with self._lock:
            self._watchers -= 1

    def stop(self) -> None:
        """End the thread (it closes its connection); :meth:`join` waits for it."""
        with self._lock:
            self._stopping = True
            self._changed.notify()

    def join(self) -> None:
        """Wait (blocking) for the thread to end after :meth:`stop`."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        last: int | None = None
        try:
            connection = open_reader(self._path)
            while True:
                with self._lock:
                    while self._watchers == 0 and not self._stopping:
                        self._changed.wait()
                    if self._stopping:
                        return
                    loop = self._loop
                version = connection.execute("PRAGMA data_version").fetchone()[0]
                self.checks += 1
                # The first check has nothing to compare with: it wakes the subscriptions
                # once, in case a commit came between their last read and this check.
                if version != last and loop is not None:
                    self.wakeups += 1
                    with contextlib.suppress(RuntimeError):  # the loop closed
                        loop.call_soon_threadsafe(self._notify)
                last = version
                with self._lock:
                    if not self._stopping:
                        self._changed.wait(self._interval)
        except sqlite3.Error:
            return  # the subscriptions' own polling takes over
        finally:
            if connection is not None:
                connection.close()
