"""A test switch that takes the waits out of :func:`corral.retry`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..optimize._retry import set_waits

__all__ = ("retry_without_waits",)


@contextlib.contextmanager
def retry_without_waits() -> Iterator[None]:
    """Inside this block, every :func:`corral.retry` wait is a bare yield to the loop.

    Retries still happen, as many as the policy allows, and ``before_sleep`` hooks still
    run (they are told the wait is ``0``); only the sleeping goes. Tests of code that
    retries then finish at once on any event loop, not only on the virtual clock. The
    switch is process-wide (it affects every task and thread) and nests: leaving the
    block restores the previous setting.
    """
    previous = set_waits(False)
    try:
        yield
    finally:
        set_waits(previous)
