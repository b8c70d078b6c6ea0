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
from ._run import run as run
from ._sequencer import Sequencer as Sequencer
from ._sequencer import SequencerStatistics as SequencerStatistics
from ._services import require_service as require_service
from ._services import service_url as service_url

__all__ = (
    "ClockStatistics",
    "Sequencer",
    "SequencerStatistics",
    "VirtualClock",
    "VirtualClockLoop",
    "require_service",
    "run",
    "service_url",
    "wait_all_tasks_blocked",
)
