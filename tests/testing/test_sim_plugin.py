"""The pytest route into the simulation: the simulation fixture and marker."""

from __future__ import annotations

import pytest


def _project(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\ncorral_mode = auto\n")


def test_a_simulated_test_runs_once_per_seed_and_finds_the_race(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from corral.testing import FaultRule, Simulation

        counter = {"value": 0}

        async def bump(extra_round_trips):
            for _ in range(extra_round_trips):
                await asyncio.sleep(0)
            seen = counter["value"]
            await asyncio.sleep(0)
            counter["value"] = seen + 1

        @pytest.mark.simulation(seeds=range(12))
        async def test_two_bumps(simulation):
            counter["value"] = 0
            async with asyncio.TaskGroup() as group:
                group.create_task(bump(0))
                group.create_task(bump(1))
            assert simulation.statistics().seed is not None
            assert counter["value"] == 2

        async def test_default_seeds(simulation, virtual_clock):
            await asyncio.sleep(5)
            assert virtual_clock.time() == 5.0
            assert isinstance(simulation, Simulation)

        @pytest.mark.simulation(seeds=2, faults=[FaultRule("db.*", raises=KeyError)])
        async def test_faults(simulation):
            import corral
            with pytest.raises(KeyError):
                await corral.fault_point("db.query")
            assert simulation.statistics().faults_raised == 1
        """
    )
    result = pytester.runpytest("-v", "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 10 + 2 + (12 - outcomes["failed"])
    assert 0 < outcomes["failed"] < 12
    result.stdout.fnmatch_lines(["*::test_two_bumps[[]sim-0[]] PASSED*"])
    result.stdout.fnmatch_lines(["*::test_default_seeds[[]sim-9[]] PASSED*"])
    result.stdout.fnmatch_lines(["*::test_faults[[]sim-1[]] PASSED*"])


def test_bad_simulation_markers_are_reported(pytester: pytest.Pytester) -> None:
    _project(pytester)
    header = "import pytest\n\n"
    pytester.makepyfile(
        test_no_seeds=header
        + "@pytest.mark.simulation(seeds=[])\nasync def test_it(simulation):\n    pass\n",
        test_unknown=header
        + "@pytest.mark.simulation(speed=3)\nasync def test_it(simulation):\n    pass\n",
        test_both=header
        + '@pytest.mark.corral_loops("asyncio")\nasync def test_it(simulation):\n    pass\n',
    )
    result = pytester.runpytest()
    for expected in (
        "*simulation(seeds=...) must be a count or a non-empty list of ints, got *",
        "*simulation() got unknown options *speed*; it takes seeds=, jitter= and faults=",
        "*cannot also take corral_loops()",
    ):
        result.stdout.fnmatch_lines([expected])
