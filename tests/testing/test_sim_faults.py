"""Fault rules in the simulation: raise or delay at fault points, by nth hit, limit, chance."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import corral
from corral._core._faults import FAULTS
from corral.errors import ArgumentTypeError, InvalidArgumentError, UsageError
from corral.testing import FaultRule, Schedule, Simulation, simulate
from corral.testing._sim_faults import PROBABILITY_STEPS


async def calls(point: str, count: int) -> list[str]:
    """Reach ``point`` ``count`` times; record what happened at each."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    for _ in range(count):
        started = loop.time()
        try:
            await corral.fault_point(point)
        except ConnectionError as error:
            seen.append(f"raised {error}")
        else:
            waited = loop.time() - started
            seen.append(f"waited {waited:g}" if waited else "ok")
    return seen


def test_a_rule_raises_at_every_matching_point() -> None:
    rules = [FaultRule("db.*", raises=ConnectionError)]
    assert simulate(calls, "db.query", 2, faults=rules) == [
        "raised injected fault at 'db.query'",
        "raised injected fault at 'db.query'",
    ]
    assert simulate(calls, "cache.get", 2, faults=rules) == ["ok", "ok"]


def test_a_delay_rule_waits_on_virtual_time() -> None:
    rules = [FaultRule("channel.send", delay=timedelta(seconds=2.5))]
    assert simulate(calls, "channel.send", 2, faults=rules) == ["waited 2.5", "waited 2.5"]


def test_nth_fires_once_at_that_hit() -> None:
    rules = [FaultRule("db.query", raises=ConnectionError, nth=3)]
    simulation = Simulation(faults=rules)
    assert simulation.run(calls, "db.query", 5) == [
        "ok",
        "ok",
        "raised injected fault at 'db.query'",
        "ok",
        "ok",
    ]
    stats = simulation.statistics()
    assert (stats.fault_hits, stats.faults_raised, stats.faults_delayed) == (5, 1, 0)
    assert stats.fired_per_rule == (1,)


def test_limit_caps_how_often_a_rule_fires_and_the_next_rule_takes_over() -> None:
    rules = [
        FaultRule("db.query", raises=ConnectionError, limit=2),
        FaultRule("db.*", delay=1),
    ]
    simulation = Simulation(faults=rules)
    assert simulation.run(calls, "db.query", 4) == [
        "raised injected fault at 'db.query'",
        "raised injected fault at 'db.query'",
        "waited 1",
        "waited 1",
    ]
    assert simulation.statistics().fired_per_rule == (2, 2)


def test_probability_is_decided_by_the_seed_and_replays() -> None:
    rules = [FaultRule("db.query", raises=ConnectionError, probability=0.3)]
    outcomes = []
    for seed in range(10):
        simulation = Simulation(seed=seed, faults=rules)
        seen = simulation.run(calls, "db.query", 100)
        assert simulate(calls, "db.query", 100, seed=seed, faults=rules) == seen
        replay = Simulation(schedule=simulation.schedule, faults=rules)
        assert replay.run(calls, "db.query", 100) == seen
        assert simulation.schedule.choices[0][0] == PROBABILITY_STEPS
        outcomes.append(sum(item.startswith("raised") for item in seen))
    assert all(10 <= raised <= 50 for raised in outcomes)
    assert len(set(outcomes)) > 1


def test_probability_zero_never_fires_and_asks_nothing() -> None:
    simulation = Simulation(faults=[FaultRule("db.query", raises=ConnectionError, probability=0)])
    assert simulation.run(calls, "db.query", 3) == ["ok", "ok", "ok"]
    assert simulation.schedule == Schedule((), 0)


def test_the_no_fault_choice_is_option_zero() -> None:
    rules = [FaultRule("db.query", raises=ConnectionError, probability=0.999)]
    never = Schedule(((PROBABILITY_STEPS, 0),))
    assert simulate(calls, "db.query", 1, schedule=never, faults=rules) == ["ok"]


def test_a_factory_builds_the_error() -> None:
    def refused(message: str) -> ConnectionError:
        return ConnectionRefusedError(111, message)

    async def main() -> None:
        await corral.fault_point("socket.connect")

    with pytest.raises(ConnectionRefusedError) as caught:
        simulate(main, faults=[FaultRule("socket.*", raises=refused)])
    assert caught.value.args == (111, "injected fault at 'socket.connect'")


def test_a_factory_that_makes_no_exception_is_reported() -> None:
    async def main() -> None:
        await corral.fault_point("db.query")

    with pytest.raises(UsageError, match="raises= made str"):
        simulate(main, faults=[FaultRule("db.query", raises=str)])  # type: ignore[arg-type]


def test_the_injector_is_removed_after_the_run() -> None:
    async def main() -> None:
        assert FAULTS.active
        await corral.fault_point("db.query")

    with pytest.raises(ConnectionError):
        simulate(main, faults=[FaultRule("db.query", raises=ConnectionError)])
    assert not FAULTS.active
    simulate(main, faults=[FaultRule("db.query", delay=1)])
    assert not FAULTS.active


def test_points_on_another_loop_are_left_alone() -> None:
    async def elsewhere() -> str:
        await corral.fault_point("db.query")
        return "ok"

    async def main() -> str:
        # A thread with its own loop reaches the same point while the simulation runs.
        return await asyncio.to_thread(asyncio.run, elsewhere())

    rules = [FaultRule("db.query", raises=ConnectionError)]
    assert simulate(main, faults=rules) == "ok"


def test_two_simulations_with_faults_cannot_overlap() -> None:
    rules = [FaultRule("db.query", raises=ConnectionError)]
    first = Simulation(faults=rules)
    with asyncio.Runner(loop_factory=first.new_loop):
        with pytest.raises(UsageError, match="one simulation at a time"):
            Simulation(faults=rules).new_loop()
    assert not FAULTS.active


def test_repr_shows_the_rule() -> None:
    assert repr(FaultRule("db.*", raises=ConnectionError, probability=0.5, nth=2, limit=1)) == (
        "FaultRule('db.*', raises=ConnectionError, probability=0.5, nth=2, limit=1)"
    )
    assert repr(FaultRule("channel.send", delay=0.25)) == "FaultRule('channel.send', delay=0.25)"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"point": ""}, ArgumentTypeError, "point must be a non-empty"),
        ({"point": "x"}, InvalidArgumentError, "exactly one of raises= and delay="),
        (
            {"point": "x", "raises": ValueError, "delay": 1},
            InvalidArgumentError,
            "exactly one of",
        ),
        ({"point": "x", "raises": "boom"}, ArgumentTypeError, "raises must be an exception"),
        ({"point": "x", "delay": -1}, InvalidArgumentError, "delay must not be negative"),
        ({"point": "x", "delay": float("inf")}, InvalidArgumentError, "delay must be finite"),
        (
            {"point": "x", "delay": 1, "probability": "1"},
            ArgumentTypeError,
            "probability must be a number",
        ),
        (
            {"point": "x", "delay": 1, "probability": 1.5},
            InvalidArgumentError,
            r"probability must be in \[0, 1\], got 1.5",
        ),
        ({"point": "x", "delay": 1, "nth": 0}, InvalidArgumentError, "nth must be at least 1"),
        ({"point": "x", "delay": 1, "limit": 2.0}, ArgumentTypeError, "limit must be an int"),
    ],
)
def test_bad_rules_are_refused(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        FaultRule(**kwargs)  # type: ignore[arg-type]


def test_faults_must_be_a_list_of_rules() -> None:
    rule = FaultRule("x", delay=1)
    with pytest.raises(ArgumentTypeError, match="faults must be a list"):
        Simulation(faults=rule)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"faults\[1\] must be a corral.testing.FaultRule"):
        Simulation(faults=[rule, "db.*"])  # type: ignore[list-item]
