"""corral.Timeout: a time limit for each attempt of a call, as a reusable policy."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._core._hooks import INSTRUMENTS
from .._core._scope import CancelScope
from .._core._time import Seconds
from ..errors import DeadlineExceeded
from ._breaker import positive_seconds_arg
from ._stage import CallPolicy

__all__ = ("Timeout", "TimeoutStatistics")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class TimeoutStatistics:
    """A snapshot of a :class:`Timeout`'s counters.

    Attributes:
        calls: calls started under the limit.
        timed_out: of those, calls the limit cut short.
    """

    calls: int
    timed_out: int


class Timeout(CallPolicy):
    """Cut a call short after ``seconds`` and raise ``DeadlineExceeded``.

    ::

        @corral.Timeout(2.0)
        async def fetch(url: str) -> bytes: ...

        await corral.Timeout(2.0).run(fetch, url)

    Each call runs in a cancel scope whose deadline is ``seconds`` from its start; when
    the deadline passes, the call is cancelled and :class:`~corral.errors.DeadlineExceeded`
    (a ``TimeoutError``) is raised, which a retry or a breaker around it sees as a
    failure. In :func:`corral.policy` it bounds each attempt (each retry, each hedged
    copy) rather than the whole call.

    Deadlines nest: an enclosing deadline that comes first still wins, and then the call
    ends with that scope's cancellation, not with ``DeadlineExceeded`` from here; the
    limit never extends the remaining budget. Cancelling the caller cancels the call.

    Not thread-safe (the counters): use a policy from one event loop.

    Args:
        seconds: the limit per call, as seconds or a ``timedelta``; above zero, finite.

    Raises:
        InvalidArgumentError: ``seconds`` is zero, negative, NaN or infinite.
        ArgumentTypeError: ``seconds`` is not a number or ``timedelta``.
    """

    __slots__ = ("_calls", "_seconds", "_timed_out")

    def __init__(self, seconds: Seconds) -> None:
        self._seconds = positive_seconds_arg(seconds, "seconds")
        self._calls = 0
        self._timed_out = 0

    @property
    def seconds(self) -> float:
        """The limit per call, in seconds."""
        return self._seconds

    async def _run(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        self._calls += 1
        scope = CancelScope(deadline=asyncio.get_running_loop().time() + self._seconds)
        with scope:
            return await fn(*args, **kwargs)
        self._timed_out += 1
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "timed_out", {"seconds": self._seconds})
        raise DeadlineExceeded(f"the call took longer than its limit of {self._seconds:g}s")

    def statistics(self) -> TimeoutStatistics:
        """A snapshot of the policy's counters."""
        return TimeoutStatistics(calls=self._calls, timed_out=self._timed_out)

    def __repr__(self) -> str:
        return f"<Timeout {self._seconds:g}s; {self._calls} calls, {self._timed_out} timed out>"
