"""corral.Limiter: a FIFO capacity limiter whose size can change while it is in use."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections import deque
from collections.abc import Hashable
from types import TracebackType
from typing import Final

from .._core._hooks import INSTRUMENTS
from .._core._scope import current_task
from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError, WouldBlock

__all__ = ("Limiter", "LimiterStatistics", "size_arg")

# The borrower of a token taken with acquire() / ``async with``: nobody in particular.
_ANONYMOUS: Final[Hashable] = object()


def size_arg(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as a size of at least ``minimum``, or raise an error naming ``name``.

    Raises:
        ArgumentTypeError: ``value`` is not an ``int`` (``bool`` is refused).
        InvalidArgumentError: ``value`` is NaN or smaller than ``minimum``.
    """
    if isinstance(value, float) and math.isnan(value):
        raise InvalidArgumentError(f"{name} must be a whole number, not NaN")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise InvalidArgumentError(f"{name} must be at least {minimum}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """A snapshot of a :class:`Limiter`.

    Attributes:
        total: how many tokens the limiter lends at most.
        borrowed: how many tokens are lent out now (may exceed ``total`` right after
            ``total`` was lowered).
        waiting: how many callers wait in line for a token.
        peak_borrowed: the most tokens ever lent out at once.
        borrowers: how many of the borrowed tokens are held by tracked borrowers
            (:meth:`Limiter.acquire_on_behalf_of`).
    """

    total: int
    borrowed: int
    waiting: int
    peak_borrowed: int
    borrowers: int


class _Waiter:
    __slots__ = ("borrower", "future")

    def __init__(self, future: asyncio.Future[None], borrower: Hashable) -> None:
        self.future = future
        self.borrower = borrower


class Limiter:
    """Lets at most ``total`` callers in at once; the others wait in line, first come first served.

    Use it as ``async with limiter:`` around the work to bound, or pair :meth:`acquire`
    with :meth:`release`. A returned token goes straight to the longest-waiting caller, so
    a newcomer never overtakes the line. :attr:`total` may be changed while the limiter is
    in use: raising it lets waiting callers in at once, in order; lowering it lets current
    borrowers finish and lends no more tokens until fewer than ``total`` are out.

    Borrower tracking is optional: :meth:`acquire_on_behalf_of` records who holds a
    token, so holding two at once or returning one that is not held is an error.

    Cancellation: a caller cancelled while waiting leaves the line and holds nothing. If
    the token was handed over at the very moment of the cancellation, it is passed on to
    the next caller in line, so no token is ever lost. A wait is bounded by the enclosing
    cancel scope's deadline (``move_on_after``, ``fail_after``) like any other await.
    Taking a free token does not yield to the event loop.

    Thread-safety: not thread-safe. Use a limiter from the tasks of one event loop; to
    bound worker threads, use :class:`corral.ThreadLimiter`.

    Args:
        total: how many tokens may be lent out at once (``>= 1``).

    Raises:
        ArgumentTypeError: ``total`` is not an ``int``.
        InvalidArgumentError: ``total`` is NaN or smaller than 1.
    """

    __slots__ = ("_borrowed", "_borrowers", "_peak", "_total", "_waiters", "_waiting")

    def __init__(self, total: int) -> None:
        self._total = size_arg(total, "total")
        self._borrowed = 0
        self._peak = 0
        self._waiting = 0  # live waiters (the line may still hold cancelled ones)
        self._waiters: deque[_Waiter] = deque()
        self._borrowers: set[Hashable] = set()

    @property
    def total(self) -> int:
        """How many tokens the limiter lends at most.

        Setting it while the limiter is in use takes effect at once: raising it hands the
        new tokens to waiting callers in line order; lowering it lets current borrowers
        finish and lends no more tokens until fewer than the new total are out.

        Raises:
            ArgumentTypeError: the new value is not an ``int``.
            InvalidArgumentError: the new value is NaN or smaller than 1.
        """
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self._total = total = size_arg(value, "total")
        if INSTRUMENTS.active:
            INSTRUMENTS.event(self, "total_changed", {"total": total})
        waiters = self._waiters
        while waiters and self._borrowed < total:
            waiter = waiters.popleft()
            if not waiter.future.done():
                self._borrow()
                self._grant(waiter)

    @property
    def borrowed(self) -> int:
        """How many tokens are lent out right now."""
        return self._borrowed

    @property
    def waiting(self) -> int:
        """How many callers wait in line for a token right now."""
        return self._waiting

    def _borrow(self) -> None:
        self._borrowed = borrowed = self._borrowed + 1
        if borrowed > self._peak:
            self._peak = borrowed

    def acquire_nowait(self) -> None:
        """Take a token without waiting.

        Raises:
            WouldBlock: every token is lent out, or other callers are already waiting.
        """
        if self._borrowed < self._total and not self._waiters:
            self._borrow()
            if INSTRUMENTS.active:
                self._report("lent", _ANONYMOUS)
            return
        raise WouldBlock(f"{self!r} has no token to lend right now")

    async def acquire(self) -> None:
        """Take a token, waiting in line (FIFO) while none is free.

        Cancellation: a cancelled wait leaves the line without a token; a token handed
        over at the moment of cancellation is passed on to the next caller in line.
        """
        if self._borrowed < self._total and not self._waiters:
            self._borrow()
            if INSTRUMENTS.active:
                self._report("lent", _ANONYMOUS)
            return
        await self._wait(_ANONYMOUS)

    def release(self) -> None:
        """Return a token taken with :meth:`acquire`; the longest-waiting caller gets it.

        Raises:
            UsageError: no token taken with :meth:`acquire` (or ``async with``) is out.
        """
        if self._borrowed <= len(self._borrowers):
            raise UsageError(f"{self!r}: release() without a matching acquire()")
        self._return_token(_ANONYMOUS)

    def _check_borrower(self, borrower: object) -> None:
        try:
            if borrower in self._borrowers:
                raise UsageError(f"{self!r}: {borrower!r} already holds a token")
        except TypeError:
            raise ArgumentTypeError(
                f"borrower must be hashable, not {type(borrower).__name__} ({borrower!r})"
            ) from None
        if any(waiter.borrower == borrower for waiter in self._waiters):
            raise UsageError(f"{self!r}: {borrower!r} is already waiting for a token")

    def acquire_on_behalf_of_nowait(self, borrower: Hashable) -> None:
        """Take a token for ``borrower`` without waiting.

        Raises:
            ArgumentTypeError: ``borrower`` is not hashable.
            UsageError: ``borrower`` already holds a token or waits for one.
            WouldBlock: every token is lent out, or other callers are already waiting.
        """
        self._check_borrower(borrower)
        self.acquire_nowait()
        self._borrowers.add(borrower)

    async def acquire_on_behalf_of(self, borrower: Hashable) -> None:
        """Take a token for ``borrower``, waiting in line (FIFO) while none is free.

        Cancellation: as for :meth:`acquire`; a cancelled wait leaves ``borrower``
        holding nothing.

        Raises:
            ArgumentTypeError: ``borrower`` is not hashable.
            UsageError: ``borrower`` already holds a token or waits for one.
        """
        self._check_borrower(borrower)
        if self._borrowed < self._total and not self._waiters:
            self._borrow()
            self._borrowers.add(borrower)
            if INSTRUMENTS.active:
                self._report("lent", borrower)
            return
        await self._wait(borrower)

    def release_on_behalf_of(self, borrower: Hashable) -> None:
        """Return the token that ``borrower`` holds; the longest-waiting caller gets it.

        Raises:
            UsageError: ``borrower`` holds no token of this limiter.
        """
        try:
            self._borrowers.remove(borrower)
        except (KeyError, TypeError):
            raise UsageError(f"{self!r}: {borrower!r} holds no token to release") from None
        self._return_token(borrower)

    async def _wait(self, borrower: Hashable) -> None:
        waiter = _Waiter(asyncio.get_running_loop().create_future(), borrower)
        self._waiters.append(waiter)
        self._waiting += 1
        task = current_task()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(task, self)
        try:
            await waiter.future
        except BaseException:
            self._abandon(waiter)
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(task, self)

    def _abandon(self, waiter: _Waiter) -> None:
        future = waiter.future
        if future.done() and not future.cancelled():
            # The token arrived together with the cancellation: pass it on.
            if waiter.borrower is not _ANONYMOUS:
                self._borrowers.discard(waiter.borrower)
            self._return_token(waiter.borrower)
            return
        future.cancel()
        self._waiting -= 1
        with contextlib.suppress(ValueError):  # unless a release already skipped it
            self._waiters.remove(waiter)

    def _grant(self, waiter: _Waiter) -> None:
        waiter.future.set_result(None)
        self._waiting -= 1
        borrower = waiter.borrower
        if borrower is not _ANONYMOUS:
            self._borrowers.add(borrower)
        if INSTRUMENTS.active:
            self._report("lent", borrower)

    def _return_token(self, borrower: Hashable) -> None:
        if INSTRUMENTS.active:
            self._report("returned", borrower)
        waiters = self._waiters
        while waiters and self._borrowed <= self._total:
            waiter = waiters.popleft()
            if not waiter.future.done():
                self._grant(waiter)  # handed over: the count of tokens out is unchanged
                return
        self._borrowed -= 1

    def _report(self, name: str, borrower: object) -> None:
        INSTRUMENTS.event(
            self,
            name,
            {
                "borrower": None if borrower is _ANONYMOUS else borrower,
                "borrowed": self._borrowed,
                "total": self._total,
            },
        )

    async def __aenter__(self) -> None:
        # acquire() inlined: one coroutine frame on the uncontended path
        if self._borrowed < self._total and not self._waiters:
            self._borrow()
            if INSTRUMENTS.active:
                self._report("lent", _ANONYMOUS)
            return
        await self._wait(_ANONYMOUS)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def statistics(self) -> LimiterStatistics:
        """A snapshot: total, tokens lent, callers waiting, peak lent and tracked borrowers."""
        return LimiterStatistics(
            total=self._total,
            borrowed=self._borrowed,
            waiting=self._waiting,
            peak_borrowed=self._peak,
            borrowers=len(self._borrowers),
        )

    def __repr__(self) -> str:
        return f"<Limiter {self._borrowed}/{self._total} borrowed, {self._waiting} waiting>"
