"""A retry budget shared across calls: a token bucket that keeps retry storms in check."""

from __future__ import annotations

import asyncio
import dataclasses
import math

from ..errors import ArgumentTypeError, InvalidArgumentError

__all__ = ("RetryBudget", "RetryBudgetStatistics")


@dataclasses.dataclass(frozen=True, slots=True)
class RetryBudgetStatistics:
    """A snapshot of a :class:`RetryBudget`.

    Attributes:
        requests: first attempts made under the budget.
        retries: retries the budget allowed.
        denied: retries the budget refused.
        balance: retry tokens in the bucket (time refill counted up to the last retry).
        capacity: the most tokens the bucket can hold.
    """

    requests: int
    retries: int
    denied: int
    balance: float
    capacity: float


def _positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be a number, not {type(value).__name__} ({value!r})")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = "must not be negative" if allow_zero else "must be greater than zero"
        raise InvalidArgumentError(f"{name} {bound}, got {value!r}")
    return number


class RetryBudget:
    """A budget of retries shared by every call that uses it, so failures cannot snowball.

    The model is a token bucket. Every call (its first attempt) deposits ``ratio`` tokens;
    every retry withdraws one whole token and is refused when less than one is left. The
    bucket also refills by ``min_per_second`` tokens per second of loop time, so a caller
    with little traffic can still retry now and then, and it never holds more than
    ``capacity`` tokens. It starts with one second's worth of refill (at least one token,
    at most ``capacity``). Over any stretch of time the retries it allows are therefore
    at most ``ratio`` times the requests, plus ``min_per_second`` per second, plus what
    was saved up: when a dependency fails for everyone, retries add at most ``ratio``
    (20% by default) to the load instead of multiplying it by the attempt count.

    Pass one budget to many :func:`corral.retry` policies to share it between them::

        budget = corral.RetryBudget(ratio=0.1)

        @corral.retry(attempts=5, budget=budget)
        async def fetch(url: str) -> bytes: ...

    Time is read from the running event loop (the virtual clock in tests). A budget is
    not thread-safe: use it from one event loop.

    Args:
        ratio: tokens deposited per call; the long-run share of retries to requests.
        min_per_second: tokens added per second of loop time; zero turns the refill off.
        capacity: the most tokens the bucket holds, at least one.

    Raises:
        InvalidArgumentError: ``ratio`` or ``capacity`` is zero, negative, NaN or
            infinite; ``capacity`` is below one; ``min_per_second`` is negative, NaN or
            infinite.
        ArgumentTypeError: an argument is not a number.
    """

    __slots__ = (
        "_balance",
        "_capacity",
        "_denied",
        "_last",
        "_rate",
        "_ratio",
        "_requests",
        "_retries",
    )

    def __init__(
        self, *, ratio: float = 0.2, min_per_second: float = 1.0, capacity: float = 10.0
    ) -> None:
        self._ratio = _positive(ratio, "ratio")
        self._rate = _positive(min_per_second, "min_per_second", allow_zero=True)
        self._capacity = _positive(capacity, "capacity")
        if self._capacity < 1:
            raise InvalidArgumentError(f"capacity must be at least 1 token, got {capacity!r}")
        self._balance = min(self._capacity, max(1.0, self._rate))
        self._last: float | None = None
        self._requests = 0
        self._retries = 0
        self._denied = 0

    def _deposit(self) -> None:
        """Count one request and deposit its share of a retry."""
        self._requests += 1
        balance = self._balance + self._ratio
        self._balance = balance if balance < self._capacity else self._capacity

    def _withdraw(self) -> bool:
        """Take the token for one retry; ``False`` (and counted as denied) if none is left."""
        now = asyncio.get_running_loop().time()
        if self._last is not None:
            self._balance = min(self._capacity, self._balance + self._rate * (now - self._last))
        self._last = now
        if self._balance < 1.0:
            self._denied += 1
            return False
        self._balance -= 1.0
        self._retries += 1
        return True

    def _refund(self) -> None:
        """Give back the token of a retry that never ran (its wait was cancelled)."""
        self._retries -= 1
        self._balance = min(self._capacity, self._balance + 1.0)

    def statistics(self) -> RetryBudgetStatistics:
        """A snapshot of the budget's counters and balance."""
        return RetryBudgetStatistics(
            requests=self._requests,
            retries=self._retries,
            denied=self._denied,
            balance=self._balance,
            capacity=self._capacity,
        )

    def __repr__(self) -> str:
        return (
            f"<RetryBudget {self._balance:g}/{self._capacity:g} tokens, ratio {self._ratio:g}, "
            f"{self._requests} requests, {self._retries} retries, {self._denied} denied>"
        )
