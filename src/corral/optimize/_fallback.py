"""corral.Fallback: answer with a value or a handler's result when a call fails."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, cast

from .._core._hooks import INSTRUMENTS
from ..errors import ArgumentTypeError, InvalidArgumentError
from ._retry import RetryOn, _on_arg
from ._stage import CallPolicy

__all__ = ("Fallback", "FallbackStatistics")

T = TypeVar("T")

_MISSING: Final = object()


@dataclasses.dataclass(frozen=True, slots=True)
class FallbackStatistics:
    """A snapshot of a :class:`Fallback`'s counters.

    Attributes:
        calls: calls made through the fallback.
        fell_back: of those, calls answered by the fallback instead.
    """

    calls: int
    fell_back: int


class Fallback(CallPolicy):
    """When a call fails with an error ``on`` accepts, answer something else instead.

    ::

        @corral.Fallback(value=[])                         # a fixed answer
        async def recommendations(user: str) -> list[str]: ...

        @corral.Fallback(handler=read_from_cache, on=ConnectionError)
        async def profile(user: str) -> Profile: ...

    Give exactly one of ``value`` (returned as it is) and ``handler`` (called with the
    error; it may be a plain function or return an awaitable, which is awaited). The
    answer stands in for the function's result, so it should have the same type. Errors
    that ``on`` rejects propagate. An error the handler raises propagates, chained from
    the call's error.

    Cancellation is never replaced: ``on`` only ever sees ``Exception`` s, so
    ``asyncio.CancelledError`` passes through untouched, as does every other
    ``BaseException``. Not thread-safe (the counters): use it from one event loop.

    Args:
        value: the answer to give when the call fails.
        handler: ``handler(error)`` computes the answer instead.
        on: exception types to replace, or a predicate ``on(error) -> bool``.

    Raises:
        InvalidArgumentError: neither or both of ``value`` and ``handler`` given; ``on``
            names a ``BaseException`` that is not an ``Exception``.
        ArgumentTypeError: ``handler`` is not callable; ``on`` has the wrong type.
    """

    __slots__ = ("_calls", "_fell_back", "_handler", "_on", "_value")

    def __init__(
        self,
        value: object = _MISSING,
        *,
        handler: Callable[[Exception], object] | None = None,
        on: RetryOn = Exception,
    ) -> None:
        if (value is _MISSING) == (handler is None):
            raise InvalidArgumentError(
                "Fallback takes exactly one of value= and handler= "
                f"(got {'neither' if handler is None else 'both'})"
            )
        if handler is not None and not callable(handler):
            raise ArgumentTypeError(f"handler must be callable, not {handler!r}")
        self._value = value
        self._handler = handler
        self._on = _on_arg(on)
        self._calls = 0
        self._fell_back = 0

    async def _run(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        self._calls += 1
        try:
            return await fn(*args, **kwargs)
        except Exception as error:
            if not self._on(error):
                raise
            self._fell_back += 1
            if INSTRUMENTS.active:
                INSTRUMENTS.event(self, "fell_back", {"error": error})
            handler = self._handler
            answer = self._value if handler is None else handler(error)
            if handler is not None and inspect.isawaitable(answer):
                answer = await answer
            # the answer stands in for the function's result; its type is the caller's word
            return cast(T, answer)

    def statistics(self) -> FallbackStatistics:
        """A snapshot of the policy's counters."""
        return FallbackStatistics(calls=self._calls, fell_back=self._fell_back)

    def __repr__(self) -> str:
        what = f"value {self._value!r}" if self._handler is None else f"handler {self._handler!r}"
        return f"<Fallback to {what}; {self._calls} calls, {self._fell_back} fell back>"
