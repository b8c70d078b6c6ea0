"""The two call forms that every single-call resilience policy shares."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from ._breaker import callable_arg

__all__ = ("CallPolicy",)

P = ParamSpec("P")
T = TypeVar("T")


class CallPolicy:
    """A policy that runs one call at a time its way: a decorator and ``run()``.

    Subclasses implement ``_run(fn, args, kwargs)``, the coroutine that makes one call.
    """

    __slots__ = ()

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate the async function ``fn`` so that every call goes through the policy.

        Raises:
            ArgumentTypeError: ``fn`` is a coroutine object or not callable.
        """
        callable_arg(fn, f"{type(self).__name__}(...) as a decorator")
        run = self._run

        @functools.wraps(fn)
        async def wrapped(*args: P.args, **kwargs: P.kwargs) -> T:
            return await run(fn, args, kwargs)

        return wrapped

    def run(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]:
        """Run ``fn(*args, **kwargs)`` through the policy; await this for the result.

        ``fn`` is checked at once, before anything runs.

        Raises:
            ArgumentTypeError: ``fn`` is a coroutine object or not callable.
            Exception: what the policy raises (see the class) and what ``fn`` raises.
        """
        callable_arg(fn, f"{type(self).__name__}.run()")
        return self._run(fn, args, kwargs)

    async def _run(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        raise NotImplementedError
