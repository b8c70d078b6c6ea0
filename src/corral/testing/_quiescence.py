"""Waiting until every other task is blocked."""

from __future__ import annotations

import asyncio

from ..errors import UsageError
from ._loop import VirtualClockLoop

__all__ = ("wait_all_tasks_blocked",)


async def wait_all_tasks_blocked() -> None:
    """Return once every other task of the loop is blocked.

    "Blocked" means nothing is ready to run and no real I/O is ready: the loop has
    nothing left to do but wait for a timer, for I/O, or for work in a thread. The call
    returns at that moment, before the virtual clock would jump, so a test can start a
    few tasks, let them all reach their first wait, and then check what they did::

        task = asyncio.create_task(worker())
        await wait_all_tasks_blocked()
        assert worker_state == "waiting for input"

    A task waiting for a thread (``asyncio.to_thread``) counts as blocked. When several
    tasks call this at once, all of them return together.

    Cancellation: cancelling the call just stops the wait; nothing else changes.

    Raises:
        UsageError: the running loop is not a :class:`VirtualClockLoop` (only that loop
            can see when it has nothing to do).
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualClockLoop):
        raise UsageError(
            "wait_all_tasks_blocked() needs a corral.testing.VirtualClockLoop, but the "
            f"running loop is {type(loop).__module__}.{type(loop).__qualname__}; run the "
            "test with corral.testing.run() or request the virtual_clock fixture"
        )
    await loop._wait_all_tasks_blocked()
