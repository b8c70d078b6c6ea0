"""Cancellation tokens: a thread-safe "please stop" that can be passed anywhere."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentTypeError, UsageError
from ._reason import CancelReason, CancelSource
from ._time import Seconds, deadline_arg, seconds_arg

if TYPE_CHECKING:
    from ._scope import CancelScope

__all__ = ("CancelToken", "CancelTokenStatistics", "TokenRegistration")

_log = logging.getLogger("corral")
_running_loop = asyncio._get_running_loop


@dataclasses.dataclass(frozen=True, slots=True)
class CancelTokenStatistics:
    """A snapshot of a :class:`CancelToken`."""

    cancelled: bool
    reason: str | None
    deadline: float
    callbacks: int
    waiters: int


class TokenRegistration:
    """A callback registered with :meth:`CancelToken.on_cancel`; ``remove()`` undoes it."""

    __slots__ = ("_callback", "_token")

    def __init__(self, token: CancelToken, callback: Callable[[], object]) -> None:
        self._token: CancelToken | None = token
        self._callback = callback

    def remove(self) -> bool:
        """Unregister the callback; ``True`` if it had not run yet (it never will now)."""
        token, self._token = self._token, None
        if token is None:
            return False
        return token._remove(self)

    def __repr__(self) -> str:
        state = "registered" if self._token is not None else "removed or run"
        return f"<TokenRegistration {self._callback!r} {state}>"


class CancelToken:
    """A cancellation request that can cross threads, loops and call boundaries.

    A token starts uncancelled and is cancelled once, by :meth:`cancel` from any thread,
    by its deadline, or by a token it is linked to (:meth:`child`, :meth:`any`). Code
    reacts to it in whatever way fits where it runs:

    - async code binds it to a scope: ``with CancelScope(token=token): ...`` (the scope is
      cancelled when the token is), or waits for it: ``await token.wait()``;
    - synchronous code in a worker thread polls :meth:`raise_if_cancelled` or
      :attr:`cancelled`;
    - anything registers a callback with :meth:`on_cancel`.

    Callbacks run synchronously in the thread that cancels the token, in registration
    order, outside the token's lock; one that raises is logged and the rest still run.

    Args:
        timeout: cancel the token this many seconds from now on the running loop's clock
            (``timedelta`` accepted). Needs a running loop.
        deadline: cancel the token at this absolute time on the running loop's clock
            (``loop.time()``). Needs a running loop.

    Raises:
        InvalidArgumentError: ``timeout`` is negative or NaN.
        UsageError: ``timeout`` given outside a running loop.
    """

    __slots__ = (
        "_callbacks",
        "_cancelled",
        "_deadline",
        "_lock",
        "_reason",
        "_timer",
        "_timer_loop",
        "_waiters",
    )

    def __init__(self, *, timeout: Seconds | None = None, deadline: float | None = None) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._reason: CancelReason | None = None
        self._callbacks: list[TokenRegistration] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        if timeout is not None:
            self.cancel_after(timeout)
        if deadline is not None:
            self.cancel_at(deadline)

    # -- cancelling -----------------------------------------------------------------

    def cancel(
        self, reason: str | None = None, *, source: CancelSource = CancelSource.EXPLICIT
    ) -> bool:
        """Cancel the token from any thread. Returns ``False`` if it already was.

        Bound scopes are cancelled (on their own loops), waiters woken, then callbacks run
        here, in registration order. ``source`` says what triggered it; code that passes
        a cancellation on (a thread bridge forwarding its caller's deadline, say) keeps
        the original source this way.

        Raises:
            ArgumentTypeError: ``source`` is not a :class:`CancelSource`.
        """
        if not isinstance(source, CancelSource):
            raise ArgumentTypeError(
                f"source must be a corral.CancelSource, not {type(source).__name__}"
            )
        return self._cancel(CancelReason(source, reason, self))

    def _cancel(self, reason: CancelReason) -> bool:
        with self._lock:
            if self._cancelled:
                return False
            self._cancelled = True
            self._reason = reason
            callbacks, self._callbacks = self._callbacks, []
            waiters, self._waiters = self._waiters, []
            timer, self._timer = self._timer, None
        here = _running_loop()
        if timer is not None:
            timer_loop = self._timer_loop
            if timer_loop is here:
                timer.cancel()
            elif timer_loop is not None and not timer_loop.is_closed():
                timer_loop.call_soon_threadsafe(timer.cancel)
        for loop, fut in waiters:
            if loop is here:
                if not fut.done():
                    fut.set_result(None)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_set_if_pending, fut)
        for registration in callbacks:
            registration._token = None
            try:
                registration._callback()
            except Exception:
                _log.exception("a CancelToken callback raised; the other callbacks still run")
        return True

    def cancel_after(self, delay: Seconds) -> None:
        """Cancel the token ``delay`` seconds from now, on the running loop's clock.

        An earlier existing deadline is kept (deadlines only move earlier).

        Raises:
            InvalidArgumentError: ``delay`` is negative or NaN.
            UsageError: no running loop.
        """
        seconds = seconds_arg(delay, "delay")
        loop = _running_loop()
        if loop is None:
            raise UsageError(
                "CancelToken deadlines use the running loop's clock; call inside async code"
            )
        self._arm(loop, loop.time() + seconds)

    def cancel_at(self, deadline: float) -> None:
        """Cancel the token at ``deadline``, an absolute time on the running loop's clock
        (``loop.time()``; a deadline already past cancels it at the next loop step).

        An earlier existing deadline is kept (deadlines only move earlier).

        Raises:
            InvalidArgumentError: ``deadline`` is NaN.
            ArgumentTypeError: ``deadline`` is not a number.
            UsageError: no running loop.
        """
        when = deadline_arg(deadline)
        loop = _running_loop()
        if loop is None:
            raise UsageError(
                "CancelToken deadlines use the running loop's clock; call inside async code"
            )
        self._arm(loop, when)

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        with self._lock:
            if self._cancelled or deadline >= self._deadline:
                return
            self._deadline = deadline
            if self._timer is not None and self._timer_loop is loop:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._on_deadline)
            self._timer_loop = loop

    def _on_deadline(self) -> None:
        with self._lock:
            self._timer = None
        self._cancel(CancelReason(CancelSource.DEADLINE, None, self))

    # -- observing --------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """Whether the token has been cancelled."""
        return self._cancelled

    @property
    def reason(self) -> CancelReason | None:
        """Why the token was cancelled (``None`` while it is not)."""
        return self._reason

    @property
    def deadline(self) -> float:
        """When the token cancels itself, in loop time (``inf``: no deadline)."""
        return self._deadline

    def raise_if_cancelled(self) -> None:
        """Raise ``asyncio.CancelledError`` (carrying the reason) if the token is cancelled.

        For synchronous code, typically in a worker thread, to stop at a safe point.
        """
        if self._cancelled:
            raise asyncio.CancelledError(self._reason)

    async def wait(self) -> None:
        """Wait until the token is cancelled (returns at once if it already is).

        Works from any event loop. Cancelling the waiting task ends only this wait.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._cancelled:
                return
            fut: asyncio.Future[None] = loop.create_future()
            entry = (loop, fut)
            self._waiters.append(entry)
        try:
            await fut
        finally:
            if not fut.done() or fut.cancelled():
                with self._lock:
                    if entry in self._waiters:
                        self._waiters.remove(entry)

    def on_cancel(self, callback: Callable[..., object], *args: Any) -> TokenRegistration:
        """Call ``callback(*args)`` when the token is cancelled.

        If the token already is cancelled, the callback runs now, in this thread.
        Returns a registration whose ``remove()`` unregisters the callback.

        Raises:
            ArgumentTypeError: ``callback`` is not callable.
        """
        if not callable(callback):
            raise ArgumentTypeError(f"on_cancel() needs a callable, got {type(callback).__name__}")
        bound: Callable[[], object] = (lambda: callback(*args)) if args else callback
        registration = TokenRegistration(self, bound)
        with self._lock:
            if not self._cancelled:
                self._callbacks.append(registration)
                return registration
        registration._token = None
        bound()
        return registration

    def _remove(self, registration: TokenRegistration) -> bool:
        with self._lock:
            try:
                self._callbacks.remove(registration)
            except ValueError:
                return False
            return True

    # -- linking ----------------------------------------------------------------------

    def child(self) -> CancelToken:
        """A new token cancelled whenever this one is (but not the other way round)."""
        child = CancelToken()
        self._link(child)
        return child

    @classmethod
    def any(cls, *tokens: CancelToken) -> CancelToken:
        """A new token cancelled as soon as any of ``tokens`` is.

        Raises:
            ArgumentTypeError: an argument is not a ``CancelToken``.
        """
        for index, token in enumerate(tokens):
            if not isinstance(token, CancelToken):
                raise ArgumentTypeError(
                    f"CancelToken.any() takes tokens; argument {index} is {type(token).__name__}"
                )
        linked = cls()
        for token in tokens:
            token._link(linked)
        return linked

    def _link(self, target: CancelToken) -> None:
        def propagate() -> None:
            assert self._reason is not None
            target._cancel(CancelReason(self._reason.source, self._reason.reason, self))

        registration = self.on_cancel(propagate)
        # when the target is cancelled first, stop holding it from the source
        target.on_cancel(registration.remove)

    def _bind_scope(self, scope: CancelScope, loop: asyncio.AbstractEventLoop) -> TokenRegistration:
        """Cancel ``scope`` (on ``loop``'s thread) when this token is cancelled."""

        def cancel_scope() -> None:
            reason = self._reason.reason if self._reason is not None else None
            if _running_loop() is loop:
                scope._cancel(CancelSource.TOKEN, reason)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(scope._cancel, CancelSource.TOKEN, reason)

        return self.on_cancel(cancel_scope)

    def statistics(self) -> CancelTokenStatistics:
        """A snapshot: cancelled, reason, deadline, registered callbacks and waiters."""
        with self._lock:
            return CancelTokenStatistics(
                cancelled=self._cancelled,
                reason=str(self._reason) if self._reason is not None else None,
                deadline=self._deadline,
                callbacks=len(self._callbacks),
                waiters=len(self._waiters),
            )

    def __repr__(self) -> str:
        if self._cancelled:
            assert self._reason is not None
            state = f"cancelled ({self._reason.source.value}"
            state += f": {self._reason.reason})" if self._reason.reason else ")"
        else:
            state = "active"
            if self._deadline != math.inf:
                state += f", deadline={self._deadline:.6g}"
        return f"<CancelToken {state}, {len(self._callbacks)} callbacks>"


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
