"""Why a task was cancelled: the message corral puts on ``asyncio.CancelledError``."""

from __future__ import annotations

import asyncio
import enum

__all__ = ("CancelReason", "CancelSource")


class CancelSource(enum.Enum):
    """What triggered a cancellation."""

    #: Somebody called ``cancel()`` on a scope, task group or task handle.
    EXPLICIT = "explicit"
    #: A scope's deadline passed.
    DEADLINE = "deadline"
    #: A :class:`corral.CancelToken` bound to the scope was cancelled.
    TOKEN = "token"
    #: A sibling task in the same task group failed, so the group cancelled the rest.
    SIBLING_FAILED = "sibling failed"
    #: The task that owns a task group or combinator was cancelled, so its children were.
    PARENT_CANCELLED = "parent cancelled"
    #: A combinator decided its result and cancelled the inputs it no longer needs.
    SETTLED = "settled"


class CancelReason(str):
    """The message of every ``CancelledError`` that corral delivers.

    It is a ``str`` (so code that logs or compares cancel messages keeps working) that
    also carries structure: ``source`` (a :class:`CancelSource`), ``reason`` (the text
    given to ``cancel(reason)``, if any) and ``origin`` (the scope, group or token that
    cancelled). Use :meth:`of` to get it back from a caught ``CancelledError``::

        except asyncio.CancelledError as exc:
            why = CancelReason.of(exc)
            if why is not None and why.source is CancelSource.DEADLINE:
                ...
            raise
    """

    source: CancelSource
    reason: str | None
    origin: object

    def __new__(
        cls, source: CancelSource, reason: str | None = None, origin: object = None
    ) -> CancelReason:
        described = f"cancelled by {type(origin).__name__}" if origin is not None else "cancelled"
        text = f"{described} ({source.value})"
        if reason:
            text = f"{text}: {reason}"
        self = super().__new__(cls, text)
        self.source = source
        self.reason = reason
        self.origin = origin
        return self

    @classmethod
    def of(cls, exc: BaseException) -> CancelReason | None:
        """The reason carried by a ``CancelledError``, or ``None`` if corral did not cancel.

        Looks through ``__context__`` too, so a ``CancelledError`` re-raised from an
        ``except`` block still answers.
        """
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, asyncio.CancelledError) and current.args:
                message = current.args[0]
                if isinstance(message, CancelReason):
                    return message
            current = current.__context__
        return None

    def __repr__(self) -> str:
        return f"CancelReason({self.source.name}, reason={self.reason!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (str, (str(self),))
