"""The simulation loop: seeded batch reordering, recorded schedules, exact replay."""

from __future__ import annotations

import asyncio
import collections
import sys

import pytest

from corral.errors import ArgumentTypeError, InvalidArgumentError, UsageError
from corral.testing import (
    ChoiceSource,
    Schedule,
    SeededChoices,
    Simulation,
    VirtualClock,
    simulate,
    wait_all_tasks_blocked,
)
from corral.testing._sim_loop import JITTER_STEPS, SimulationLoop


async def interleaving(tasks: int = 3, steps: int = 3) -> str:
    """Tasks append their name at each step; the result shows the interleaving."""
    log: list[str] = []

    async def worker(name: str) -> None:
        for step in range(steps):
            log.append(f"{name}{step}")
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as group:
        for name in "abcdefgh"[:tasks]:
            group.create_task(worker(name))
    return " ".join(log)


class AlwaysFirst(ChoiceSource):
    def pick(self, options: int) -> int:
        return 0


class AlwaysLast(ChoiceSource):
    def pick(self, options: int) -> int:
        return options - 1


def test_the_ready_queue_is_still_a_deque_that_run_once_pops() -> None:
    # The simulator replaces BaseEventLoop._ready; if asyncio renames or retypes it,
    # or stops popping batches from its left end, this fails loudly.
    plain = asyncio.SelectorEventLoop()
    try:
        assert type(plain._ready) is collections.deque  # type: ignore[attr-defined]
    finally:
        plain.close()
    popped: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for index in range(4):
            loop.call_soon(popped.append, index)
        await asyncio.sleep(0)

    simulation = Simulation(schedule=AlwaysLast())
    simulation.run(main)
    # All four plain callbacks share one lane, so they keep FIFO order; the task's
    # wake-up was moved ahead of them, which only the batch reordering can do.
    assert popped == [0, 1, 2, 3]
    assert simulation.statistics().reordered_batches >= 1


def test_the_same_seed_gives_the_same_schedule_and_result() -> None:
    first = Simulation(seed=42)
    second = Simulation(seed=42)
    assert first.run(interleaving) == second.run(interleaving)
    assert first.schedule == second.schedule
    assert first.schedule.seed == 42
    assert len(first.schedule.choices) > 0


def test_different_seeds_give_different_interleavings() -> None:
    results = {simulate(interleaving, seed=seed) for seed in range(20)}
    assert len(results) > 5


def test_choosing_zero_everywhere_is_the_plain_loop() -> None:
    plain = asyncio.run(interleaving())
    assert plain == "a0 b0 c0 a1 b1 c1 a2 b2 c2"
    simulation = Simulation(schedule=AlwaysFirst())
    assert simulation.run(interleaving) == plain
    stats = simulation.statistics()
    assert stats.deviations == 0
    assert stats.reordered_batches == 0
    assert stats.decisions == len(simulation.schedule.choices) > 0


def test_a_task_keeps_its_own_order_and_plain_callbacks_stay_fifo() -> None:
    async def main() -> list[str]:
        order: list[str] = []
        loop = asyncio.get_running_loop()

        async def worker(name: str) -> None:
            for step in range(5):
                order.append(f"{name}{step}")
                await asyncio.sleep(0)

        for index in range(5):
            loop.call_soon(order.append, f"cb{index}")
        async with asyncio.TaskGroup() as group:
            group.create_task(worker("a"))
            group.create_task(worker("b"))
        return order

    for seed in range(20):
        order = simulate(main, seed=seed)
        for prefix in ("a", "b", "cb"):
            mine = [item for item in order if item.rstrip("0123456789") == prefix]
            assert mine == sorted(mine)
            assert len(mine) == 5


def test_a_schedule_replays_exactly_through_json() -> None:
    for seed in range(10):
        original = Simulation(seed=seed, jitter=0.5)
        result = original.run(interleaving, 4, 4)
        saved = original.schedule.to_json()
        replay = Simulation(schedule=Schedule.from_json(saved), jitter=0.5)
        assert replay.run(interleaving, 4, 4) == result
        assert replay.schedule == original.schedule


def test_a_replay_of_another_program_diverges_loudly() -> None:
    recorded = Simulation(seed=3)
    recorded.run(interleaving, 3, 3)
    with pytest.raises(UsageError, match="replay diverged") as caught:
        simulate(interleaving, 4, 6, schedule=recorded.schedule)
    assert any("simulation schedule" in note for note in caught.value.__notes__)


def test_a_replay_that_runs_out_of_choices_diverges() -> None:
    with pytest.raises(UsageError, match="records only 1"):
        simulate(interleaving, schedule=Schedule(((3, 1),)))


def test_a_failure_carries_its_seed() -> None:
    async def main() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError) as caught:
        simulate(main, seed=7)
    assert caught.value.__notes__ == ["simulation schedule: seed=7 (0 decisions)"]


def test_a_failure_from_another_source_carries_the_schedule_json() -> None:
    async def main() -> None:
        await interleaving(2, 2)
        raise KeyError("boom")

    simulation = Simulation(schedule=AlwaysLast())
    with pytest.raises(KeyError) as caught:
        simulation.run(main)
    (note,) = caught.value.__notes__
    saved = note.removeprefix("simulation schedule (replay with Schedule.from_json): ")
    assert Schedule.from_json(saved) == simulation.schedule


def test_jitter_delays_timers_within_the_bound_reproducibly() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        woke = []
        for _ in range(20):
            await asyncio.sleep(1)
            woke.append(loop.time())
        return woke

    simulation = Simulation(seed=5, jitter=0.25)
    woke = simulation.run(main)
    gaps = [later - earlier for earlier, later in zip([0.0, *woke], woke, strict=False)]
    assert all(1.0 <= gap <= 1.25 for gap in gaps)
    assert len(set(gaps)) > 3
    assert simulate(main, seed=5, jitter=0.25) == woke
    stats = simulation.statistics()
    assert stats.timers >= 20
    assert 0 < stats.jittered_timers <= stats.timers
    assert all(options == JITTER_STEPS + 1 for options, _ in simulation.schedule.choices)


def test_no_jitter_keeps_timers_exact() -> None:
    async def main() -> float:
        await asyncio.sleep(3)
        return asyncio.get_running_loop().time()

    simulation = Simulation(seed=5)
    assert simulation.run(main) == 3.0
    assert simulation.statistics().jittered_timers == 0


def test_trace_reports_batches_and_timers() -> None:
    lines: list[str] = []

    async def main() -> None:
        await asyncio.sleep(2)

    simulation = Simulation(schedule=AlwaysFirst(), trace=lines.append)
    simulation.run(main)
    assert lines[0].startswith("t=0 run step Task-")
    assert lines[1] == "t=0 timer set for t=2: _set_result_unless_cancelled"
    assert lines[2] == "t=2 run _set_result_unless_cancelled"
    assert lines[3].startswith("t=2 run wake Task-")


def test_statistics_and_repr() -> None:
    simulation = Simulation(seed=11)
    assert repr(simulation) == "<Simulation ready seed=11, 0 decisions, 0/0 batches reordered>"
    simulation.run(interleaving)
    stats = simulation.statistics()
    assert stats.seed == 11
    assert stats.decisions == len(simulation.schedule.choices)
    assert stats.deviations == simulation.schedule.deviations
    assert stats.callbacks >= 9
    assert stats.batches >= 3
    assert repr(simulation) == (
        f"<Simulation finished seed=11, {stats.decisions} decisions, "
        f"{stats.reordered_batches}/{stats.batches} batches reordered>"
    )
    assert repr(SeededChoices(4)) == "<SeededChoices seed=4>"
    assert repr(Schedule(((2, 1), (3, 0)), 9)) == "<Schedule seed=9 2 choices, 1 deviations>"


def test_a_simulation_runs_once() -> None:
    simulation = Simulation()
    assert simulation.run(interleaving, 1, 1) == "a0"
    with pytest.raises(UsageError, match="runs one program once"):
        simulation.run(interleaving)
    with pytest.raises(UsageError, match="runs one program once"):
        simulation.new_loop()


def test_new_loop_serves_a_runner_and_reads_the_given_clock() -> None:
    clock = VirtualClock(start=100.0)
    simulation = Simulation(seed=1, clock=clock)
    with asyncio.Runner(loop_factory=simulation.new_loop) as runner:
        assert isinstance(runner.get_loop(), SimulationLoop)
        assert runner.run(interleaving(2, 2)) in {"a0 b0 a1 b1", "b0 a0 a1 b1", "a0 b0 b1 a1"}
        runner.run(asyncio.sleep(5))
        assert clock.time() == 105.0
    assert repr(simulation).startswith("<Simulation finished")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(UsageError, match="not both"):
        Simulation(seed=1, schedule=Schedule(()))
    with pytest.raises(ArgumentTypeError, match="seed must be an int"):
        Simulation(seed="1")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="schedule must be"):
        Simulation(schedule=[(2, 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="jitter must not be negative"):
        Simulation(jitter=-1)
    with pytest.raises(InvalidArgumentError, match="jitter must be finite"):
        Simulation(jitter=float("inf"))
    with pytest.raises(ArgumentTypeError, match="trace must be callable"):
        Simulation(trace="print")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="not a coroutine object"):
        Simulation().run(interleaving())  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="main must be an async function"):
        Simulation().run(42)  # type: ignore[arg-type]


def test_a_source_that_picks_out_of_range_is_refused() -> None:
    class Broken(ChoiceSource):
        def pick(self, options: int) -> int:
            return options

    with pytest.raises(UsageError, match=r"returned 3, not an int in \[0, 3\)"):
        simulate(interleaving, schedule=Broken())


def test_cannot_run_inside_a_running_loop() -> None:
    async def outer() -> None:
        simulate(interleaving)

    with pytest.raises(UsageError, match="cannot run while an event loop is running"):
        asyncio.run(outer())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "text is not JSON"),
        ('{"format": "other"}', "not a corral schedule"),
        ('{"format": "corral.schedule/1", "choices": 3}', "list of"),
        ('{"format": "corral.schedule/1", "choices": [[1, 0]]}', "options must be at least 2"),
        ('{"format": "corral.schedule/1", "choices": [[3, 3]]}', "picked in"),
        ('{"format": "corral.schedule/1", "choices": [["3", 1]]}', "two ints"),
        ('{"format": "corral.schedule/1", "choices": [], "seed": "x"}', "seed must be an int"),
    ],
)
def test_schedule_from_json_refuses_bad_documents(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Schedule.from_json(text)


def test_schedule_checks_its_fields() -> None:
    with pytest.raises(ArgumentTypeError, match="text must be a JSON string"):
        Schedule.from_json(b"{}")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="choices must be a tuple"):
        Schedule([(2, 1)])  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"choices\[0\] must be an \(options, picked\)"):
        Schedule(((2, 1, 0),))  # type: ignore[arg-type]
    schedule = Schedule(((2, 1), (5, 0), (101, 37)), seed=3)
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert schedule.deviations == 2


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks need Python 3.12+")
def test_eager_tasks_are_simulated_too() -> None:
    async def main() -> str:
        if sys.version_info >= (3, 12):
            asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        return await interleaving()

    assert len({simulate(main, seed=seed) for seed in range(10)}) > 2


def test_wait_all_tasks_blocked_sees_quiescence_under_every_schedule() -> None:
    async def main() -> list[str]:
        progress: list[str] = []
        gate = asyncio.Event()

        async def worker(name: str, steps: int) -> None:
            for step in range(steps):
                progress.append(f"{name}{step}")
                await asyncio.sleep(0)
            await gate.wait()

        async with asyncio.TaskGroup() as group:
            for name, steps in (("a", 3), ("b", 1), ("c", 4)):
                group.create_task(worker(name, steps))
            await wait_all_tasks_blocked()
            seen = list(progress)
            gate.set()
        return seen

    orders = set()
    for seed in range(15):
        seen = simulate(main, seed=seed)
        assert sorted(seen) == ["a0", "a1", "a2", "b0", "c0", "c1", "c2", "c3"]
        orders.add(tuple(seen))
    assert len(orders) > 1


def test_a_source_that_stops_the_run_lets_every_task_finish_first() -> None:
    class Stop(BaseException):
        pass

    class StopsAtSecond(ChoiceSource):
        def __init__(self) -> None:
            self.asked = 0

        def pick(self, options: int) -> int:
            self.asked += 1
            if self.asked == 2:
                raise Stop
            return 0

    finished: list[str] = []

    async def main() -> None:
        await interleaving()
        finished.append("main")

    source = StopsAtSecond()
    with pytest.raises(Stop):
        simulate(main, schedule=source)
    assert finished == ["main"]
    assert source.asked == 2
