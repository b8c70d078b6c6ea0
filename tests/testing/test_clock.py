"""VirtualClock on its own: validation, manual advance, statistics, instrumentation."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from corral._core._hooks import INSTRUMENTS
from corral.errors import ArgumentTypeError, InvalidArgumentError, UsageError
from corral.testing import ClockStatistics, VirtualClock, VirtualClockLoop


def test_starts_where_asked() -> None:
    assert VirtualClock().time() == 0.0
    assert VirtualClock(12.5).time() == 12.5
    assert VirtualClock(-3).time() == -3.0
    assert VirtualClock(timedelta(minutes=2)).time() == 120.0


def test_advance_moves_time_exactly() -> None:
    clock = VirtualClock(100.0)
    clock.advance(2.5)
    clock.advance(timedelta(seconds=1))
    clock.advance(0)
    assert clock.time() == 103.5


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, math.inf])
def test_advance_rejects_backwards_nan_and_infinite(bad: float) -> None:
    clock = VirtualClock()
    with pytest.raises(InvalidArgumentError, match="seconds"):
        clock.advance(bad)
    assert clock.time() == 0.0


@pytest.mark.parametrize("bad", ["1", None, True])
def test_advance_rejects_non_numbers(bad: Any) -> None:
    with pytest.raises(ArgumentTypeError, match="seconds"):
        VirtualClock().advance(bad)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"start": math.nan}, InvalidArgumentError, "start"),
        ({"start": math.inf}, InvalidArgumentError, "start"),
        ({"start": "0"}, ArgumentTypeError, "start"),
        ({"autojump_threshold": -0.5}, InvalidArgumentError, "autojump_threshold"),
        ({"autojump_threshold": math.nan}, InvalidArgumentError, "autojump_threshold"),
        ({"autojump": 1}, ArgumentTypeError, "autojump"),
    ],
)
def test_constructor_names_the_bad_argument(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        VirtualClock(**kwargs)


def test_mode_setters_validate() -> None:
    clock = VirtualClock()
    clock.autojump = False
    clock.autojump_threshold = 0.25
    assert (clock.autojump, clock.autojump_threshold) == (False, 0.25)
    with pytest.raises(ArgumentTypeError, match="autojump"):
        clock.autojump = "yes"  # type: ignore[assignment]
    with pytest.raises(InvalidArgumentError, match="autojump_threshold"):
        clock.autojump_threshold = -1
    assert (clock.autojump, clock.autojump_threshold) == (False, 0.25)


def test_statistics_tell_jumps_from_manual_advances() -> None:
    clock = VirtualClock(10.0)
    clock.advance(4)
    clock._jump(6.0)
    clock._jump(1.5)
    assert clock.statistics() == ClockStatistics(
        now=21.5, jumps=2, total_jumped=7.5, total_advanced=4.0
    )


def test_repr_shows_time_mode_and_history() -> None:
    clock = VirtualClock(5.0)
    clock._jump(2.0)
    assert repr(clock) == ("<VirtualClock now=7 autojump, 1 jumps (2s), 0s advanced by hand>")
    clock.autojump_threshold = 0.1
    assert "autojump after 0.1s real" in repr(clock)
    clock.autojump = False
    clock.advance(3)
    assert repr(clock) == "<VirtualClock now=10 manual, 1 jumps (2s), 3s advanced by hand>"


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[object, str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        self.events.append((source, name, fields))


def test_moves_are_reported_to_instruments() -> None:
    clock = VirtualClock(1.0)
    recorder = _Recorder()
    INSTRUMENTS.add(recorder)
    try:
        clock._jump(2.0)
        clock.advance(0.5)
    finally:
        INSTRUMENTS.remove(recorder)
    clock.advance(1)  # nobody listening any more
    assert recorder.events == [
        (clock, "clock_jump", {"from": 1.0, "to": 3.0, "delta": 2.0, "automatic": True}),
        (clock, "clock_jump", {"from": 3.0, "to": 3.5, "delta": 0.5, "automatic": False}),
    ]


def test_a_clock_drives_one_open_loop_at_a_time() -> None:
    clock = VirtualClock()
    first = VirtualClockLoop(clock)
    try:
        with pytest.raises(UsageError, match="already drives an open event loop"):
            VirtualClockLoop(clock)
    finally:
        first.close()
    second = VirtualClockLoop(clock)  # free again once the first loop closed
    try:
        first.close()  # closing the old loop again must not free the clock from the new one
        with pytest.raises(UsageError):
            VirtualClockLoop(clock)
    finally:
        second.close()
    assert second.clock is clock


def test_loop_rejects_something_else_as_clock() -> None:
    with pytest.raises(ArgumentTypeError, match=r"clock must be a corral\.testing\.VirtualClock"):
        VirtualClockLoop(clock=1.0)  # type: ignore[arg-type]
