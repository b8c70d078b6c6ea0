"""Fault rules: make named fault points raise or stall, reproducibly from the schedule."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .._core._faults import FAULTS
from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError

__all__ = ("PROBABILITY_STEPS", "FaultCounters", "FaultInjector", "FaultRule", "rules_arg")

#: A probability below 1 is decided by picking among this many equal options.
PROBABILITY_STEPS = 1000


class FaultRule:
    """A rule for the simulation: at fault points named like ``point``, raise or wait.

    Fault points are places that announce themselves to the simulator:
    ``await corral.fault_point("db.query")`` in your code, and corral's own points
    (``"to_thread"`` before a thread call, channel operations as ``"channel.send"`` and
    ``"channel.receive"``). At each point the rules are tried in order and the first
    one that *fires* acts: it raises ``raises("injected fault at <point>")`` or sleeps
    ``delay`` seconds of loop time (virtual, so free).

    Whether a matching rule fires is decided by ``nth`` (only its nth matching hit),
    ``limit`` (at most that many times) and ``probability`` (a decision of the
    schedule, so the seed or hypothesis decides and a replay repeats it).

    Examples::

        FaultRule("db.*", raises=ConnectionError, probability=0.1)
        FaultRule("channel.send", delay=0.5, nth=3)

    Args:
        point: A name or shell-style pattern (``"db.*"``, ``"channel.?end"``).
        raises: An exception class, or a callable taking the message and returning
            the exception to raise. Exactly one of ``raises`` and ``delay``.
        delay: Seconds (``float`` or ``timedelta``) to wait at the point instead.
        probability: Chance that a matching hit fires, in ``[0, 1]``, in steps of
            1/1000.
        nth: Fire only at the nth (1-based) hit that matches ``point``.
        limit: Fire at most this many times.

    A rule is a value: build it once and pass it to many simulations.

    Raises:
        ArgumentTypeError: an argument has the wrong type (``raises`` not callable,
            ``probability`` not a number, ``nth``/``limit`` not ints).
        InvalidArgumentError: both or neither of ``raises`` and ``delay``, a negative
            or infinite delay, ``probability`` outside ``[0, 1]``, ``nth`` or
            ``limit`` below 1.
    """

    __slots__ = ("delay", "limit", "nth", "point", "probability", "raises")

    def __init__(
        self,
        point: str,
        *,
        raises: Callable[[str], BaseException] | None = None,
        delay: Seconds | None = None,
        probability: float = 1.0,
        nth: int | None = None,
        limit: int | None = None,
    ) -> None:
        if not isinstance(point, str) or not point:
            raise ArgumentTypeError(
                f"point must be a non-empty fault point name or pattern, got {point!r}"
            )
        if (raises is None) == (delay is None):
            raise InvalidArgumentError(
                f"a FaultRule for {point!r} takes exactly one of raises= and delay= "
                f"(got raises={raises!r}, delay={delay!r})"
            )
        if raises is not None and not callable(raises):
            raise ArgumentTypeError(
                f"raises must be an exception class or a callable making one, "
                f"not {type(raises).__name__} ({raises!r})"
            )
        seconds = None
        if delay is not None:
            seconds = seconds_arg(delay, "delay")
            if math.isinf(seconds):
                raise InvalidArgumentError(f"delay must be finite, got {seconds!r}")
        if not isinstance(probability, (int, float)) or isinstance(probability, bool):
            raise ArgumentTypeError(
                f"probability must be a number in [0, 1], not {type(probability).__name__} "
                f"({probability!r})"
            )
        if not 0.0 <= probability <= 1.0:
            raise InvalidArgumentError(f"probability must be in [0, 1], got {probability!r}")
        #: The fault point name or pattern the rule matches.
        self.point = point
        #: What makes the error to raise, or ``None`` for a delay rule.
        self.raises = raises
        #: Seconds to wait, or ``None`` for a rule that raises.
        self.delay = seconds
        #: Chance that a matching hit fires.
        self.probability = float(probability)
        #: The only matching hit that fires, or ``None``.
        self.nth = _count_arg(nth, "nth")
        #: Most times the rule fires, or ``None``.
        self.limit = _count_arg(limit, "limit")

    def __repr__(self) -> str:
        action = (
            f"delay={self.delay:g}"
            if self.delay is not None
            else f"raises={getattr(self.raises, '__qualname__', self.raises)!s}"
        )
        extras = "".join(
            f", {name}={value!r}"
            for name, value, default in (
                ("probability", self.probability, 1.0),
                ("nth", self.nth, None),
                ("limit", self.limit, None),
            )
            if value != default
        )
        return f"FaultRule({self.point!r}, {action}{extras})"


def _count_arg(value: object, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < 1:
        raise InvalidArgumentError(f"{name} must be at least 1, got {value!r}")
    return value


def rules_arg(faults: object) -> tuple[FaultRule, ...]:
    """``faults`` as a tuple of rules, or an :class:`ArgumentTypeError` naming it."""
    if isinstance(faults, FaultRule) or not isinstance(faults, Iterable):
        raise ArgumentTypeError(
            f"faults must be a list of corral.testing.FaultRule, not {type(faults).__name__} "
            f"({faults!r})"
        )
    rules = tuple(faults)
    for index, rule in enumerate(rules):
        if not isinstance(rule, FaultRule):
            raise ArgumentTypeError(
                f"faults[{index}] must be a corral.testing.FaultRule, "
                f"not {type(rule).__name__} ({rule!r})"
            )
    return rules


@dataclass(slots=True)
class FaultCounters:
    """What the injector did, counted as it runs."""

    hits: int = 0
    raised: int = 0
    delayed: int = 0
    per_rule: list[int] = field(default_factory=list)


class FaultInjector:
    """Applies fault rules at the fault points reached on one simulation loop."""

    __slots__ = ("_decide", "_fired", "_loop", "_matched", "_rules", "_trace", "counters")

    def __init__(
        self,
        rules: tuple[FaultRule, ...],
        decide: Callable[[int], int],
        trace: Callable[[str], None] | None,
    ) -> None:
        self._rules = rules
        self._decide = decide
        self._trace = trace
        self._matched = [0] * len(rules)
        self._fired = [0] * len(rules)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters = FaultCounters(per_rule=self._fired)

    def install(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Serve the fault points reached on ``loop``; returns the function removing it.

        Raises:
            UsageError: another injector (another simulation) is installed.
        """
        self._loop = loop
        try:
            return FAULTS.install(self)
        except UsageError:
            raise UsageError(
                "another simulation with fault rules is running in this process; "
                "fault rules apply to one simulation at a time"
            ) from None

    async def __call__(self, point: str, target: object) -> None:
        if asyncio.get_running_loop() is not self._loop:
            return
        self.counters.hits += 1
        for index, rule in enumerate(self._rules):
            if not fnmatchcase(point, rule.point):
                continue
            self._matched[index] += 1
            if not self._fires(index, rule):
                continue
            self._fired[index] += 1
            raises = rule.raises
            if raises is None:
                self.counters.delayed += 1
                self._note(f"fault at {point!r}: {rule!r} waits")
                await asyncio.sleep(rule.delay or 0.0)
                return
            self.counters.raised += 1
            self._note(f"fault at {point!r}: {rule!r} raises")
            raise _make_error(raises, rule, point)

    def _fires(self, index: int, rule: FaultRule) -> bool:
        if rule.nth is not None and self._matched[index] != rule.nth:
            return False
        if rule.limit is not None and self._fired[index] >= rule.limit:
            return False
        if rule.probability >= 1.0:
            return True
        threshold = round(rule.probability * PROBABILITY_STEPS)
        if threshold <= 0:
            return False
        # Option 0 (what shrinking heads for) means "no fault".
        return self._decide(PROBABILITY_STEPS) >= PROBABILITY_STEPS - threshold

    def _note(self, line: str) -> None:
        if self._trace is not None and self._loop is not None:
            self._trace(f"t={self._loop.time():g} {line}")


def _make_error(raises: Callable[[str], object], rule: FaultRule, point: str) -> BaseException:
    error = raises(f"injected fault at {point!r}")
    if not isinstance(error, BaseException):
        return UsageError(
            f"{rule!r}: raises= made {type(error).__name__} ({error!r}), not an exception"
        )
    return error
