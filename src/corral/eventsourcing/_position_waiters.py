"""Tasks waiting for a projector's or a process runner's checkpoint to reach a position."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .._core._time import Seconds, seconds_arg
from ._rules import version_arg

__all__ = ("PositionWaiters",)


class PositionWaiters:
    """The waits of ``wait_for_position`` (read your writes) on one checkpoint.

    Whoever moves the checkpoint calls :meth:`reached`; a failure that ends the work
    the waiters count on is handed to them with :meth:`fail`.

    Thread-safety: use it from one event loop.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: set[tuple[int, asyncio.Future[None]]] = set()

    def __len__(self) -> int:
        return len(self._entries)

    async def wait(
        self,
        position: object,
        timeout: Seconds | None,
        current: Callable[[], int],
        what: str,
    ) -> None:
        """Wait until :meth:`reached` passes ``position``; at once if ``current()`` has.

        Raises:
            TimeoutError: ``timeout`` seconds (loop time) passed first; the message says
                where ``what`` is.
            ArgumentTypeError, InvalidArgumentError: a bad ``position`` or ``timeout``.
            Exception: the error given to :meth:`fail` while waiting.

        Cancellation: a cancelled wait leaves nothing behind.
        """
        target = version_arg(position, "position")
        limit = None if timeout is None else seconds_arg(timeout, "timeout")
        if current() >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, future)
        self._entries.add(entry)
        try:
            async with asyncio.timeout(limit) as deadline:
                await future
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TimeoutError(
                f"{what} did not reach position {target} within {limit} seconds; "
                f"it is at position {current()}"
            ) from None
        finally:
            self._entries.discard(entry)

    def reached(self, position: int) -> None:
        """The checkpoint is at ``position``: wake those waiting for it or less."""
        for target, future in list(self._entries):
            if target <= position and not future.done():
                future.set_result(None)

    def fail(self, error: BaseException) -> None:
        """Hand ``error`` to every waiter: the work that would move the checkpoint stopped."""
        for _, future in list(self._entries):
            if not future.done():
                future.set_exception(error)
