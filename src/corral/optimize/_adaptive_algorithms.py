"""The algorithms that tune a :class:`corral.AdaptiveLimiter`: AIMD and Gradient.

An algorithm turns each finished piece of work (a *sample*: when it got its token, how
long it held it, how much work was in flight, whether it was dropped) into a new limit.
The limiter keeps the limit as a float, clamps it to its bounds and lends
``round(limit)`` tokens, so an algorithm may move it by fractions.
"""

from __future__ import annotations

import abc
import math

from .._core._time import Seconds
from ..errors import ArgumentTypeError, InvalidArgumentError
from ._retry import _duration_arg

__all__ = ("AIMD", "Gradient", "LimitAlgorithm")

# Weight of the newest sample in the short-term round-trip time (about the last 10).
_SHORT_WEIGHT = 0.1


def _number_arg(value: object, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be a number, not {type(value).__name__} ({value!r})")
    number = float(value)
    if math.isnan(number):
        raise InvalidArgumentError(f"{name} must be a number, not NaN")
    return number


def _factor_arg(value: object, name: str, *, high_inclusive: bool) -> float:
    """``value`` as a factor in ``(0, 1)``, or ``(0, 1]`` when ``high_inclusive``."""
    factor = _number_arg(value, name)
    if not (0 < factor < 1 or (high_inclusive and factor == 1)):
        bound = "at most 1" if high_inclusive else "below 1"
        raise InvalidArgumentError(f"{name} must be above 0 and {bound}, got {value!r}")
    return factor


class _Backoff:
    """Multiplicative decrease, at most once per round trip.

    A wave of work that failed together cuts the limit once: only a sample whose work got
    its token after the last cut may cut again.
    """

    __slots__ = ("factor", "last_cut")

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.last_cut = -math.inf

    def cut(self, limit: float, started: float, now: float) -> float:
        if started <= self.last_cut:
            return limit
        self.last_cut = now
        return limit * self.factor


class LimitAlgorithm(abc.ABC):
    """The base class of the algorithms that tune an :class:`~corral.AdaptiveLimiter`.

    A subclass implements :meth:`update`, and :attr:`no_load_rtt` if it estimates one.
    An algorithm keeps state about the samples it has seen, so one instance tunes one
    limiter: handing it to a second limiter raises :class:`~corral.errors.UsageError`.

    Thread-safety: not thread-safe; its limiter calls it from one event loop.
    """

    #: The limiter this algorithm tunes; set by that limiter.
    _limiter: object = None

    @property
    def no_load_rtt(self) -> float | None:
        """The estimated round-trip time without queueing, in seconds (``None``: no estimate)."""
        return None

    @abc.abstractmethod
    def update(
        self, limit: float, started: float, rtt: float, in_flight: int, dropped: bool
    ) -> float:
        """Return the limit after one sample; the limiter clamps it to its bounds.

        Args:
            limit: the current limit (a float: algorithms may move it by fractions).
            started: the loop time at which the sampled work got its token.
            rtt: how long the work held its token, in seconds.
            in_flight: how many tokens were lent out when the work got its token, its own
                included.
            dropped: the work failed or was marked dropped (a sign of overload); its
                ``rtt`` says nothing about healthy latency.
        """


class AIMD(LimitAlgorithm):
    """Additive increase, multiplicative decrease (as TCP congestion avoidance).

    While the limiter is busy (at least half its tokens lent out) and nothing fails, the
    limit grows by ``increase`` per round trip: each good sample adds
    ``increase / limit``. A dropped sample (an error escaped the work, or the token was
    marked :meth:`~corral.AdaptiveToken.dropped`) or one slower than
    ``latency_threshold`` multiplies the limit by ``backoff``, at most once per round
    trip: work that got its token before the last cut cannot cut again, so a burst of
    failures from one wave of requests counts once.

    Args:
        latency_threshold: work that holds its token longer than this counts as dropped
            (seconds or a ``timedelta``); ``None`` reacts to drops only.
        backoff: the factor applied on a drop, above 0 and below 1.
        increase: how much the limit grows per round trip without drops (``> 0``).

    Raises:
        ArgumentTypeError: an argument has the wrong type.
        InvalidArgumentError: ``latency_threshold`` is not a finite duration above zero,
            ``backoff`` is not in ``(0, 1)``, ``increase`` is not a finite number above
            zero, or any of them is NaN.

    Thread-safety: not thread-safe; its limiter calls it from one event loop.
    """

    __slots__ = ("_backoff", "_increase", "_latency_threshold")

    def __init__(
        self,
        *,
        latency_threshold: Seconds | None = None,
        backoff: float = 0.9,
        increase: float = 1.0,
    ) -> None:
        self._latency_threshold = (
            math.inf
            if latency_threshold is None
            else _duration_arg(latency_threshold, "latency_threshold")
        )
        self._backoff = _Backoff(_factor_arg(backoff, "backoff", high_inclusive=False))
        self._increase = _number_arg(increase, "increase")
        if not 0 < self._increase < math.inf:
            raise InvalidArgumentError(
                f"increase must be a finite number above zero, got {increase!r}"
            )

    def update(
        self, limit: float, started: float, rtt: float, in_flight: int, dropped: bool
    ) -> float:
        """Cut the limit on a drop or a slow sample; grow it a little on a busy good one."""
        if dropped or rtt > self._latency_threshold:
            return self._backoff.cut(limit, started, started + rtt)
        if in_flight * 2 >= limit:
            return limit + self._increase / limit
        return limit

    def __repr__(self) -> str:
        threshold = self._latency_threshold
        shown = "None" if threshold == math.inf else f"{threshold:g}"
        return (
            f"AIMD(latency_threshold={shown}, backoff={self._backoff.factor:g}, "
            f"increase={self._increase:g})"
        )


class Gradient(LimitAlgorithm):
    """Steers the limit by the ratio of the no-load round-trip time to the current one.

    The algorithm keeps two estimates: the *no-load* RTT (the fastest recent sample: how
    long work takes when nothing queues) and a *short-term* RTT (an average of about the
    last ten samples). Their ratio, the gradient, says how much queueing the current
    limit causes::

        gradient = clamp(tolerance * no_load / short_term, 0.5, 1)
        target   = limit * gradient + sqrt(limit)

    and every round trip (``limit`` samples) moves the limit ``smoothing`` of the way
    to the target, a little with each sample. With no queueing the gradient is 1 and
    the limit grows by the ``sqrt(limit)`` allowance; as latency rises beyond
    ``tolerance`` times the no-load RTT the limit shrinks, toward at most half. The
    limit settles where the work is served at
    about ``tolerance`` times its no-load latency: for a server that queues beyond its
    capacity, near ``tolerance * capacity + sqrt(limit)``. It does not grow while less
    than half the tokens are lent out (the caller, not the server, limits throughput).

    The no-load RTT is re-measured when no sample came within ``tolerance`` of it for
    ``probe_interval`` seconds (the server got slower for good, or queueing never
    stops): the limit drops to the concurrency that the current throughput would need
    without queueing (``limit * no_load / short_term``), and the first sample whose work
    started after that becomes the new no-load RTT. A dropped sample multiplies the
    limit by ``backoff``, at most once per round trip, and its RTT is not used.

    Args:
        tolerance: how much slower than the no-load RTT work may get before the limit
            shrinks (``>= 1``; 1.2 accepts 20% of queueing delay).
        smoothing: how far a round trip moves the limit toward its target, in
            ``(0, 1]``.
        backoff: the factor applied on a drop, above 0 and below 1.
        probe_interval: how long the no-load RTT may go unconfirmed before it is
            re-measured (seconds or a ``timedelta``).

    Raises:
        ArgumentTypeError: an argument has the wrong type.
        InvalidArgumentError: ``tolerance`` is below 1 or infinite, ``smoothing`` is not
            in ``(0, 1]``, ``backoff`` is not in ``(0, 1)``, ``probe_interval`` is not a
            finite duration above zero, or any of them is NaN.

    Thread-safety: not thread-safe; its limiter calls it from one event loop.
    """

    __slots__ = (
        "_backoff",
        "_confirmed_at",
        "_no_load",
        "_probe_interval",
        "_probe_started",
        "_short",
        "_smoothing",
        "_tolerance",
    )

    def __init__(
        self,
        *,
        tolerance: float = 1.2,
        smoothing: float = 0.2,
        backoff: float = 0.9,
        probe_interval: Seconds = 10.0,
    ) -> None:
        self._tolerance = _number_arg(tolerance, "tolerance")
        if not 1 <= self._tolerance < math.inf:
            raise InvalidArgumentError(
                f"tolerance must be a finite factor of at least 1, got {tolerance!r}"
            )
        self._smoothing = _factor_arg(smoothing, "smoothing", high_inclusive=True)
        self._backoff = _Backoff(_factor_arg(backoff, "backoff", high_inclusive=False))
        self._probe_interval = _duration_arg(probe_interval, "probe_interval")
        self._no_load = math.inf
        self._short = math.inf
        self._confirmed_at = -math.inf
        self._probe_started: float | None = None

    @property
    def no_load_rtt(self) -> float | None:
        """The fastest recent round-trip time, in seconds (``None`` before any sample)."""
        return None if self._no_load == math.inf else self._no_load

    def update(
        self, limit: float, started: float, rtt: float, in_flight: int, dropped: bool
    ) -> float:
        """Move the limit toward ``limit * gradient + sqrt(limit)``; cut it on a drop."""
        if dropped:
            return self._backoff.cut(limit, started, started + rtt)
        if self._probe_started is not None and not self._probe_answered(started, rtt):
            return limit  # admitted before the probe: it still saw the old queue
        no_load = self._no_load
        tolerated = no_load * self._tolerance
        if rtt <= tolerated:
            self._confirmed_at = started + rtt
            if rtt < no_load:
                if no_load == math.inf:
                    self._short = rtt  # the first sample
                self._no_load = rtt
                tolerated = rtt * self._tolerance
        elif started + rtt - self._confirmed_at > self._probe_interval:
            return self._probe(limit, started + rtt)
        short = self._short
        short += (rtt - short) * _SHORT_WEIGHT
        self._short = short
        if short <= tolerated:
            if in_flight * 2 < limit:
                return limit  # not busy: nothing to learn about a higher limit
            gradient = 1.0
        else:
            gradient = max(0.5, tolerated / short)
        # target = limit * gradient + sqrt(limit); ``limit`` samples make a round trip,
        # and each round trip moves ``smoothing`` of the way to the target
        return limit + self._smoothing * (gradient - 1.0 + 1.0 / math.sqrt(limit))

    def _probe(self, limit: float, now: float) -> float:
        """Drop to the concurrency the throughput would need without queueing."""
        self._probe_started = now
        self._confirmed_at = now
        short = self._short
        return limit * self._no_load / short if short > 0 else limit

    def _probe_answered(self, started: float, rtt: float) -> bool:
        """Take the first sample admitted after the probe began as the no-load RTT."""
        if self._probe_started is None or started <= self._probe_started:
            return False
        self._probe_started = None
        self._no_load = self._short = rtt
        return True

    def __repr__(self) -> str:
        return (
            f"Gradient(tolerance={self._tolerance:g}, smoothing={self._smoothing:g}, "
            f"backoff={self._backoff.factor:g}, probe_interval={self._probe_interval:g})"
        )
