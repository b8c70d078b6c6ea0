"""corral.CircuitBreaker: stop calling a dependency that keeps failing, then probe it.

The state machine and the sliding window live in a store (see
:mod:`corral.optimize._breaker_store`); this module measures calls, sorts their endings
into outcomes, rejects calls the store turns away, and reports state changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import itertools
import math
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, cast

from .._core._hooks import INSTRUMENTS
from .._core._time import Seconds, seconds_arg
from ..errors import (
    ArgumentTypeError,
    BulkheadFull,
    CircuitOpenError,
    InvalidArgumentError,
    UsageError,
)
from ._breaker_store import (
    BreakerAdmission,
    BreakerRules,
    BreakerStore,
    CircuitState,
    CircuitView,
    MemoryBreakerStore,
    SyncBreakerStore,
)
from ._limiter import size_arg
from ._retry import RetryOn, _on_arg

__all__ = (
    "CircuitBreaker",
    "CircuitBreakerStatistics",
    "CircuitStateChange",
    "callable_arg",
    "positive_seconds_arg",
)

P = ParamSpec("P")
T = TypeVar("T")

_NAMES: Final = itertools.count(1)
_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN
_ELSEWHERE: Final = "changed by another user of the store"


@dataclasses.dataclass(frozen=True, slots=True)
class CircuitStateChange:
    """What an ``on_state_change`` hook learns when a circuit changes state.

    Attributes:
        breaker: the breaker's name.
        previous: the state before.
        current: the state after.
        at: the loop time of the change, as this process saw it.
        reason: why, in words (``"failure rate 60% >= 50% over 10 calls"``).
    """

    breaker: str
    previous: CircuitState
    current: CircuitState
    at: float
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class CircuitBreakerStatistics:
    """A snapshot of a :class:`CircuitBreaker`.

    With a store that awaits (shared across processes), the state and window figures
    are those of the last answer the store gave this breaker.

    Attributes:
        name: the breaker's name (its circuit's key in the store).
        state: the circuit's state.
        window_calls: outcomes in the sliding window (in half-open: successful probes).
        failure_rate: failed outcomes over ``window_calls`` (``0.0`` when empty).
        slow_rate: slow outcomes over ``window_calls`` (``0.0`` when empty).
        calls: calls this breaker let through.
        failures: of those, calls that ended with an error ``on`` accepts.
        slow_calls: of those, calls that took at least ``slow_after``.
        rejected: calls turned away with ``CircuitOpenError``.
        state_changes: state changes this breaker has seen.
    """

    name: str
    state: CircuitState
    window_calls: int
    failure_rate: float
    slow_rate: float
    calls: int
    failures: int
    slow_calls: int
    rejected: int
    state_changes: int


def callable_arg(fn: object, where: str) -> None:
    """Raise unless ``fn`` is a callable; a coroutine object gets an error that says so.

    Raises:
        ArgumentTypeError: ``fn`` is a coroutine object (closed, so it never warns) or
            not callable.
    """
    if callable(fn):
        return
    if isinstance(fn, Coroutine):
        fn.close()
        raise ArgumentTypeError(
            f"{where} takes an async function and its arguments, not a coroutine object: "
            f"pass fn and its arguments, not fn(...) (got {fn!r})"
        )
    if not callable(fn):
        raise ArgumentTypeError(
            f"{where} takes an async function, not {type(fn).__name__} ({fn!r})"
        )


def positive_seconds_arg(value: object, name: str) -> float:
    """Return ``value`` as a finite number of seconds above zero, or raise naming ``name``.

    Raises:
        ArgumentTypeError: ``value`` is not a number or ``timedelta``.
        InvalidArgumentError: ``value`` is zero, negative, NaN or infinite.
    """
    seconds = seconds_arg(value, name)
    if seconds == 0 or math.isinf(seconds):
        raise InvalidArgumentError(f"{name} must be a finite duration above zero, got {value!r}")
    return seconds


def _rate_arg(value: object, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArgumentTypeError(
            f"{name} must be a fraction in (0, 1], not {type(value).__name__} ({value!r})"
        )
    if not 0 < value <= 1:  # NaN fails both comparisons
        raise InvalidArgumentError(f"{name} must be a fraction in (0, 1], got {value!r}")
    return float(value)


def _rules(
    failure_rate: object,
    slow_rate: object,
    minimum_calls: object,
    window_calls: object,
    window_seconds: object,
    open_for: object,
    half_open_probes: object,
) -> BreakerRules:
    if window_calls is not None and window_seconds is not None:
        raise InvalidArgumentError(
            "pass window_calls (a count-based window) or window_seconds (a time-based "
            f"window), not both (got {window_calls!r} and {window_seconds!r})"
        )
    calls: int | None = None
    seconds: float | None = None
    if window_seconds is not None:
        seconds = positive_seconds_arg(window_seconds, "window_seconds")
    else:
        calls = 100 if window_calls is None else size_arg(window_calls, "window_calls")
    if minimum_calls is None:
        minimum = 10 if calls is None else min(10, calls)
    else:
        minimum = size_arg(minimum_calls, "minimum_calls")
        if calls is not None and minimum > calls:
            raise InvalidArgumentError(
                f"minimum_calls must not exceed window_calls ({calls}), got {minimum!r}: "
                "the window could never hold enough calls to open the circuit"
            )
    return BreakerRules(
        failure_rate=_rate_arg(failure_rate, "failure_rate"),
        slow_rate=_rate_arg(slow_rate, "slow_rate"),
        minimum_calls=minimum,
        window_calls=calls,
        window_seconds=seconds,
        open_for=positive_seconds_arg(open_for, "open_for"),
        half_open_probes=size_arg(half_open_probes, "half_open_probes"),
    )


def _store_arg(store: object) -> tuple[SyncBreakerStore | None, BreakerStore | None]:
    if store is None:
        return MemoryBreakerStore(), None
    if not isinstance(store, (SyncBreakerStore, BreakerStore)):
        raise ArgumentTypeError(
            f"store must be a BreakerStore or a SyncBreakerStore, not {type(store).__name__}"
        )
    steps = ("acquire", "record", "release", "force", "view")
    awaiting = [inspect.iscoroutinefunction(getattr(store, step)) for step in steps]
    if all(awaiting):
        return None, cast(BreakerStore, store)
    if not any(awaiting):
        return cast(SyncBreakerStore, store), None
    raise ArgumentTypeError(
        f"store {type(store).__name__} mixes coroutine and plain methods; make all five "
        "steps coroutines (BreakerStore) or none (SyncBreakerStore)"
    )


class CircuitBreaker:
    """Stops calling a failing dependency for a while, then lets a few probes test it.

    ::

        breaker = corral.CircuitBreaker("payments", failure_rate=0.5, open_for=30)

        @breaker
        async def charge(order: Order) -> Receipt: ...

        # or: async with breaker: ...   /   await breaker.call(charge, order)

    **Closed** (the start): calls go through and their outcomes enter a sliding window,
    either the last ``window_calls`` calls (count-based, the default: 100) or the calls
    of the last ``window_seconds`` seconds (time-based). Once the window holds
    ``minimum_calls`` outcomes, the circuit **opens** when the share of failures reaches
    ``failure_rate`` or the share of slow calls (those that took ``slow_after`` seconds
    or more) reaches ``slow_rate``. **Open**: every call fails at once with
    :class:`~corral.errors.CircuitOpenError`, whose ``retry_after`` says when the
    breaker will try again. After ``open_for`` seconds the next call moves it to
    **half-open** and goes through as a probe; up to ``half_open_probes`` probes run at
    once, others are rejected. A failed or slow probe opens the circuit again; when
    ``half_open_probes`` probes have succeeded it closes with an empty window.

    Outcomes: a call fails when it raises an error that ``on`` accepts (all
    ``Exception`` s by default; ``DeadlineExceeded`` from a timeout inside the call too).
    An error ``on`` rejects propagates and counts as a success: the dependency answered.
    Cancellation, and every other ``BaseException``, is never an outcome: a cancelled
    call is forgotten (a probe gives its slot back). Nor is
    :class:`~corral.errors.BulkheadFull`: a bulkhead inside the breaker turned the call
    away before it reached the dependency, so it says nothing about the dependency.

    State changes call ``on_state_change`` with a :class:`CircuitStateChange` (an error
    it raises goes to the loop's exception handler, never to the caller) and emit a
    ``"state_change"`` instrumentation event; rejections emit ``"rejected"``.

    Store: the state lives in ``store`` (see :class:`~corral.BreakerStore`), a fresh
    :class:`~corral.MemoryBreakerStore` by default, whose steps run without an await.
    Breakers that share a store and a ``name`` share one circuit: with a store shared
    across processes they all see it open at once.

    Time is read from the running loop, so a virtual clock drives ``open_for`` and the
    time window in tests. Not thread-safe: use a breaker from one event loop.

    Args:
        name: the circuit's name (its key in the store); ``"circuit-<n>"`` if omitted.
        failure_rate: the failure share in ``(0, 1]`` that opens the circuit.
        slow_rate: the slow-call share in ``(0, 1]`` that opens the circuit.
        slow_after: seconds from which a call counts as slow; ``None``: never slow.
        window_calls: a count-based window of this many calls (default 100).
        window_seconds: a time-based window of this many seconds, instead.
        minimum_calls: outcomes the window must hold before it can open the circuit
            (default ``min(10, window_calls)``; must not exceed ``window_calls``).
        open_for: seconds the circuit stays open before probes go through.
        half_open_probes: probes at once in half-open, and successes that close it.
        on: exception types that count as failures, or a predicate ``on(error)``.
        on_state_change: called with a :class:`CircuitStateChange` on each change.
        store: a :class:`~corral.BreakerStore` or :class:`~corral.SyncBreakerStore`.

    Raises:
        InvalidArgumentError: a rate outside ``(0, 1]`` or NaN; a window, a minimum or a
            probe count below 1; ``minimum_calls`` above ``window_calls``; both window
            kinds given; a duration zero, negative, NaN or infinite.
        ArgumentTypeError: an argument has the wrong type; a store mixes coroutine and
            plain methods.
    """

    __slots__ = (
        "_async_store",
        "_calls",
        "_entered",
        "_failures",
        "_fast",
        "_generation",
        "_name",
        "_on",
        "_on_state_change",
        "_rejected",
        "_rules",
        "_slow_after",
        "_slow_calls",
        "_state",
        "_state_changes",
        "_store",
        "_sync_store",
        "_view",
    )

    def __init__(
        self,
        name: str | None = None,
        *,
        failure_rate: float = 0.5,
        slow_rate: float = 1.0,
        slow_after: Seconds | None = None,
        window_calls: int | None = None,
        window_seconds: Seconds | None = None,
        minimum_calls: int | None = None,
        open_for: Seconds = 30.0,
        half_open_probes: int = 1,
        on: RetryOn = Exception,
        on_state_change: Callable[[CircuitStateChange], object] | None = None,
        store: BreakerStore | SyncBreakerStore | None = None,
    ) -> None:
        if name is None:
            name = f"circuit-{next(_NAMES)}"
        elif not isinstance(name, str) or not name:
            raise ArgumentTypeError(f"name must be a non-empty str, not {name!r}")
        self._name = name
        self._rules = _rules(
            failure_rate,
            slow_rate,
            minimum_calls,
            window_calls,
            window_seconds,
            open_for,
            half_open_probes,
        )
        self._slow_after = (
            math.inf if slow_after is None else positive_seconds_arg(slow_after, "slow_after")
        )
        self._on = _on_arg(on)
        if on_state_change is not None and not callable(on_state_change):
            raise ArgumentTypeError(f"on_state_change must be callable, not {on_state_change!r}")
        self._on_state_change = on_state_change
        self._sync_store, self._async_store = _store_arg(store)
        self._store: object = self._sync_store or self._async_store
        # whether outcomes need the clock: slow calls, or a time window
        timed = slow_after is not None or self._rules.window_seconds is not None
        # the default store's circuit, read directly on the fast path of untimed calls
        self._fast = (
            self._sync_store._circuit(name, self._rules)
            if type(self._sync_store) is MemoryBreakerStore and not timed
            else None
        )
        self._state = _CLOSED
        self._generation = 0
        self._view = CircuitView(_CLOSED, 0, 0.0, 0, 0, 0)
        self._entered: dict[asyncio.Task[Any] | None, list[tuple[int, float]]] = {}
        self._calls = 0
        self._failures = 0
        self._slow_calls = 0
        self._rejected = 0
        self._state_changes = 0

    @property
    def name(self) -> str:
        """The circuit's name: its key in the store."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The circuit's state, as this breaker last saw it in the store.

        With the default memory store this is exact, except that an open circuit whose
        ``open_for`` has passed reads ``OPEN`` until the next call moves it on.
        """
        return self._state

    @property
    def store(self) -> object:
        """The store that holds the circuit."""
        return self._store

    # -- the call path ---------------------------------------------------------------

    def _admitted(self, admission: BreakerAdmission, now: float) -> int:
        if admission.generation != self._generation:
            if admission.state is _HALF_OPEN and self._state is _OPEN:
                reason = "open_for passed"
            else:
                reason = _ELSEWHERE
            self._saw(admission.state, admission.generation, now, reason)
        if not admission.admitted:
            raise self._reject(admission)
        self._calls += 1
        return admission.generation

    async def _admit(self, now: float) -> int:
        sync = self._sync_store
        if sync is not None:
            return self._admitted(sync.acquire(self._name, self._rules, now), now)
        assert self._async_store is not None
        return self._admitted(await self._async_store.acquire(self._name, self._rules, now), now)

    def _reject(self, admission: BreakerAdmission) -> CircuitOpenError:
        self._rejected += 1
        if INSTRUMENTS.active:
            fields = {"state": admission.state.value, "retry_after": admission.retry_after}
            INSTRUMENTS.event(self, "rejected", fields)
        if admission.state is _OPEN:
            why = f"is open; it will let a probe through in {admission.retry_after:g}s"
        else:
            why = (
                f"is half-open and all {self._rules.half_open_probes} probe slot(s) are "
                "taken; try again when a probe ends"
            )
        return CircuitOpenError(
            f"circuit breaker {self._name!r} {why}",
            breaker_name=self._name,
            retry_after=admission.retry_after,
        )

    def _failed(self, error: BaseException | None) -> bool | None:
        """Whether a call that ended with ``error`` failed; ``None``: no outcome."""
        if error is None:
            return False
        if isinstance(error, Exception):
            # a bulkhead turned the call away before it reached the dependency
            return None if isinstance(error, BulkheadFull) else self._on(error)
        return None  # cancellation and other BaseExceptions are never outcomes

    def _finish_now(
        self, sync: SyncBreakerStore, generation: int, started: float, error: BaseException | None
    ) -> None:
        failed = self._failed(error)
        if failed is None:
            sync.release(self._name, self._rules, generation)
            return
        now = asyncio.get_running_loop().time()
        slow = now - started >= self._slow_after
        view = sync.record(self._name, self._rules, now, generation, failed=failed, slow=slow)
        self._recorded(view, now, failed, slow)

    async def _finish(self, generation: int, started: float, error: BaseException | None) -> None:
        sync = self._sync_store
        if sync is not None:
            self._finish_now(sync, generation, started, error)
            return
        store = self._async_store
        assert store is not None
        failed = self._failed(error)
        if failed is None:
            await store.release(self._name, self._rules, generation)
            return
        now = asyncio.get_running_loop().time()
        slow = now - started >= self._slow_after
        view = await store.record(
            self._name, self._rules, now, generation, failed=failed, slow=slow
        )
        self._recorded(view, now, failed, slow)

    def _recorded(self, view: CircuitView, now: float, failed: bool, slow: bool) -> None:
        if failed:
            self._failures += 1
        if slow:
            self._slow_calls += 1
        self._view = view
        if view.generation != self._generation:
            self._saw(view.state, view.generation, now, self._why(view, failed, slow))

    def _why(self, view: CircuitView, failed: bool, slow: bool) -> str:
        rules = self._rules
        if self._state is _HALF_OPEN:
            if view.state is _CLOSED:
                return f"{rules.half_open_probes} probe(s) succeeded"
            return "a probe failed" if failed else "a probe was slow"
        if view.state is _OPEN and view.calls:
            calls = view.calls
            if view.failures >= rules.failure_rate * calls:
                return (
                    f"failure rate {view.failures / calls:.0%} >= {rules.failure_rate:.0%} "
                    f"over {calls} calls"
                )
            return (
                f"slow-call rate {view.slow_calls / calls:.0%} >= {rules.slow_rate:.0%} "
                f"over {calls} calls"
            )
        return _ELSEWHERE

    def _saw(self, state: CircuitState, generation: int, now: float, reason: str) -> None:
        previous = self._state
        self._state = state
        self._generation = generation
        if state is previous:
            return
        self._state_changes += 1
        if INSTRUMENTS.active:
            fields = {"previous": previous.value, "current": state.value, "reason": reason}
            INSTRUMENTS.event(self, "state_change", fields)
        hook = self._on_state_change
        if hook is not None:
            try:
                hook(CircuitStateChange(self._name, previous, state, now, reason))
            except Exception as error:
                asyncio.get_running_loop().call_exception_handler(
                    {
                        "message": f"on_state_change hook of {self!r} raised",
                        "exception": error,
                    }
                )

    def call(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]:
        """Run ``await fn(*args, **kwargs)`` through the breaker; await this for its result.

        ``fn`` is checked at once; the returned coroutine asks the store, runs ``fn``
        and records how it ended.

        Cancellation: cancelling the caller cancels ``fn``; the call is not counted (a
        probe gives its slot back).

        Raises:
            CircuitOpenError: the circuit is open, or half-open with every probe slot
                taken; ``fn`` is not called.
            ArgumentTypeError: ``fn`` is a coroutine object or not callable.
            Exception: whatever ``fn`` raises, unchanged.
        """
        callable_arg(fn, "CircuitBreaker.call()")
        return self._run(fn, args, kwargs)

    async def _run(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        """One call of ``fn`` through the breaker: the coroutine behind both call forms."""
        circuit = self._fast
        generation = self._generation
        if circuit is None or circuit.closed_generation != generation:
            return await self._call(fn, args, kwargs)
        # the default store, closed, untimed: no clock, no await but the call's own
        self._calls += 1
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            self._finish_now(cast(SyncBreakerStore, self._sync_store), generation, 0.0, error)
            raise
        if circuit.closed_generation == generation:
            # untimed means a count window: a success is one more outcome, and only
            # needs settling while the window fills up or holds failed or slow ones
            window = circuit.window
            window.seq += 1  # type: ignore[union-attr]
            if (window.bad or window.seq <= window.size) and window.settle():  # type: ignore[union-attr]
                opened = circuit.evaluate(self._rules, 0.0)
                if opened is not None:
                    self._recorded(opened, asyncio.get_running_loop().time(), False, False)
        return result

    async def _call(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        started = asyncio.get_running_loop().time()
        sync = self._sync_store
        if sync is None:
            generation = await self._admit(started)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as error:
                await self._finish(generation, started, error)
                raise
            await self._finish(generation, started, None)
            return result
        generation = self._admitted(sync.acquire(self._name, self._rules, started), started)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            self._finish_now(sync, generation, started, error)
            raise
        self._finish_now(sync, generation, started, None)
        return result

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate the async function ``fn`` so that every call goes through the breaker.

        Raises:
            ArgumentTypeError: ``fn`` is a coroutine object or not callable.
        """
        callable_arg(fn, "CircuitBreaker(...) as a decorator")
        run = self._run

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await run(fn, args, kwargs)

        return guarded

    async def __aenter__(self) -> None:
        """Ask to run the block as one call.

        Raises:
            CircuitOpenError: the circuit rejects the call; the block does not run.
        """
        started = asyncio.get_running_loop().time()
        generation = await self._admit(started)
        self._entered.setdefault(asyncio.current_task(), []).append((generation, started))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = asyncio.current_task()
        entries = self._entered.get(task)
        if not entries:
            raise UsageError(f"{self!r} exited by a task that did not enter it")
        generation, started = entries.pop()
        if not entries:
            del self._entered[task]
        await self._finish(generation, started, exc)

    # -- manual control ----------------------------------------------------------------

    async def _force(self, state: CircuitState, reason: str) -> None:
        now = asyncio.get_running_loop().time()
        sync = self._sync_store
        if sync is not None:
            view = sync.force(self._name, self._rules, now, state)
        else:
            assert self._async_store is not None
            view = await self._async_store.force(self._name, self._rules, now, state)
        self._view = view
        self._saw(view.state, view.generation, now, reason)

    async def open(self) -> None:
        """Open the circuit now; it lets probes through ``open_for`` seconds later."""
        await self._force(_OPEN, "opened by hand")

    async def close(self) -> None:
        """Close the circuit now, with an empty window."""
        await self._force(_CLOSED, "closed by hand")

    async def reset(self) -> None:
        """Close the circuit with an empty window and zero this breaker's counters."""
        await self._force(_CLOSED, "reset")
        self._calls = self._failures = self._slow_calls = self._rejected = 0
        self._state_changes = 0

    # -- introspection -----------------------------------------------------------------

    def _current_view(self) -> CircuitView:
        sync = self._sync_store
        if sync is None:
            return self._view
        loop = asyncio._get_running_loop()
        now = loop.time() if loop is not None else -math.inf
        return sync.view(self._name, self._rules, now)

    def statistics(self) -> CircuitBreakerStatistics:
        """A snapshot of the circuit and this breaker's counters.

        With a memory (synchronous) store the window is read now; with a store that
        awaits, the figures are those of the store's last answer.
        """
        view = self._current_view()
        calls = view.calls
        return CircuitBreakerStatistics(
            name=self._name,
            state=view.state if self._sync_store is not None else self._state,
            window_calls=calls,
            failure_rate=view.failures / calls if calls else 0.0,
            slow_rate=view.slow_calls / calls if calls else 0.0,
            calls=self._calls,
            failures=self._failures,
            slow_calls=self._slow_calls,
            rejected=self._rejected,
            state_changes=self._state_changes,
        )

    def __repr__(self) -> str:
        view = self._current_view()
        if view.state is _HALF_OPEN:
            detail = f"{view.calls}/{self._rules.half_open_probes} probes succeeded"
        elif view.state is _OPEN:
            detail = f"probes in {view.retry_after:g}s" if view.retry_after < math.inf else "open"
        else:
            detail = f"{view.failures}/{view.calls} failed"
        return f"<CircuitBreaker {self._name!r} {view.state.value}, {detail}>"
