"""Retries: exponential backoff with full jitter, bounded by deadlines, a timeout and a budget.

One policy object, :class:`Retry`, serves both forms: as a decorator of async functions
(``@corral.retry(...)``) and as an async iterator of attempts
(``async for attempt in corral.retrying(...): with attempt: ...``). The success path of a
decorated function is one extra coroutine frame and a counter: nothing is allocated
until an attempt fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import math
import random
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar

from .._core._hooks import INSTRUMENTS
from .._core._scope import CancelScope, current_effective_deadline
from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, DeadlineExceeded, InvalidArgumentError
from ._retry_budget import RetryBudget

__all__ = (
    "Attempt",
    "AttemptInfo",
    "Retry",
    "RetryStatistics",
    "Retrying",
    "retry",
    "retrying",
    "set_waits",
)

P = ParamSpec("P")
T = TypeVar("T")

#: What ``on=`` accepts: exception types, or a predicate that says whether to retry.
RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]


class _Mode:
    __slots__ = ("waits",)

    def __init__(self) -> None:
        self.waits = True


_MODE: Final = _Mode()


def set_waits(enabled: bool) -> bool:
    """Turn every retry wait on or off process-wide; return the previous setting.

    The switch behind :func:`corral.testing.retry_without_waits`.
    """
    previous = _MODE.waits
    _MODE.waits = enabled
    return previous


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptInfo:
    """What a ``before_sleep`` hook learns about the attempt that just failed.

    Attributes:
        attempt: the number of the failed attempt, counting from 1.
        error: the error it raised.
        wait: the seconds the retry will wait before the next attempt.
    """

    attempt: int
    error: Exception
    wait: float


@dataclasses.dataclass(frozen=True, slots=True)
class RetryStatistics:
    """A snapshot of a :class:`Retry` policy's counters.

    Attributes:
        calls: calls (decorated calls, or ``retrying()`` loops) started.
        retries: attempts made after a failed one.
        gave_up: calls that raised a retryable error because they could not retry again
            (attempts used up, deadline or timeout in the way, budget exhausted).
    """

    calls: int
    retries: int
    gave_up: int


def _attempts_arg(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(
            f"attempts must be an int or None, not {type(value).__name__} ({value!r})"
        )
    if value < 1:
        raise InvalidArgumentError(f"attempts must be at least 1, got {value!r}")
    return value


def _duration_arg(value: object, name: str) -> float:
    seconds = seconds_arg(value, name)
    if seconds == 0 or math.isinf(seconds):
        raise InvalidArgumentError(f"{name} must be a finite duration above zero, got {value!r}")
    return seconds


def _backoff_arg(value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArgumentTypeError(f"backoff must be a number, not {type(value).__name__} ({value!r})")
    factor = float(value)
    if not 1.0 <= factor < math.inf:
        raise InvalidArgumentError(f"backoff must be a finite factor of at least 1, got {value!r}")
    return factor


def _on_arg(value: object) -> Callable[[Exception], bool]:
    types = value if isinstance(value, tuple) else (value,)
    if not types:
        raise InvalidArgumentError("on must name at least one exception type, got ()")
    if all(isinstance(kind, type) for kind in types):
        for kind in types:
            if not issubclass(kind, Exception):
                raise InvalidArgumentError(
                    f"on must name Exception subclasses; {kind!r} is not one "
                    "(cancellation and other BaseExceptions are never retried)"
                )

        def matches(error: Exception) -> bool:
            return isinstance(error, types)

        return matches
    if isinstance(value, tuple) or not callable(value):
        raise ArgumentTypeError(
            f"on must be an exception type, a tuple of them, or a predicate, not {value!r}"
        )
    return value


def _jitter_arg(value: object) -> Callable[[], float] | None:
    if value is True:
        return random.random
    if value is False:
        return None
    if isinstance(value, random.Random):
        return value.random
    raise ArgumentTypeError(
        f"wait_jitter must be True, False or a random.Random, not {type(value).__name__} "
        f"({value!r})"
    )


class Retry:
    """A retry policy: how often, on what, how long to wait, and within which limits.

    Build one with :func:`corral.retry`; see there for the arguments and the rules. The
    same policy decorates any number of functions (``policy(fn)``) and runs attempt loops
    (``policy.retrying()``); its counters add up over all of them. It keeps no per-call
    state, so concurrent calls share it safely on one event loop; the counters are not
    synchronized across threads.
    """

    __slots__ = (
        "_attempts",
        "_backoff",
        "_before_sleep",
        "_budget",
        "_calls",
        "_gave_up",
        "_jitter",
        "_on",
        "_retries",
        "_timeout",
        "_wait_initial",
        "_wait_max",
    )

    def __init__(
        self,
        *,
        attempts: int | None = 3,
        timeout: Seconds | None = None,
        on: RetryOn = Exception,
        wait_initial: Seconds = 0.1,
        wait_max: Seconds = 5.0,
        wait_jitter: bool | random.Random = True,
        backoff: float = 2.0,
        budget: RetryBudget | None = None,
        before_sleep: Callable[[AttemptInfo], object] | None = None,
    ) -> None:
        self._attempts = _attempts_arg(attempts)
        self._timeout = None if timeout is None else _duration_arg(timeout, "timeout")
        self._on = _on_arg(on)
        self._wait_initial = _duration_arg(wait_initial, "wait_initial")
        self._wait_max = _duration_arg(wait_max, "wait_max")
        self._jitter = _jitter_arg(wait_jitter)
        self._backoff = _backoff_arg(backoff)
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ArgumentTypeError(
                f"budget must be a corral.RetryBudget or None, not {type(budget).__name__}"
            )
        self._budget = budget
        if before_sleep is not None and not callable(before_sleep):
            raise ArgumentTypeError(f"before_sleep must be callable, not {before_sleep!r}")
        self._before_sleep = before_sleep
        self._calls = 0
        self._retries = 0
        self._gave_up = 0

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate the async function ``fn`` so that each call retries by this policy.

        A call of the result is cancelled like ``fn`` itself: a ``CancelledError`` from
        an attempt or from a wait ends the call at once and is never retried (a budget
        token taken for the interrupted wait is given back). The call raises what
        :func:`retry` describes: the last error when it gives up, errors ``on`` rejects,
        and ``DeadlineExceeded`` when ``timeout`` passes during an attempt.

        Raises:
            ArgumentTypeError: ``fn`` is a coroutine object (pass the function, not its
                call) or not callable.
        """
        if inspect.isawaitable(fn):
            raise ArgumentTypeError(
                f"retry decorates an async function, but got a coroutine object ({fn!r}); "
                "pass the function itself, not the result of calling it"
            )
        if not callable(fn):
            raise ArgumentTypeError(f"retry decorates an async function, not {fn!r}")
        policy = self
        retryable = self._on
        budget = self._budget

        if self._timeout is not None:

            @functools.wraps(fn)
            async def call_with_timeout(*args: P.args, **kwargs: P.kwargs) -> T:
                run = Retrying(policy)
                while True:
                    attempt = await run._next_attempt()
                    with attempt:
                        return await fn(*args, **kwargs)

            return call_with_timeout

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            policy._calls += 1
            if budget is not None:
                budget._deposit()
            try:
                return await fn(*args, **kwargs)
            except Exception as error:
                if not retryable(error):
                    raise
                first = error
            run = Retrying(policy, first)
            while True:
                attempt = await run._next_attempt()
                with attempt:
                    return await fn(*args, **kwargs)

        return call

    def retrying(self) -> Retrying:
        """A fresh async iterator of attempts under this policy (see :func:`retrying`)."""
        return Retrying(self)

    def statistics(self) -> RetryStatistics:
        """A snapshot of the policy's counters."""
        return RetryStatistics(calls=self._calls, retries=self._retries, gave_up=self._gave_up)

    def __repr__(self) -> str:
        attempts = "unlimited" if self._attempts is None else str(self._attempts)
        timeout = "" if self._timeout is None else f", timeout {self._timeout:g}s"
        jitter = "full jitter" if self._jitter is not None else "no jitter"
        return (
            f"<Retry {attempts} attempts, wait {self._wait_initial:g}s x{self._backoff:g} "
            f"up to {self._wait_max:g}s ({jitter}){timeout}; {self._calls} calls, "
            f"{self._retries} retries, {self._gave_up} gave up>"
        )


class Attempt:
    """One attempt of a :class:`Retrying` loop; run its body in ``with attempt:``.

    Leaving the block with an error the policy retries records the error and swallows
    it, so the loop moves on to the next attempt (or raises the error when it gives up).
    Any other error, and every ``BaseException`` (``CancelledError`` above all), passes
    through untouched. With a ``timeout``, the block also runs inside a cancel scope
    that ends at the timeout; if it fires, ``DeadlineExceeded`` is raised.
    """

    __slots__ = ("_number", "_run", "_scope")

    def __init__(self, run: Retrying, number: int) -> None:
        self._run = run
        self._number = number
        self._scope: CancelScope | None = None

    @property
    def number(self) -> int:
        """The number of this attempt, counting from 1."""
        return self._number

    def __enter__(self) -> Attempt:
        deadline = self._run._deadline
        if deadline != math.inf:
            self._scope = CancelScope(deadline=deadline).__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        scope = self._scope
        if scope is not None:
            self._scope = None
            scope.__exit__(exc_type, exc, tb)
            if scope.cancelled_caught:
                run = self._run
                error = DeadlineExceeded(
                    f"retry timeout of {run._policy._timeout:g}s passed during attempt "
                    f"{self._number}"
                )
                raise run._give_up(error, "the retry timeout passed") from run._last_error
        if exc is None or not isinstance(exc, Exception):
            return False
        if not self._run._policy._on(exc):
            return False
        self._run._error = self._run._last_error = exc
        return True

    def __repr__(self) -> str:
        return f"<Attempt {self._number}>"


class Retrying:
    """An async iterator of :class:`Attempt` s under a :class:`Retry` policy.

    Made by :func:`retrying` or :meth:`Retry.retrying`; each one runs one retry loop, in
    one task. ``__anext__`` waits between attempts: cancelled there, it raises
    ``CancelledError`` (never retried, the budget token given back); giving up, it
    raises the last error with a note.
    """

    __slots__ = ("_ceiling", "_deadline", "_error", "_last_error", "_number", "_policy")

    def __init__(self, policy: Retry, first_error: Exception | None = None) -> None:
        self._policy = policy
        self._ceiling = min(policy._wait_initial, policy._wait_max)
        self._deadline = math.inf
        # a decorated call that failed once starts here with attempt 1 already made
        self._error = first_error
        self._last_error = first_error
        self._number = 0 if first_error is None else 1

    @property
    def attempt(self) -> int:
        """How many attempts have started so far."""
        return self._number

    def __aiter__(self) -> Retrying:
        return self

    async def __anext__(self) -> Attempt:
        if self._number > 0 and self._error is None:
            raise StopAsyncIteration
        return await self._next_attempt()

    async def _next_attempt(self) -> Attempt:
        policy = self._policy
        if self._number == 0:
            policy._calls += 1
            if policy._budget is not None:
                policy._budget._deposit()
            if policy._timeout is not None:
                self._deadline = asyncio.get_running_loop().time() + policy._timeout
        else:
            error = self._error
            assert error is not None
            self._error = None
            await self._wait_before_retry(error)
        self._number += 1
        return Attempt(self, self._number)

    def _give_up(self, error: Exception, why: str) -> Exception:
        self._policy._gave_up += 1
        error.add_note(f"corral.retry gave up after {self._number} attempt(s): {why}")
        if INSTRUMENTS.active:
            fields = {"attempts": self._number, "reason": why, "error": error}
            INSTRUMENTS.event(self._policy, "gave_up", fields)
        return error

    async def _wait_before_retry(self, error: Exception) -> None:
        policy = self._policy
        if policy._attempts is not None and self._number >= policy._attempts:
            raise self._give_up(error, "no attempts left")
        ceiling = self._ceiling
        self._ceiling = min(policy._wait_max, ceiling * policy._backoff)
        if not _MODE.waits:
            wait = 0.0
        elif policy._jitter is not None:
            wait = ceiling * policy._jitter()
        else:
            wait = ceiling
        loop = asyncio.get_running_loop()
        enclosing = current_effective_deadline()
        if loop.time() + wait > min(enclosing, self._deadline):
            which = "retry timeout" if self._deadline <= enclosing else "enclosing deadline"
            raise self._give_up(error, f"waiting {wait:g}s more would pass the {which}")
        budget = policy._budget
        if budget is not None and not budget._withdraw():
            raise self._give_up(error, "the retry budget is exhausted")
        policy._retries += 1
        try:
            if policy._before_sleep is not None:
                result = policy._before_sleep(AttemptInfo(self._number, error, wait))
                if inspect.isawaitable(result):
                    await result
            if INSTRUMENTS.active:
                fields = {"attempt": self._number, "wait": wait, "error": error}
                INSTRUMENTS.event(policy, "retry", fields)
                task = asyncio.current_task()
                INSTRUMENTS.task_parked(task, policy)
                try:
                    await asyncio.sleep(wait)
                finally:
                    INSTRUMENTS.task_woken(task, policy)
            else:
                await asyncio.sleep(wait)
        except BaseException:
            # the retry never ran: give its token and its count back
            policy._retries -= 1
            if budget is not None:
                budget._refund()
            raise

    def __repr__(self) -> str:
        return f"<Retrying attempt {self._number} of {self._policy!r}>"


def retry(
    *,
    attempts: int | None = 3,
    timeout: Seconds | None = None,
    on: RetryOn = Exception,
    wait_initial: Seconds = 0.1,
    wait_max: Seconds = 5.0,
    wait_jitter: bool | random.Random = True,
    backoff: float = 2.0,
    budget: RetryBudget | None = None,
    before_sleep: Callable[[AttemptInfo], object] | None = None,
) -> Retry:
    """A retry policy, used as a decorator of async functions.

    ::

        @corral.retry(attempts=5, on=ConnectionError, wait_max=2.0)
        async def fetch(url: str) -> bytes: ...

    Each call runs the function; when it raises an error that ``on`` accepts, the call
    waits and runs it again. Before retry ``n`` (counting from 1) it waits
    ``min(wait_max, wait_initial * backoff ** (n - 1))`` seconds, or, with full jitter
    (the default), a uniformly random fraction of that. Pass a seeded ``random.Random``
    as ``wait_jitter`` for reproducible waits, or ``False`` for the exact sequence.

    The call gives up and raises the last error, with a note saying how many attempts
    it made and why it stopped, when:

    - ``attempts`` attempts have been made (``None``: no limit);
    - the next wait would end after the enclosing deadline
      (:func:`corral.current_effective_deadline`) or after ``timeout``: a retry never
      sleeps into a deadline it cannot meet;
    - the shared ``budget`` has no retry token left.

    ``timeout`` bounds the whole call, attempts and waits together: an attempt still
    running when it expires is cancelled and the call raises
    :class:`corral.errors.DeadlineExceeded` (a ``TimeoutError``), chained from the last
    failed attempt's error if there was one.

    Cancellation is never retried: ``on`` only ever sees ``Exception`` s, so
    ``asyncio.CancelledError`` (and every other ``BaseException``) ends the call at
    once. Cancelled while waiting, the call gives back the budget token it took. Errors
    that ``on`` rejects propagate on the first attempt.

    ``before_sleep(info)`` runs before each wait with an :class:`AttemptInfo`; it may
    be a plain function or return an awaitable, which is awaited.
    :func:`corral.testing.retry_without_waits` turns every wait into a bare yield.

    Args:
        attempts: the most attempts per call, at least 1; ``None`` for no limit.
        timeout: seconds (or ``timedelta``) for the whole call, or ``None``.
        on: exception types to retry, or a predicate ``on(error) -> bool``.
        wait_initial: the wait ceiling before the first retry.
        wait_max: the largest wait ceiling.
        wait_jitter: ``True`` for full jitter, a ``random.Random`` for seeded full
            jitter, ``False`` for none.
        backoff: the factor the ceiling grows by per retry, at least 1.
        budget: a :class:`RetryBudget` shared with other calls, or ``None``.
        before_sleep: a hook run before each wait.

    Returns:
        A :class:`Retry` policy: call it on an async function to decorate it, or use
        :meth:`Retry.retrying` for the loop form.

    Raises:
        InvalidArgumentError: ``attempts`` below 1; ``timeout``, ``wait_initial`` or
            ``wait_max`` zero, negative, NaN or infinite; ``backoff`` below 1 or not
            finite; ``on`` names a ``BaseException`` that is not an ``Exception``.
        ArgumentTypeError: an argument has the wrong type.
    """
    return Retry(
        attempts=attempts,
        timeout=timeout,
        on=on,
        wait_initial=wait_initial,
        wait_max=wait_max,
        wait_jitter=wait_jitter,
        backoff=backoff,
        budget=budget,
        before_sleep=before_sleep,
    )


def retrying(
    *,
    attempts: int | None = 3,
    timeout: Seconds | None = None,
    on: RetryOn = Exception,
    wait_initial: Seconds = 0.1,
    wait_max: Seconds = 5.0,
    wait_jitter: bool | random.Random = True,
    backoff: float = 2.0,
    budget: RetryBudget | None = None,
    before_sleep: Callable[[AttemptInfo], object] | None = None,
) -> Retrying:
    """Retry a block of code: an async iterator of attempts, with :func:`retry`'s rules.

    ::

        async for attempt in corral.retrying(attempts=5, on=ConnectionError):
            with attempt:
                reply = await connection.request(payload)

    Put the whole body inside ``with attempt:``. When the block raises an error that
    ``on`` accepts, the error is swallowed and the loop waits and yields the next
    attempt; when the block finishes, the loop ends. When the loop gives up it raises
    the last error, with a note. Everything :func:`retry` says about waits, deadlines,
    ``timeout``, the budget, hooks and cancellation holds here too; the arguments are
    the same.

    Returns:
        A :class:`Retrying` iterator for one loop.

    Raises:
        InvalidArgumentError: see :func:`retry`.
        ArgumentTypeError: see :func:`retry`.
    """
    return Retry(
        attempts=attempts,
        timeout=timeout,
        on=on,
        wait_initial=wait_initial,
        wait_max=wait_max,
        wait_jitter=wait_jitter,
        backoff=backoff,
        budget=budget,
        before_sleep=before_sleep,
    ).retrying()
