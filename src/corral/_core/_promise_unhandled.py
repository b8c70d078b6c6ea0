"""Reporting of promise rejections that nobody handled.

A rejected promise that nobody handled (no ``then``/``catch``/``finally_``, no ``await``, no
``exception()``/``result()``) gets a :class:`RejectionWatch`: a tiny object with a
finalizer. Handling the promise disarms the watch; if the promise is collected first, the
watch dies with it and reports the error. Only unhandled rejected promises pay for a
finalizer, so the common path allocates nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..errors import ArgumentTypeError

__all__ = ("RejectionWatch", "UnhandledRejectionHandler", "set_unhandled_rejection_handler")

_log = logging.getLogger("corral")

#: Called as ``handler(error, loop)``; ``loop`` is the loop the promise knew, or ``None``.
UnhandledRejectionHandler = Callable[[BaseException, asyncio.AbstractEventLoop | None], object]

_handler: UnhandledRejectionHandler | None = None


def set_unhandled_rejection_handler(
    handler: UnhandledRejectionHandler | None,
) -> UnhandledRejectionHandler | None:
    """Choose what happens to a rejected promise that is collected without being handled.

    A promise counts as handled once anything observed its outcome: ``then``, ``catch``,
    ``finally_``, ``await``, ``exception()``, ``result()`` or ``as_future()``. Rejections
    with ``asyncio.CancelledError`` are never reported, like cancelled futures.

    ``handler(error, loop)`` is called from the garbage collector, in whatever thread
    dropped the last reference, with the rejection error and the event loop the promise
    knew (where it was created by ``then``, awaited, or rejected), or ``None``. It must not
    block. ``None`` restores the default, which passes
    ``{"message": ..., "exception": error}`` to ``loop.call_exception_handler`` when there
    is a loop, and otherwise logs the error on the ``corral`` logger, much like asyncio's
    "Future exception was never retrieved".

    Args:
        handler: The new handler, or ``None`` for the default.

    Returns:
        The previous handler (``None`` when it was the default).

    Raises:
        ArgumentTypeError: ``handler`` is neither callable nor ``None``.
    """
    global _handler
    if handler is not None and not callable(handler):
        raise ArgumentTypeError(
            f"handler must be a callable taking (error, loop) or None, "
            f"not {type(handler).__name__} ({handler!r})"
        )
    previous, _handler = _handler, handler
    return previous


_MESSAGE = "Promise rejection was never handled"


def _report(error: BaseException, loop: asyncio.AbstractEventLoop | None) -> None:
    handler = _handler
    if handler is not None:
        handler(error, loop)
    elif loop is not None:
        loop.call_exception_handler({"message": _MESSAGE, "exception": error})
    else:
        _log.error(_MESSAGE, exc_info=error)


class RejectionWatch:
    """Reports ``error`` when collected, unless :meth:`disarm` was called first."""

    __slots__ = ("error", "loop")

    def __init__(self, error: BaseException, loop: asyncio.AbstractEventLoop | None) -> None:
        self.error: BaseException | None = error
        self.loop = loop

    def disarm(self) -> None:
        """The rejection was handled after all: report nothing."""
        self.error = None

    def __del__(self) -> None:
        error = self.error
        if error is not None:
            self.error = None
            _report(error, self.loop)
