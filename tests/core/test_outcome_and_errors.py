"""Outcome records and the error tree (AggregateError in particular)."""

from __future__ import annotations

import pytest

import corral
from corral import AggregateError, Fulfilled, Outcome, Rejected
from corral.errors import (
    ArgumentTypeError,
    BrokenResourceError,
    ClosedResourceError,
    CorralError,
    DeadlineExceeded,
    InvalidArgumentError,
    UsageError,
    WouldBlock,
)


def test_outcomes_match_and_unwrap() -> None:
    error = KeyError("k")
    outcomes: list[Outcome[int]] = [Fulfilled(1), Rejected(error)]
    seen = []
    for outcome in outcomes:
        match outcome:
            case Fulfilled(value):
                seen.append(("ok", value))
            case Rejected(exc):
                seen.append(("err", exc))
    assert seen == [("ok", 1), ("err", error)]
    assert Fulfilled(1) == Fulfilled(1)
    assert Fulfilled(1) != Fulfilled(2)
    assert Rejected(error) == Rejected(error)
    assert Rejected(error) != Rejected(KeyError("k"))
    assert hash(Fulfilled(1)) == hash(Fulfilled(1))
    assert repr(Rejected(error)) == "Rejected(KeyError('k'))"
    with pytest.raises(KeyError):
        Rejected(error).unwrap()


def test_builtin_meanings_are_kept() -> None:
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(ArgumentTypeError, TypeError)
    assert issubclass(UsageError, RuntimeError)
    assert issubclass(DeadlineExceeded, TimeoutError)
    for cls in (
        InvalidArgumentError,
        ArgumentTypeError,
        UsageError,
        DeadlineExceeded,
        WouldBlock,
        ClosedResourceError,
        BrokenResourceError,
        AggregateError,
    ):
        assert issubclass(cls, CorralError)


def test_aggregate_error_with_errors_is_an_exception_group() -> None:
    errors = [ValueError(1), KeyError(2)]
    error = AggregateError("all failed", errors)
    assert isinstance(error, ExceptionGroup)
    assert isinstance(error, AggregateError)
    assert error.exceptions == tuple(errors)
    assert error.message == "all failed"
    assert str(error) == "all failed (2 errors)"


def test_aggregate_error_splits_with_except_star() -> None:
    caught: dict[str, object] = {}
    try:
        raise AggregateError("m", [ValueError(1), KeyError(2)])
    except* ValueError as group:
        caught["value"] = group
    except* KeyError as group:
        caught["key"] = group
    assert isinstance(caught["value"], AggregateError)
    assert isinstance(caught["key"], AggregateError)


def test_aggregate_error_refuses_base_exceptions() -> None:
    import asyncio

    with pytest.raises(ArgumentTypeError, match="error 1 is CancelledError"):
        AggregateError("m", [ValueError(1), asyncio.CancelledError()])


def test_empty_aggregate_error() -> None:
    error = AggregateError("nothing", [])
    assert not isinstance(error, ExceptionGroup)
    assert error.exceptions == ()
    assert str(error) == "nothing (0 errors)"
    with pytest.raises(AggregateError):
        raise error


def test_corral_reexports_the_main_errors() -> None:
    assert corral.AggregateError is AggregateError
    assert corral.CorralError is CorralError
