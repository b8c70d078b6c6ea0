"""Once: run an async function at most once and share its outcome."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, Generic, TypeVar

from .._core._hooks import INSTRUMENTS
from ..errors import ArgumentTypeError

__all__ = ("Once", "OnceStatistics")

T = TypeVar("T")

_IDLE: Final = 0
_RUNNING: Final = 1
_DONE: Final = 2
_STATE_NAMES: Final = ("idle", "running", "done")


@dataclasses.dataclass(frozen=True, slots=True)
class OnceStatistics:
    """A snapshot of a :class:`Once`."""

    state: str
    failed: bool
    waiters: int
    attempts: int


class Once(Generic[T]):
    """Run an async function at most once; every caller gets its outcome.

    ``await once.do(fn, *args)``: the first caller runs ``fn(*args)``; callers that come
    while it runs wait for it; later callers get the stored result at once. As with Go's
    ``sync.OnceValue``, an error counts as the outcome: it is raised again to every
    caller (with its original traceback) and ``fn`` is not retried.

    Cancellation is not an outcome: if the task running ``fn`` is cancelled, the run is
    abandoned and the next caller (a waiting one first) runs ``fn`` afresh. Cancelling a
    waiting caller ends only its wait.

    Single event loop; not thread-safe.
    """

    __slots__ = ("_attempts", "_error", "_round", "_state", "_tb", "_value", "_waiters")

    def __init__(self) -> None:
        self._state = _IDLE
        self._value: T | None = None
        self._error: BaseException | None = None
        self._tb: TracebackType | None = None
        self._round: asyncio.Future[None] | None = None  # done when the current run ends
        self._waiters = 0
        self._attempts = 0

    @property
    def done(self) -> bool:
        """Whether ``fn`` has run to an outcome (result or error)."""
        return self._state == _DONE

    async def do(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` if no call has completed yet; return (or raise) its outcome.

        Raises:
            ArgumentTypeError: ``fn`` is a coroutine object, or does not return an
                awaitable.
            BaseException: the error ``fn`` raised, on this and every later call.
        """
        if isinstance(fn, Coroutine):  # checked at run time; the type says it all
            fn.close()  # type: ignore[unreachable]
            raise ArgumentTypeError(
                "Once.do() takes the async function and its arguments, not a coroutine "
                "object: write `once.do(fn, *args)`"
            )
        while True:
            if self._state == _DONE:
                return self._outcome()
            if self._state == _IDLE:
                return await self._run(fn, args)
            assert self._round is not None
            self._waiters += 1
            if INSTRUMENTS.active:
                INSTRUMENTS.task_parked(asyncio.current_task(), self)
            try:
                await asyncio.shield(self._round)
            finally:
                self._waiters -= 1
                if INSTRUMENTS.active:
                    INSTRUMENTS.task_woken(asyncio.current_task(), self)

    async def _run(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        awaitable = fn(*args)
        if not hasattr(awaitable, "__await__"):
            name = getattr(fn, "__qualname__", repr(fn))
            raise ArgumentTypeError(
                f"Once.do() needs an async function; {name}(...) returned "
                f"{type(awaitable).__name__}"
            )
        self._state = _RUNNING
        self._attempts += 1
        self._round = round_ = asyncio.get_running_loop().create_future()
        try:
            value = await awaitable
        except asyncio.CancelledError:
            self._state = _IDLE  # not an outcome: the next caller tries again
            raise
        except BaseException as exc:
            self._state = _DONE
            self._error = exc
            self._tb = exc.__traceback__
            raise
        else:
            self._state = _DONE
            self._value = value
            return value
        finally:
            self._round = None
            round_.set_result(None)

    def _outcome(self) -> T:
        if self._error is not None:
            raise self._error.with_traceback(self._tb)
        return self._value  # type: ignore[return-value]

    def statistics(self) -> OnceStatistics:
        """A snapshot: state, whether the outcome is an error, waiters, attempts."""
        return OnceStatistics(
            state=_STATE_NAMES[self._state],
            failed=self._error is not None,
            waiters=self._waiters,
            attempts=self._attempts,
        )

    def __repr__(self) -> str:
        state = _STATE_NAMES[self._state]
        if self._state == _DONE:
            state = f"done, failed {type(self._error).__name__}" if self._error else "done"
        elif self._waiters:
            state += f", {self._waiters} waiting"
        return f"<Once {state}>"
