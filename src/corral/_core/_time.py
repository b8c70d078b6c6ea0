"""Validation of time arguments: seconds as ``float``, or a ``timedelta``."""

from __future__ import annotations

import math
from datetime import timedelta

from ..errors import ArgumentTypeError, InvalidArgumentError

__all__ = ("Seconds", "deadline_arg", "seconds_arg")

#: What corral accepts wherever it takes a duration.
Seconds = float | int | timedelta


def seconds_arg(value: object, name: str, *, allow_negative: bool = False) -> float:
    """Return ``value`` as seconds, or raise an error that names ``name`` and the value.

    Raises:
        ArgumentTypeError: ``value`` is not a number or ``timedelta`` (``bool`` is refused).
        InvalidArgumentError: ``value`` is NaN, or negative while ``allow_negative`` is false.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ArgumentTypeError(
            f"{name} must be seconds as a float or a datetime.timedelta, "
            f"not {type(value).__name__} ({value!r})"
        )
    if math.isnan(seconds):
        raise InvalidArgumentError(f"{name} must be a number of seconds, not NaN")
    if seconds < 0 and not allow_negative:
        raise InvalidArgumentError(f"{name} must not be negative, got {seconds!r}")
    return seconds


def deadline_arg(value: object, name: str = "deadline") -> float:
    """Return ``value`` as an absolute deadline in loop time (``inf`` means none).

    Raises:
        ArgumentTypeError: ``value`` is not a real number.
        InvalidArgumentError: ``value`` is NaN.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArgumentTypeError(
            f"{name} must be an absolute loop time as a float (loop.time() based), "
            f"not {type(value).__name__} ({value!r})"
        )
    deadline = float(value)
    if math.isnan(deadline):
        raise InvalidArgumentError(f"{name} must not be NaN")
    return deadline
