"""``Simulation`` and ``simulate``: run a program under a chosen, recorded schedule."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, TypeVarTuple, Unpack

from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError
from ._clock import VirtualClock
from ._loop import VirtualClockLoop
from ._sim_faults import FaultCounters, FaultInjector, FaultRule, rules_arg
from ._sim_loop import LoopCounters, SimulationLoop
from ._sim_schedule import ChoiceSource, ReplayChoices, Schedule, SeededChoices, seed_arg

__all__ = ("Simulation", "SimulationStatistics", "simulate")

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

#: A failing run's note carries the schedule as JSON up to this length.
_NOTE_LIMIT = 4000


@dataclass(frozen=True, slots=True)
class SimulationStatistics:
    """A snapshot of a :class:`Simulation`.

    Attributes:
        seed: The seed driving the choices, or ``None`` for a replay or another source.
        decisions: Decisions made so far (the length of :attr:`Simulation.schedule`).
        deviations: Decisions that departed from the plain loop's behaviour.
        batches: Ready batches the loop ran.
        callbacks: Callbacks in those batches.
        reordered_batches: Batches that ran in another order than first-in, first-out.
        timers: Timers scheduled (``call_at``, ``call_later``, ``asyncio.sleep``).
        jittered_timers: Timers that were given extra delay.
        faults_raised: Fault points where a rule raised an error.
        faults_delayed: Fault points where a rule made the operation wait.
        fault_hits: Fault points reached while fault rules were installed.
        fired_per_rule: How many times each of the ``faults`` rules fired, in order.
    """

    seed: int | None
    decisions: int
    deviations: int
    batches: int
    callbacks: int
    reordered_batches: int
    timers: int
    jittered_timers: int
    faults_raised: int
    faults_delayed: int
    fault_hits: int
    fired_per_rule: tuple[int, ...]


class Simulation:
    """One run of a program on the simulation loop, with every scheduling choice recorded.

    The simulation loop is a :class:`VirtualClockLoop` (virtual time, autojump) that
    treats each decision the plain loop takes for granted as a choice: the order in
    which the tasks of a ready batch run, and, with ``jitter``, how late each timer
    fires. The choices come from ``seed`` (reproducible: the same seed gives the same
    schedule and the same result), from a recorded :class:`Schedule` (an exact replay)
    or from hypothesis (:func:`schedules`, so a failing schedule shrinks). Each run's
    choices are recorded in :attr:`schedule`.

    A ``Simulation`` runs one program once: call :meth:`run`, or hand
    :meth:`new_loop` to an :class:`asyncio.Runner` yourself.

    The program must be deterministic apart from scheduling: no real time, no global
    ``random``, no real sockets or threads whose timing matters. A replay whose
    program asks different questions raises :class:`~corral.errors.UsageError`.

    Args:
        seed: Drive the choices from ``random.Random(seed)``. The default when neither
            ``seed`` nor ``schedule`` is given is ``0``.
        schedule: A recorded :class:`Schedule` to replay, or a :class:`ChoiceSource`
            (such as a value drawn from :func:`schedules`).
        faults: :class:`FaultRule` s applied at the fault points the program reaches
            (``corral.fault_point(...)`` and corral's own points), while it runs.
        jitter: Most seconds a timer may fire late (``float`` or ``timedelta``);
            ``0`` leaves timers exact.
        trace: Called with one line of text per ready batch and per timer, in order.
        clock: The virtual clock; a fresh autojumping one when omitted.

    Raises:
        ArgumentTypeError: ``seed`` is not an int, ``schedule`` is neither a
            :class:`Schedule` nor a :class:`ChoiceSource`, ``faults`` is not a list of
            :class:`FaultRule`, ``jitter`` is not a number of seconds, or ``trace``
            is not callable.
        InvalidArgumentError: ``jitter`` is negative, NaN or infinite.
        UsageError: both ``seed`` and ``schedule`` are given.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        schedule: Schedule | ChoiceSource | None = None,
        faults: Iterable[FaultRule] = (),
        jitter: Seconds = 0.0,
        trace: Callable[[str], None] | None = None,
        clock: VirtualClock | None = None,
    ) -> None:
        if seed is not None and schedule is not None:
            raise UsageError(
                f"give a seed or a schedule to follow, not both (seed={seed!r}, "
                f"schedule={schedule!r})"
            )
        if isinstance(schedule, Schedule):
            self._source: ChoiceSource = ReplayChoices(schedule)
            self._seed = schedule.seed
        elif isinstance(schedule, ChoiceSource):
            self._source = schedule
            self._seed = None
        elif schedule is None:
            self._seed = 0 if seed is None else seed_arg(seed, "seed")
            self._source = SeededChoices(self._seed)
        else:
            raise ArgumentTypeError(
                "schedule must be a corral.testing.Schedule or ChoiceSource, "
                f"not {type(schedule).__name__} ({schedule!r})"
            )
        self._rules = rules_arg(faults)
        self._jitter = _jitter_arg(jitter)
        if trace is not None and not callable(trace):
            raise ArgumentTypeError(
                f"trace must be callable with a line of text, not {type(trace).__name__}"
            )
        self._trace = trace
        self._clock = clock
        self._choices: list[tuple[int, int]] = []
        self._loop: SimulationLoop | None = None
        self._counters = LoopCounters()
        self._faults = FaultCounters()
        self._uninstall: Callable[[], None] | None = None
        self._state = "ready"
        self._broken: BaseException | None = None

    @property
    def schedule(self) -> Schedule:
        """The choices made so far, as a :class:`Schedule` that replays them."""
        return Schedule(tuple(self._choices), self._seed)

    def new_loop(self) -> VirtualClockLoop:
        """Create the simulation's event loop (once), e.g. as an ``asyncio.Runner`` factory.

        Closing the loop raises :class:`~corral.errors.UsageError` if a replayed
        schedule diverged from the run, or whatever else the schedule's source raised
        (the run itself went on with plain choices).

        Raises:
            UsageError: this simulation already made its loop.
        """
        if self._loop is not None:
            raise UsageError(f"{self!r} already ran; a Simulation runs one program once")
        loop = SimulationLoop(
            self._decide,
            jitter=self._jitter,
            trace=self._trace,
            on_close=self._finished,
            clock=self._clock,
        )
        if self._rules:
            injector = FaultInjector(self._rules, self._decide, self._trace)
            try:
                self._uninstall = injector.install(loop)
            except BaseException:
                loop.close()
                raise
            self._faults = injector.counters
        self._loop = loop
        self._counters = loop.counters
        self._state = "running"
        return loop

    def run(self, main: Callable[[Unpack[_Ts]], Coroutine[Any, Any, _T]], *args: *_Ts) -> _T:
        """Run ``main(*args)`` on the simulation loop, like :func:`corral.testing.run`.

        Returns:
            What ``main`` returned.

        Raises:
            ArgumentTypeError: ``main`` is a coroutine object or not an async function.
            UsageError: the simulation already ran, a replay diverged, or a loop is
                already running in this thread.
            BaseException: whatever ``main`` raised, with a note giving the schedule to
                replay the failure with.
        """
        passed: object = main
        if inspect.iscoroutine(passed):
            passed.close()
            raise ArgumentTypeError(
                "run() takes the async function and its arguments, not a coroutine object: "
                "write run(main, arg) instead of run(main(arg))"
            )
        if not callable(main):
            raise ArgumentTypeError(
                f"main must be an async function, not {type(main).__name__} ({main!r})"
            )
        if self._loop is not None:
            raise UsageError(f"{self!r} already ran; a Simulation runs one program once")
        _check_no_running_loop()
        try:
            with asyncio.Runner(loop_factory=self.new_loop) as runner:
                return runner.run(_call(main, *args))
        except Exception as error:
            error.add_note(self._replay_note())
            raise

    def statistics(self) -> SimulationStatistics:
        """A frozen snapshot of what the simulation decided and did."""
        counters = self._counters
        return SimulationStatistics(
            seed=self._seed,
            decisions=len(self._choices),
            deviations=sum(1 for _, picked in self._choices if picked),
            batches=counters.batches,
            callbacks=counters.callbacks,
            reordered_batches=counters.reordered_batches,
            timers=counters.timers,
            jittered_timers=counters.jittered_timers,
            faults_raised=self._faults.raised,
            faults_delayed=self._faults.delayed,
            fault_hits=self._faults.hits,
            fired_per_rule=tuple(self._faults.per_rule),
        )

    def __repr__(self) -> str:
        source = (
            f"seed={self._seed}"
            if isinstance(self._source, SeededChoices)
            else (f"{self._source!r}")
        )
        return (
            f"<Simulation {self._state} {source}, {len(self._choices)} decisions, "
            f"{self._counters.reordered_batches}/{self._counters.batches} batches reordered>"
        )

    # -- used by the loop ------------------------------------------------------------------

    def _decide(self, options: int) -> int:
        # A source that fails does not stop the loop mid-batch (tasks would be lost):
        # the run goes on with plain choices and closing the loop raises the error.
        if self._broken is not None:
            return 0
        try:
            picked = self._source.pick(options)
        except BaseException as error:  # a diverged replay, hypothesis ending the example
            self._broken = error
            return 0
        if not isinstance(picked, int) or not 0 <= picked < options:
            self._broken = UsageError(
                f"{self._source!r}.pick({options}) returned {picked!r}, not an int in "
                f"[0, {options})"
            )
            return 0
        self._choices.append((options, picked))
        return picked

    def _finished(self) -> None:
        self._state = "finished"
        uninstall, self._uninstall = self._uninstall, None
        if uninstall is not None:
            uninstall()
        self._source.finished(self.schedule)
        if self._broken is not None:
            raise self._broken

    def _replay_note(self) -> str:
        if isinstance(self._source, SeededChoices):
            return f"simulation schedule: seed={self._seed} ({len(self._choices)} decisions)"
        schedule = self.schedule
        text = schedule.to_json()
        if len(text) > _NOTE_LIMIT:
            return f"simulation schedule: {schedule!r}; save Simulation.schedule to replay it"
        return f"simulation schedule (replay with Schedule.from_json): {text}"


def simulate(
    main: Callable[[Unpack[_Ts]], Coroutine[Any, Any, _T]],
    *args: *_Ts,
    seed: int | None = None,
    schedule: Schedule | ChoiceSource | None = None,
    faults: Iterable[FaultRule] = (),
    jitter: Seconds = 0.0,
) -> _T:
    """Run ``main(*args)`` once on the simulation loop and return its result.

    Shorthand for ``Simulation(seed=..., ...).run(main, *args)``; use
    :class:`Simulation` when you want the recorded schedule or statistics back. A
    failure carries a note with the seed or schedule that replays it.

    Cancellation: as for :func:`corral.testing.run`: tasks ``main`` leaves behind are
    cancelled when it returns.

    Raises:
        ArgumentTypeError, InvalidArgumentError, UsageError: see :class:`Simulation`.
        BaseException: whatever ``main`` raised.
    """
    return Simulation(seed=seed, schedule=schedule, faults=faults, jitter=jitter).run(main, *args)


async def _call(main: Callable[[Unpack[_Ts]], Coroutine[Any, Any, _T]], *args: *_Ts) -> _T:
    coro = main(*args)
    made: object = coro
    if not inspect.iscoroutine(made):
        raise ArgumentTypeError(
            f"main must be an async function returning a coroutine; {main!r} "
            f"returned {type(coro).__name__} ({coro!r})"
        )
    return await coro


def _check_no_running_loop() -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(
        f"a Simulation cannot run while an event loop is running ({running!r}); "
        "run it from synchronous code"
    )


def _jitter_arg(value: object) -> float:
    seconds = seconds_arg(value, "jitter")
    if math.isinf(seconds):
        raise InvalidArgumentError(f"jitter must be finite, got {seconds!r}")
    return seconds
