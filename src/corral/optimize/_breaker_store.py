"""Where a :class:`corral.CircuitBreaker` keeps its state: the store protocols and memory.

A breaker decides nothing about its state by itself. Every step that reads or changes
the state of a circuit (admitting a call, recording how it ended, forcing a state) is
one call to its store, and the store carries the whole state machine described below.
That way one circuit can live outside the process (a Redis store, for instance) and be
shared by every process that names it, with no change at the call sites.

Two protocols describe a store. :class:`BreakerStore` has coroutine methods, for stores
that must do I/O; :class:`SyncBreakerStore` has the same methods as plain functions, for
stores in process memory, so the hot path of a breaker on such a store makes no await at
all. A breaker finds out once, when it is made, which kind it was given.

The state machine (every store must implement exactly this; ``rules`` is the breaker's
:class:`BreakerRules`, ``name`` the circuit's key):

- A circuit starts **closed** with generation ``0``. Every change of state adds one to
  the generation, so a store can tell an outcome recorded under an older state (a call
  admitted before the circuit opened) and ignore it.
- **closed**: every call is admitted. Each recorded outcome enters the sliding window
  (the last ``rules.window_calls`` outcomes, or those of the last
  ``rules.window_seconds`` seconds). Once the window holds at least
  ``rules.minimum_calls`` outcomes, the circuit opens when
  ``failures / calls >= rules.failure_rate`` or ``slow_calls / calls >= rules.slow_rate``.
- **open**: calls are rejected until ``rules.open_for`` seconds after it opened. The
  first admission request after that moves it to **half-open** and is admitted.
- **half-open**: at most ``rules.half_open_probes`` calls are in flight at once (the
  *probes*); other requests are rejected. A probe that fails or is slow opens the
  circuit again; when ``rules.half_open_probes`` probes have succeeded it closes, with an
  empty window. A probe released without an outcome (cancelled) frees its slot.

Clocks: ``now`` is the breaker's loop time. A store shared across processes cannot
compare monotonic clocks of different processes, so it may ignore ``now`` and use one
clock of its own (the server's), as long as it uses that clock for every time it keeps;
that is why stores report the time left in the open state as a duration
(``retry_after``), never as an absolute time.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = (
    "BreakerAdmission",
    "BreakerRules",
    "BreakerStore",
    "CircuitState",
    "CircuitView",
    "MemoryBreakerStore",
    "SyncBreakerStore",
)


class CircuitState(enum.Enum):
    """The three states of a circuit breaker."""

    #: calls go through; outcomes are counted.
    CLOSED = "closed"
    #: calls are rejected with :class:`~corral.errors.CircuitOpenError`.
    OPEN = "open"
    #: a few probe calls go through to test whether the dependency has recovered.
    HALF_OPEN = "half-open"


class BreakerRules(NamedTuple):
    """The thresholds a store applies; a breaker passes its own with every call.

    Exactly one of ``window_calls`` and ``window_seconds`` is set.

    Attributes:
        failure_rate: the failure rate in ``(0, 1]`` at or above which the circuit opens.
        slow_rate: the slow-call rate in ``(0, 1]`` at or above which the circuit opens.
        minimum_calls: outcomes the window must hold before either rate counts.
        window_calls: a count-based window: the last this many outcomes.
        window_seconds: a time-based window: the outcomes of the last this many seconds.
        open_for: seconds the circuit stays open before it lets probes through.
        half_open_probes: probes in flight at once, and successes needed to close.
    """

    failure_rate: float
    slow_rate: float
    minimum_calls: int
    window_calls: int | None
    window_seconds: float | None
    open_for: float
    half_open_probes: int


class BreakerAdmission(NamedTuple):
    """The answer to a request to start a call.

    Attributes:
        admitted: whether the call may go ahead.
        state: the circuit's state after the request (a request may move an open circuit
            whose time is up to half-open).
        generation: the circuit's generation after the request; the caller passes it
            back when it records the outcome.
        retry_after: when rejected by an open circuit, seconds until it lets a probe
            through; otherwise ``0.0``.
    """

    admitted: bool
    state: CircuitState
    generation: int
    retry_after: float


class CircuitView(NamedTuple):
    """A circuit's state and sliding window, as a store reports them.

    Attributes:
        state: the current state.
        generation: the current generation (see the module docs).
        retry_after: when open, seconds until it lets a probe through; otherwise ``0.0``.
        calls: outcomes in the window (in half-open: probes that succeeded).
        failures: failed outcomes in the window.
        slow_calls: slow outcomes in the window.
    """

    state: CircuitState
    generation: int
    retry_after: float
    calls: int
    failures: int
    slow_calls: int


@runtime_checkable
class BreakerStore(Protocol):
    """A circuit breaker store whose steps are coroutines (one that does I/O).

    Each method is **one atomic step** on the circuit named ``name``: no other step on
    the same circuit, from this process or another, may interleave with it. The module
    docs give the state machine every step follows. Methods may be cancelled while they
    wait on I/O; a step must then either have happened completely or not at all.
    """

    async def acquire(self, name: str, rules: BreakerRules, now: float) -> BreakerAdmission:
        """Ask to start one call: admit it, or say why not.

        Atomically: in closed state, admit. In open state, if ``open_for`` has passed
        since it opened, move to half-open (generation + 1) and admit the call as the
        first probe; otherwise reject with the seconds left. In half-open state, admit
        and count one more probe in flight if fewer than ``half_open_probes`` are in
        flight; otherwise reject with ``retry_after`` ``0.0``.
        """
        ...

    async def record(
        self,
        name: str,
        rules: BreakerRules,
        now: float,
        generation: int,
        *,
        failed: bool,
        slow: bool,
    ) -> CircuitView:
        """Record how an admitted call ended, and apply the transition it causes.

        Atomically: if ``generation`` is not the current one, change nothing. In closed
        state, add the outcome to the window, drop the outcomes that left it, and open
        the circuit (generation + 1, window cleared) if a rate crossed its threshold. In
        half-open state, free the probe's slot; a failed or slow probe opens the circuit
        (generation + 1), and the ``half_open_probes``-th success closes it
        (generation + 1, empty window).

        Returns:
            The circuit after the step.
        """
        ...

    async def release(self, name: str, rules: BreakerRules, generation: int) -> None:
        """Forget an admitted call that ended without an outcome (it was cancelled).

        Atomically: if ``generation`` is current and the circuit is half-open, free one
        probe slot. Nothing else changes.
        """
        ...

    async def force(
        self, name: str, rules: BreakerRules, now: float, state: CircuitState
    ) -> CircuitView:
        """Put the circuit in ``state`` now, whatever its state was (manual control).

        Atomically: set the state, add one to the generation, clear the window and the
        probe counts; opening starts a fresh ``open_for`` period from ``now``.

        Returns:
            The circuit after the step.
        """
        ...

    async def view(self, name: str, rules: BreakerRules, now: float) -> CircuitView:
        """The circuit as it is now, with the outcomes that left the window dropped."""
        ...


@runtime_checkable
class SyncBreakerStore(Protocol):
    """A circuit breaker store in process memory: :class:`BreakerStore` without awaits.

    The same five steps with the same contracts, as plain methods; each runs to
    completion without yielding, which is what makes it atomic within one event loop.
    """

    def acquire(self, name: str, rules: BreakerRules, now: float) -> BreakerAdmission:
        """See :meth:`BreakerStore.acquire`."""
        ...

    def record(
        self,
        name: str,
        rules: BreakerRules,
        now: float,
        generation: int,
        *,
        failed: bool,
        slow: bool,
    ) -> CircuitView:
        """See :meth:`BreakerStore.record`."""
        ...

    def release(self, name: str, rules: BreakerRules, generation: int) -> None:
        """See :meth:`BreakerStore.release`."""
        ...

    def force(self, name: str, rules: BreakerRules, now: float, state: CircuitState) -> CircuitView:
        """See :meth:`BreakerStore.force`."""
        ...

    def view(self, name: str, rules: BreakerRules, now: float) -> CircuitView:
        """See :meth:`BreakerStore.view`."""
        ...


# Outcome codes kept in a window: bit 0 failed, bit 1 slow.
_FAILED = 1
_SLOW = 2


class _Window:
    """Failure and slow counts over a sliding window of outcomes."""

    __slots__ = ("calls", "failures", "slow_calls")

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.slow_calls = 0

    def _count(self, code: int, sign: int) -> None:
        if code & _FAILED:
            self.failures += sign
        if code & _SLOW:
            self.slow_calls += sign


class _CountWindow(_Window):
    """The last ``size`` outcomes: a count of outcomes, and the failed or slow ones.

    Outcome number ``seq`` (from 1) is in the window while ``seq > self.seq - size``;
    successes are only counted, so recording one is an increment (see :meth:`settle`).
    """

    __slots__ = ("bad", "seq", "size")

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.seq = 0
        self.bad: deque[tuple[int, int]] = deque()

    def add(self, code: int, now: float) -> bool:
        """Add an outcome; return whether a rate may have risen (else none did)."""
        self.seq += 1
        if code:
            self.bad.append((self.seq, code))
            self._count(code, 1)
            self.settle()
            return True
        return self.settle()

    def settle(self) -> bool:
        """Catch up after ``seq`` moved: drop the failed or slow outcomes that left.

        Returns:
            Whether the window is still filling up, so a rate may have risen.
        """
        seq = self.seq
        size = self.size
        bad = self.bad
        horizon = seq - size
        while bad and bad[0][0] <= horizon:
            self._count(bad.popleft()[1], -1)
        if seq <= size:
            self.calls = seq
            return True
        self.calls = size
        return False

    def expire(self, now: float) -> None:
        """Outcomes leave a count window only when newer ones push them out."""


class _TimeWindow(_Window):
    """The outcomes of the last ``seconds`` seconds, oldest first."""

    __slots__ = ("_entries", "_seconds")

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._seconds = seconds
        self._entries: deque[tuple[float, int]] = deque()

    def add(self, code: int, now: float) -> bool:
        """Add an outcome; return whether a rate may have risen (else none did)."""
        self.expire(now)
        self._entries.append((now, code))
        self.calls += 1
        self._count(code, 1)
        return True

    def expire(self, now: float) -> None:
        entries = self._entries
        horizon = now - self._seconds
        while entries and entries[0][0] <= horizon:
            self.calls -= 1
            self._count(entries.popleft()[1], -1)


def _new_window(rules: BreakerRules) -> _CountWindow | _TimeWindow:
    if rules.window_seconds is not None:
        return _TimeWindow(rules.window_seconds)
    assert rules.window_calls is not None
    return _CountWindow(rules.window_calls)


class _Circuit:
    """One circuit's state in a :class:`MemoryBreakerStore`."""

    __slots__ = (
        "admit",
        "closed_generation",
        "generation",
        "in_flight",
        "opened_at",
        "state",
        "succeeded",
        "window",
    )

    def __init__(self, rules: BreakerRules) -> None:
        self.state = CircuitState.CLOSED
        self.generation = 0
        self.opened_at = 0.0
        self.in_flight = 0
        self.succeeded = 0
        self.window = _new_window(rules)
        # the answer to every request while closed, made once per generation
        self.admit = BreakerAdmission(True, CircuitState.CLOSED, 0, 0.0)
        # the generation while closed, else -1: one comparison for a breaker's fast path
        self.closed_generation = 0

    def move_to(self, state: CircuitState, rules: BreakerRules, now: float) -> None:
        self.state = state
        self.generation += 1
        self.in_flight = 0
        self.succeeded = 0
        if state is CircuitState.OPEN:
            self.opened_at = now
        self.window = _new_window(rules)
        self.admit = BreakerAdmission(True, state, self.generation, 0.0)
        self.closed_generation = self.generation if state is CircuitState.CLOSED else -1

    def record_closed(self, code: int, rules: BreakerRules, now: float) -> CircuitView | None:
        """Add an outcome to the window of a closed circuit; open it if a rate crossed.

        Returns:
            ``None`` while the circuit stays closed; else the open circuit, with the
            window that opened it.
        """
        if not self.window.add(code, now):
            return None
        return self.evaluate(rules, now)

    def evaluate(self, rules: BreakerRules, now: float) -> CircuitView | None:
        """Open the closed circuit if a rate of its window crossed its threshold.

        Returns:
            ``None`` while the circuit stays closed; else the open circuit, with the
            window that opened it.
        """
        window = self.window
        calls = window.calls
        if calls < rules.minimum_calls or (
            window.failures < rules.failure_rate * calls
            and window.slow_calls < rules.slow_rate * calls
        ):
            return None
        failures, slow_calls = window.failures, window.slow_calls
        self.move_to(CircuitState.OPEN, rules, now)
        return CircuitView(
            CircuitState.OPEN, self.generation, rules.open_for, calls, failures, slow_calls
        )

    def view(self, rules: BreakerRules, now: float) -> CircuitView:
        state = self.state
        if state is CircuitState.HALF_OPEN:
            return CircuitView(state, self.generation, 0.0, self.succeeded, 0, 0)
        retry_after = 0.0
        if state is CircuitState.OPEN:
            retry_after = max(0.0, self.opened_at + rules.open_for - now)
        window = self.window
        return CircuitView(
            state, self.generation, retry_after, window.calls, window.failures, window.slow_calls
        )


class MemoryBreakerStore:
    """A :class:`SyncBreakerStore` in process memory; the default store of a breaker.

    One store may hold any number of circuits, one per name, so breakers that share a
    store and a name share one circuit. Every step runs without awaiting.

    Thread-safety: not thread-safe; use it from one event loop.
    """

    __slots__ = ("_circuits",)

    def __init__(self) -> None:
        self._circuits: dict[str, _Circuit] = {}

    def _circuit(self, name: str, rules: BreakerRules) -> _Circuit:
        circuit = self._circuits.get(name)
        if circuit is None:
            circuit = self._circuits[name] = _Circuit(rules)
        return circuit

    def acquire(self, name: str, rules: BreakerRules, now: float) -> BreakerAdmission:
        """Admit one call or say why not (see :meth:`BreakerStore.acquire`)."""
        circuit = self._circuits.get(name) or self._circuit(name, rules)
        state = circuit.state
        if state is CircuitState.CLOSED:
            return circuit.admit
        if state is CircuitState.OPEN:
            left = circuit.opened_at + rules.open_for - now
            if left > 0:
                return BreakerAdmission(False, state, circuit.generation, left)
            circuit.move_to(CircuitState.HALF_OPEN, rules, now)
        elif circuit.in_flight >= rules.half_open_probes:
            return BreakerAdmission(False, state, circuit.generation, 0.0)
        circuit.in_flight += 1
        return circuit.admit

    def record(
        self,
        name: str,
        rules: BreakerRules,
        now: float,
        generation: int,
        *,
        failed: bool,
        slow: bool,
    ) -> CircuitView:
        """Record an outcome and apply its transition (see :meth:`BreakerStore.record`)."""
        circuit = self._circuits.get(name) or self._circuit(name, rules)
        if generation == circuit.generation:
            if circuit.state is CircuitState.CLOSED:
                opened = circuit.record_closed(_FAILED * failed | _SLOW * slow, rules, now)
                if opened is not None:
                    return opened
                window = circuit.window
                return CircuitView(
                    CircuitState.CLOSED,
                    generation,
                    0.0,
                    window.calls,
                    window.failures,
                    window.slow_calls,
                )
            if circuit.state is CircuitState.HALF_OPEN:
                circuit.in_flight -= 1
                if failed or slow:
                    circuit.move_to(CircuitState.OPEN, rules, now)
                else:
                    circuit.succeeded += 1
                    if circuit.succeeded >= rules.half_open_probes:
                        circuit.move_to(CircuitState.CLOSED, rules, now)
        return circuit.view(rules, now)

    def release(self, name: str, rules: BreakerRules, generation: int) -> None:
        """Free the probe slot of a call that ended without an outcome."""
        circuit = self._circuits.get(name)
        if (
            circuit is not None
            and generation == circuit.generation
            and circuit.state is CircuitState.HALF_OPEN
        ):
            circuit.in_flight -= 1

    def force(self, name: str, rules: BreakerRules, now: float, state: CircuitState) -> CircuitView:
        """Put the circuit in ``state`` now (see :meth:`BreakerStore.force`)."""
        circuit = self._circuit(name, rules)
        circuit.move_to(state, rules, now)
        return circuit.view(rules, now)

    def view(self, name: str, rules: BreakerRules, now: float) -> CircuitView:
        """The circuit now, with expired outcomes dropped from a time window."""
        circuit = self._circuit(name, rules)
        circuit.window.expire(now)
        return circuit.view(rules, now)

    def __repr__(self) -> str:
        return f"<MemoryBreakerStore {len(self._circuits)} circuits>"
