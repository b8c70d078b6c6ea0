"""Files a benchmark writes: one directory per run, removed at exit; data made once."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable


class ScratchFiles:
    """The files of one workload's run, in a directory made on first use.

    ``on_disk`` puts the directory under ``/var/tmp`` (disk-backed where ``/tmp`` may
    be a tmpfs), for workloads whose figures depend on real fsyncs.
    """

    def __init__(self, prefix: str, *, on_disk: bool = False) -> None:
        self._prefix = prefix
        self._on_disk = on_disk
        self._directory: str | None = None
        self._made: dict[str, str] = {}

    def path(self, name: str) -> str:
        """The path of ``name`` in the run's directory (nothing is created)."""
        if self._directory is None:
            parent = "/var/tmp" if self._on_disk and os.path.isdir("/var/tmp") else None
            self._directory = tempfile.mkdtemp(prefix=self._prefix, dir=parent)
            atexit.register(shutil.rmtree, self._directory, ignore_errors=True)
        return os.path.join(self._directory, name)

    def made_once(self, name: str, write: Callable[[str], None]) -> str:
        """The path of ``name``, written by ``write(path)`` the first time it is asked for."""
        path = self._made.get(name)
        if path is None:
            path = self.path(name)
            write(path)
            self._made[name] = path
        return path
