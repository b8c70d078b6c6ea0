"""corral.policy: rate limit, bulkhead, breaker, retry, timeout, hedge and fallback as one.

The stages always nest in one fixed order, whatever order they are given in; see
:func:`policy` for the order and why.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, ParamSpec, TypeVar, cast

from ..errors import ArgumentTypeError, InvalidArgumentError
from ._breaker import CircuitBreaker, callable_arg
from ._bulkhead import Bulkhead
from ._fallback import Fallback
from ._hedge import Hedge
from ._ratelimit import RateLimiter
from ._retry import Retry
from ._timeout import Timeout

__all__ = ("Policy", "PolicyStatistics", "policy")

P = ParamSpec("P")
T = TypeVar("T")

#: Any stage :func:`policy` accepts.
Stage = Fallback | Retry | RateLimiter | CircuitBreaker | Hedge | Bulkhead | Timeout

Call = Callable[..., Awaitable[Any]]


def _limited(limiter: RateLimiter, fn: Call) -> Call:
    @functools.wraps(fn)
    async def limited(*args: Any, **kwargs: Any) -> Any:
        await limiter.acquire()
        return await fn(*args, **kwargs)

    return limited


def _bulkheaded(bulkhead: Bulkhead, fn: Call) -> Call:
    @functools.wraps(fn)
    async def bulkheaded(*args: Any, **kwargs: Any) -> Any:
        async with bulkhead:
            return await fn(*args, **kwargs)

    return bulkheaded


def _decorated(stage: Fallback | Retry | CircuitBreaker | Hedge | Timeout, fn: Call) -> Call:
    return stage(fn)


#: The stages from the outermost to the innermost: (kind, name, how to wrap a call).
_ORDER: Final[tuple[tuple[type, str, Callable[[Any, Call], Call]], ...]] = (
    (Fallback, "fallback", _decorated),
    (Retry, "retry", _decorated),
    (RateLimiter, "rate limit", _limited),
    (CircuitBreaker, "breaker", _decorated),
    (Hedge, "hedge", _decorated),
    (Bulkhead, "bulkhead", _bulkheaded),
    (Timeout, "timeout", _decorated),
)


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyStatistics:
    """A snapshot of a :class:`Policy`'s counters (each stage keeps its own, too).

    Attributes:
        calls: calls started through the policy.
        succeeded: calls that returned (a fallback's answer included).
        failed: calls that raised an ``Exception``.
    """

    calls: int
    succeeded: int
    failed: int


class Policy:
    """Resilience stages composed in a fixed order; made by :func:`policy`.

    Call it on an async function to decorate it (the stages are wrapped around the
    function once, which is the fast form), or ``await policy.run(fn, *args)``. The
    stages are shared by every call and every function the policy wraps: one breaker,
    one bulkhead, one retry budget for all of them. Not thread-safe: use a policy from
    one event loop.
    """

    __slots__ = ("_calls", "_failed", "_stages", "_succeeded")

    def __init__(self, stages: tuple[tuple[str, Stage], ...]) -> None:
        self._stages = stages
        self._calls = 0
        self._succeeded = 0
        self._failed = 0

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages, from the outermost to the innermost."""
        return tuple(stage for _, stage in self._stages)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate the async function ``fn`` with every stage, in the policy's order.

        Raises:
            ArgumentTypeError: ``fn`` is a coroutine object or not callable.
        """
        callable_arg(fn, "policy(...) as a decorator")
        wrapped = cast("Callable[..., Awaitable[T]]", self._wrap(fn))
        counted = self._counted

        @functools.wraps(fn)
        async def resilient(*args: P.args, **kwargs: P.kwargs) -> T:
            return await counted(wrapped, args, kwargs)

        return resilient

    def run(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]:
        """Run ``fn(*args, **kwargs)`` through every stage; await this for the result.

        Wraps ``fn`` anew on each call; decorate a function that is called often.

        Raises:
            ArgumentTypeError: ``fn`` is a coroutine object or not callable (at once).
            Exception: what the stages and ``fn`` raise; see :func:`policy`.
        """
        callable_arg(fn, "Policy.run()")
        return self._counted(cast("Callable[..., Awaitable[T]]", self._wrap(fn)), args, kwargs)

    def _wrap(self, fn: Call) -> Call:
        for kind, stage in reversed(self._stages):
            fn = _WRAPPERS[kind](stage, fn)
        return fn

    async def _counted(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        self._calls += 1
        try:
            result = await fn(*args, **kwargs)
        except Exception:
            self._failed += 1
            raise
        self._succeeded += 1
        return result

    def statistics(self) -> PolicyStatistics:
        """A snapshot of the policy's own counters."""
        return PolicyStatistics(calls=self._calls, succeeded=self._succeeded, failed=self._failed)

    def __repr__(self) -> str:
        order = " -> ".join(kind for kind, _ in self._stages) or "no stages"
        return (
            f"<Policy {order}; {self._calls} calls, {self._succeeded} succeeded, "
            f"{self._failed} failed>"
        )


_WRAPPERS: Final[dict[str, Callable[[Any, Call], Call]]] = {name: wrap for _, name, wrap in _ORDER}


def _kind_of(stage: object) -> str:
    for kind, name, _ in _ORDER:
        if isinstance(stage, kind):
            return name
    raise ArgumentTypeError(
        "policy() takes Fallback, Retry, RateLimiter, CircuitBreaker, Hedge, Bulkhead and "
        f"Timeout stages, not {type(stage).__name__} ({stage!r})"
    )


def policy(*stages: Stage) -> Policy:
    """Compose resilience stages into one policy, in a fixed, documented order.

    ::

        resilient = corral.policy(
            corral.Fallback(value=None),
            corral.retry(attempts=3, on=ConnectionError),
            corral.RateLimiter(100),
            corral.CircuitBreaker("search"),
            corral.Hedge(delay=corral.LatencyPercentile(95)),
            corral.Bulkhead(20, 100),
            corral.Timeout(2.0),
        )

        @resilient
        async def search(query: str) -> list[Hit]: ...

    Pass any of the stages, at most one of each kind, in any order. They always nest
    like this, from the outside in (each stage wraps everything after it)::

        fallback -> retry -> rate limit -> breaker -> hedge -> bulkhead -> timeout -> call

    Why this order:

    - **fallback** is outermost, so it replaces the final failure whichever stage
      raised it: the last retry's error, ``CircuitOpenError``, ``BulkheadFull``,
      ``DeadlineExceeded``.
    - **retry** wraps everything else, so each attempt takes its own rate-limit token,
      is seen by the breaker and gets its own timeout, while the waits between attempts
      hold no token and no bulkhead slot.
    - **rate limit** comes before the breaker, so that a rate limiter that cannot admit
      a call before the enclosing deadline (it raises ``DeadlineExceeded`` at once) is
      never counted against the dependency.
    - **breaker** sees one outcome per attempt; a hedged attempt counts once, not per
      copy, and an open circuit rejects before any hedge or bulkhead slot is used.
    - **hedge** outside the bulkhead: every hedged copy is a real call on the
      dependency and needs its own bulkhead slot, so hedging never exceeds the
      concurrency the bulkhead allows; a copy the bulkhead turns away counts as a
      failed copy, and the others continue. (The breaker never counts ``BulkheadFull``.)
    - **timeout** is innermost: it bounds each call of the function (each attempt, each
      hedged copy), not the queueing before it, which the enclosing deadline bounds.

    Deadlines: every stage reads the remaining budget of the enclosing cancel scope. A
    retry never waits past it, a rate limiter never queues past it, a timeout never
    extends it, hedged copies are cancelled by it, and a bulkhead's queue wait ends with
    it. Cancellation is never retried, never counted by the breaker, never hedged
    around and never replaced by the fallback: it passes through every stage.

    Args:
        *stages: a :class:`Fallback`, a :class:`Retry` (from :func:`retry`), a
            :class:`RateLimiter`, a :class:`CircuitBreaker`, a :class:`Hedge`, a
            :class:`Bulkhead` and a :class:`Timeout`, each optional.

    Returns:
        A :class:`Policy`: a decorator of async functions, with :meth:`Policy.run`.

    Raises:
        ArgumentTypeError: a stage is not one of those kinds.
        InvalidArgumentError: two stages of the same kind.
    """
    given: dict[str, Stage] = {}
    for stage in stages:
        name = _kind_of(stage)
        if name in given:
            raise InvalidArgumentError(
                f"policy() takes at most one {name} stage, got {given[name]!r} and {stage!r}"
            )
        given[name] = stage
    return Policy(tuple((name, given[name]) for _, name, _ in _ORDER if name in given))
