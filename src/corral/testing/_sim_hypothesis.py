"""``schedules()``: a hypothesis strategy whose values make a simulation's choices."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ._sim_schedule import ChoiceSource, Schedule

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ("HypothesisChoices", "schedules")


class HypothesisChoices(ChoiceSource):
    """Choices drawn from hypothesis's data as the simulation asks for them.

    Made by :func:`schedules`; hypothesis owns the stream, so when a property fails it
    shrinks the choices towards ``0``, the plain loop's behaviour. Its ``repr`` lists
    the choices that departed from ``0``, as ``(decision number, picked)`` pairs.
    """

    __slots__ = ("_picks", "_random")

    def __init__(self, stream: random.Random) -> None:
        self._random = stream
        self._picks: list[int] = []

    def pick(self, options: int) -> int:
        """An int in ``[0, options)`` drawn from the hypothesis data."""
        picked = self._random.randrange(options)
        self._picks.append(picked)
        return picked

    def finished(self, schedule: Schedule) -> None:
        """Attach the schedule to hypothesis's report of this example, as JSON."""
        from hypothesis import note
        from hypothesis.control import currently_in_test_context

        if currently_in_test_context():
            note(f"simulation schedule (replay with Schedule.from_json): {schedule.to_json()}")

    def __repr__(self) -> str:
        departures = [(index, picked) for index, picked in enumerate(self._picks) if picked]
        return f"<schedule from hypothesis: {len(self._picks)} decisions, departures {departures}>"


def schedules() -> SearchStrategy[HypothesisChoices]:
    """A hypothesis strategy of simulation schedules that shrink.

    Draw one and pass it as ``schedule=`` to :func:`simulate` or :class:`Simulation`:
    each decision of the simulation loop (task order, timer jitter, fault chances) is
    then drawn from hypothesis's data. When a property fails, hypothesis shrinks those
    decisions towards the plain loop's behaviour, so the failure it reports needs as
    few reorderings as it could find, and the report notes that schedule as JSON for
    an exact replay::

        @given(schedule=corral.testing.schedules())
        def test_no_lost_update(schedule):
            assert corral.testing.simulate(transfer, schedule=schedule) == 150

    Needs hypothesis installed (it is imported when this is called).

    Returns:
        A strategy of :class:`ChoiceSource` values, one per example.
    """
    from hypothesis import strategies

    return strategies.randoms(use_true_random=False, note_method_calls=False).map(HypothesisChoices)
