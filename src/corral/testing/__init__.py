"""Testing asyncio code on virtual time.

:class:`VirtualClockLoop` is an asyncio event loop whose clock (a
:class:`VirtualClock`) jumps straight to the next timer once every task is waiting, so
a test of a 30-second timeout takes microseconds and gives the same answer every run.
:func:`run` is ``asyncio.run`` on that loop; :func:`wait_all_tasks_blocked` waits until
the other tasks have nothing left to do; :class:`Sequencer` forces an interleaving.

The pytest plugin (loaded automatically) runs ``async def`` tests on asyncio, uvloop
and the virtual-clock loop; see ``corral.testing._pytest_plugin`` and the testing guide.
"""

from ._clock import ClockStatistics as ClockStatistics
from ._clock import VirtualClock as VirtualClock
from ._loop import VirtualClockLoop as VirtualClockLoop
from ._quiescence import wait_all_tasks_blocked as wait_all_tasks_blocked
from ._retry_mode import retry_without_waits as retry_without_waits
from ._run import run as run
from ._sequencer import Sequencer as Sequencer
from ._sequencer import SequencerStatistics as SequencerStatistics
from ._services import require_service as require_service
from ._services import service_url as service_url
from ._sim import Simulation as Simulation
from ._sim import SimulationStatistics as SimulationStatistics
from ._sim import simulate as simulate
from ._sim_faults import FaultRule as FaultRule
from ._sim_hypothesis import schedules as schedules
from ._sim_schedule import ChoiceSource as ChoiceSource
from ._sim_schedule import Schedule as Schedule
from ._sim_schedule import SeededChoices as SeededChoices

__all__ = (
    "ChoiceSource",
    "ClockStatistics",
    "FaultRule",
    "Schedule",
    "SeededChoices",
    "Sequencer",
    "SequencerStatistics",
    "Simulation",
    "SimulationStatistics",
    "VirtualClock",
    "VirtualClockLoop",
    "require_service",
    "retry_without_waits",
    "run",
    "schedules",
    "service_url",
    "simulate",
    "wait_all_tasks_blocked",
)
