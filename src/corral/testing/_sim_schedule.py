"""Schedules: the choices a simulation made, where they come from, and how to replay them."""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..errors import ArgumentTypeError, InvalidArgumentError, UsageError

__all__ = ("ChoiceSource", "Schedule", "SeededChoices")

_FORMAT = "corral.schedule/1"


class ChoiceSource(ABC):
    """Where a simulation gets its decisions from.

    Every decision the simulation loop makes (which ready task runs next, how much
    jitter a timer gets, whether a fault rule fires) is "pick one of ``n`` options".
    Option ``0`` is always the plain, unperturbed behaviour: the ready queue's own FIFO
    order, no jitter, no fault. A source that always answers ``0`` therefore runs the
    program exactly as the plain virtual-clock loop would.

    corral ships three sources: :class:`SeededChoices` (a seeded random stream), a
    recorded :class:`Schedule` (replays its choices) and the values drawn from
    :func:`schedules` (hypothesis picks, so a failing schedule shrinks). Subclass it to
    explore schedules your own way.
    """

    @abstractmethod
    def pick(self, options: int) -> int:
        """Choose one of ``options`` (at least 2) possibilities: an int in ``[0, options)``."""

    def finished(self, schedule: Schedule) -> None:  # noqa: B027 - an optional hook
        """Called once the simulation's loop closed, with every choice it made.

        Does nothing by default; the hypothesis source reports the schedule with the
        failing example.
        """


class SeededChoices(ChoiceSource):
    """Choices drawn from :class:`random.Random` seeded with ``seed``: reproducible.

    Args:
        seed: Any int; the same seed gives the same choices.

    Raises:
        ArgumentTypeError: ``seed`` is not an int.
    """

    __slots__ = ("_random", "seed")

    def __init__(self, seed: int) -> None:
        self.seed = seed_arg(seed, "seed")
        self._random = random.Random(seed)

    def pick(self, options: int) -> int:
        """A uniformly random int in ``[0, options)`` from the seeded stream."""
        return self._random.randrange(options)

    def __repr__(self) -> str:
        return f"<SeededChoices seed={self.seed}>"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The decisions one simulation run made, in order; replaying them repeats the run.

    A schedule is a sequence of ``(options, picked)`` pairs, one per decision the loop
    had to make (decisions with a single option are not recorded). Pass it back as
    ``schedule=`` to :func:`simulate` (with the same program, faults and jitter) to
    rerun exactly the same interleaving; save it with :meth:`to_json`.

    Attributes:
        choices: The ``(options, picked)`` pairs, in the order the loop made them.
        seed: The seed the run was driven by, or ``None`` when the choices came from
            another source (a replay, hypothesis).
    """

    choices: tuple[tuple[int, int], ...]
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.seed is not None:
            seed_arg(self.seed, "seed")
        if not isinstance(self.choices, tuple):
            raise ArgumentTypeError(
                f"choices must be a tuple of (options, picked) pairs, "
                f"not {type(self.choices).__name__}"
            )
        for index, choice in enumerate(self.choices):
            _check_choice(choice, index)

    @property
    def deviations(self) -> int:
        """How many choices departed from the plain behaviour (picked something but 0)."""
        return sum(1 for _, picked in self.choices if picked)

    def to_json(self) -> str:
        """The schedule as a compact JSON document, for :meth:`from_json`."""
        return json.dumps(
            {"format": _FORMAT, "seed": self.seed, "choices": [list(c) for c in self.choices]},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        """Read a schedule written by :meth:`to_json`.

        Raises:
            ArgumentTypeError: ``text`` is not a string.
            InvalidArgumentError: ``text`` is not such a document (the message says why).
        """
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text must be a JSON string, not {type(text).__name__}")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidArgumentError(f"text is not JSON ({error}): {text[:80]!r}") from None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise InvalidArgumentError(
                f"text is not a corral schedule (expected format {_FORMAT!r}): {text[:80]!r}"
            )
        raw = document.get("choices")
        if not isinstance(raw, list) or not all(
            isinstance(pair, list) and len(pair) == 2 for pair in raw
        ):
            raise InvalidArgumentError(
                f"text's choices must be a list of [options, picked] pairs, got {raw!r:.80}"
            )
        try:
            return cls(tuple((pair[0], pair[1]) for pair in raw), document.get("seed"))
        except (ArgumentTypeError, InvalidArgumentError) as error:
            raise InvalidArgumentError(f"text holds a bad schedule: {error}") from None

    def __repr__(self) -> str:
        seed = "" if self.seed is None else f" seed={self.seed}"
        return f"<Schedule{seed} {len(self.choices)} choices, {self.deviations} deviations>"


class ReplayChoices(ChoiceSource):
    """Feeds a recorded :class:`Schedule` back, checking the program asks the same things."""

    __slots__ = ("_position", "_schedule")

    def __init__(self, schedule: Schedule) -> None:
        self._schedule = schedule
        self._position = 0

    def pick(self, options: int) -> int:
        """The next recorded choice.

        Raises:
            UsageError: the run asked for a decision the recording does not have, or
                with a different number of options: the program did not behave the same
                way (it reads real time, real randomness or real I/O, or it changed).
        """
        choices = self._schedule.choices
        position = self._position
        if position >= len(choices):
            raise UsageError(
                f"replay diverged: the run asked for decision {position + 1} but the "
                f"schedule records only {len(choices)}; the program is not deterministic "
                "under the simulation (real time, randomness or I/O?) or it changed"
            )
        recorded, picked = choices[position]
        if recorded != options:
            raise UsageError(
                f"replay diverged at decision {position + 1}: the schedule chose among "
                f"{recorded} options, the run offers {options}; the program is not "
                "deterministic under the simulation or it changed"
            )
        self._position = position + 1
        return picked

    def __repr__(self) -> str:
        return (
            f"<ReplayChoices {self._position}/{len(self._schedule.choices)} of {self._schedule!r}>"
        )


def seed_arg(value: object, name: str) -> int:
    """``value`` as a seed, or an :class:`ArgumentTypeError` naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    return value


def _check_choice(choice: object, index: int) -> None:
    if not (isinstance(choice, tuple) and len(choice) == 2):
        raise ArgumentTypeError(
            f"choices[{index}] must be an (options, picked) pair, got {choice!r}"
        )
    options, picked = choice
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in choice):
        raise ArgumentTypeError(f"choices[{index}] must hold two ints, got {choice!r}")
    if options < 2 or not 0 <= picked < options:
        raise InvalidArgumentError(
            f"choices[{index}] = {choice!r}: options must be at least 2 and picked in [0, options)"
        )
