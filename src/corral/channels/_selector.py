"""``Selector``: one :func:`~corral.select` over a fixed list of cases, run many times.

A loop that selects over the same cases on every turn pays, with ``select(*cases)``, for
packing the arguments, checking that each one is a case and finding out what kind of
case it is, on every call. A :class:`Selector` does that once, when it is built. When
every case receives straight from a channel (the commonest shape: a worker serving
several inboxes) it keeps the channels themselves and takes a buffered item inline.

Readiness hints. An unbiased selector over channels keeps the set of indices of the
channels that *may* be ready, and registers with each channel (``Channel._watchers``) so
that the channel adds its index whenever a receive on it may have become ready: its
buffer went from empty to not empty, an item was put back, a sender started waiting, or
it was closed or broken. Those are the only ways a receive becomes ready, so every ready
channel is in the set. A select checks only the channels in the set, with the same
readiness test as ``select``, drops those that are not ready, and chooses uniformly
among the rest; with one ready channel out of four it looks at one channel, not four.
A selector that is garbage collected unregisters (``weakref.finalize``). A biased
selector scans every channel in argument order instead.

The semantics are :func:`~corral.select`'s, case for case: the same readiness test, the
same uniform (or biased) choice among ready cases, the same commit, and the same wait
(``_wait``) with its cancellation guarantees when nothing is ready.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

from ..errors import ArgumentTypeError, ClosedResourceError
from ._cases import SelectCase, Selected, _new_record, selected
from ._channel import Channel, ReceiveCase
from ._select import DefaultCase, _check, _commit, _random, _wait

__all__ = ("Selector", "SelectorStatistics")


@dataclasses.dataclass(frozen=True, slots=True)
class SelectorStatistics:
    """A snapshot of a :class:`Selector`.

    Attributes:
        cases: how many cases it selects over (a default case included).
        ready: how many of them a select would not wait for right now (a case on a
            closed channel end counts: a select choosing it raises).
        channels_only: every case receives straight from a channel, so a select scans
            the channels directly.
    """

    cases: int
    ready: int
    channels_only: bool


class Selector:
    """A :func:`~corral.select` over a fixed list of cases, checked once and run often.

    ``await selector.select()`` behaves exactly as ``await corral.select(*cases,
    biased=biased)``: it performs one ready case (chosen uniformly at random among the
    ready ones, or the first when ``biased``), fires the default case if there is one and
    nothing is ready, and otherwise waits until a case can proceed. Building the selector
    checks the cases, so a select does not. When every case receives straight from a
    channel, the channels tell the selector when they may have become ready, so a select
    looks only at those (and it is not biased) or reads every channel directly (biased):
    over four channels with one ready, under 3x the cost of a plain ``receive``.

    A selector holds no state of a select: any number of tasks may use one at once. It
    needs no closing: once garbage collected, its channels forget it. The cases are
    fixed; build another selector to change them.

    Cancellation: as :func:`~corral.select`. If cancelled while waiting, no case fires,
    every registration is removed, and an item handed to a receive case just before the
    cancellation goes back to the head of its channel; a send case whose item a receiver
    already took is reported, and the task is cancelled at its next wait. A select that
    finds a case ready completes without yielding to the event loop.

    Args:
        *cases: the cases, as for :func:`~corral.select`.
        biased: take the first ready case in argument order instead of a random one.

    Raises:
        ArgumentTypeError: an argument is not a case (the message gives its position),
            or ``biased`` is not a bool.
        InvalidArgumentError: more than one default case.
    """

    __slots__ = ("__weakref__", "_biased", "_cases", "_channels", "_default", "_maybe_ready")

    def __init__(self, *cases: SelectCase, biased: bool = False) -> None:
        _check(cases, "Selector()")
        if not isinstance(biased, bool):
            raise ArgumentTypeError(
                f"Selector() biased must be a bool, not {type(biased).__name__} ({biased!r})"
            )
        self._cases = cases
        self._biased = biased
        self._default = next(
            (index for index, case in enumerate(cases) if type(case) is DefaultCase), -1
        )
        channels = [
            case.channel
            for case in cases
            if type(case) is ReceiveCase and case.end is None and case.channel is not None
        ]
        # the fast path: every case receives straight from a channel
        self._channels: tuple[tuple[int, Channel[Any]], ...] | None = (
            tuple(enumerate(channels)) if cases and len(channels) == len(cases) else None
        )
        #: Unbiased fast path: the indices of the channels that may be ready. Every
        #: channel that is ready is in it (each one adds its index whenever a receive on
        #: it may have become ready); a select drops those it finds not ready.
        self._maybe_ready: set[int] | None = None
        if self._channels is not None and not biased:
            self._maybe_ready = maybe_ready = set(range(len(cases)))
            watches = [(channel, (maybe_ready, index)) for index, channel in self._channels]
            for channel, watch in watches:
                if channel._watchers is None:
                    channel._watchers = []
                channel._watchers.append(watch)
            weakref.finalize(self, _unwatch, watches)

    @property
    def cases(self) -> tuple[SelectCase, ...]:
        """The cases, in the order given (``Selected.index`` points into this tuple)."""
        return self._cases

    @property
    def biased(self) -> bool:
        """Whether the first ready case wins instead of a uniformly random one."""
        return self._biased

    async def select(self) -> Selected:
        """Wait until one of the cases can proceed, perform exactly that one, and say which.

        Cancellation: if cancelled while waiting, no case fires and nothing is left
        registered; an item handed over just before the cancellation goes back to the
        head of its channel (a send that a receiver already took is reported, and the
        task is cancelled at its next wait).

        Returns:
            A :class:`~corral.Selected` record, as :func:`~corral.select` returns.

        Raises:
            ClosedResourceError: a chosen send case's channel is closed, or a case uses
                a closed end.
            BrokenResourceError: a chosen send case's channel has no open receive end.
            BaseException: a future case's error, when that case fires.
        """
        channels = self._channels
        chosen = -1
        count = 0
        if channels is not None:
            maybe_ready = self._maybe_ready
            if maybe_ready is not None:
                stale = None
                for index in maybe_ready:
                    channel = channels[index][1]
                    if (
                        channel._buffer
                        or not channel._open
                        or (channel._senders and channel._receive_ready())
                    ):
                        count += 1
                        if count == 1 or _random() * count < 1:  # reservoir sampling
                            chosen = index
                    elif stale is None:
                        stale = [index]
                    else:
                        stale.append(index)
                if stale is not None:
                    maybe_ready.difference_update(stale)
            else:
                for index, channel in channels:
                    if (
                        channel._buffer
                        or not channel._open
                        or (channel._senders and channel._receive_ready())
                    ):
                        count += 1
                        # the first ready case when biased; else reservoir sampling
                        if count == 1 or (not self._biased and _random() * count < 1):
                            chosen = index
            if chosen >= 0:
                channel = channels[chosen][1]
                buffer = channel._buffer
                if buffer and not channel._senders:
                    record = (chosen, self._cases[chosen], buffer.popleft(), False)
                    return _new_record(Selected, record)  # type: ignore[no-any-return]
                return self._cases[chosen]._commit(chosen)
            return await _wait(self._cases)
        index = -1
        cases = self._cases
        for case in cases:
            index += 1
            if case._ready():
                count += 1
                if count == 1 or (not self._biased and _random() * count < 1):
                    chosen = index
        if chosen >= 0:
            return _commit(cases[chosen], chosen)
        if self._default >= 0:
            return selected(self._default, cases[self._default], None)
        return await _wait(cases)

    def statistics(self) -> SelectorStatistics:
        """A snapshot: the number of cases, how many are ready now, and the fast path."""
        ready = 0
        for case in self._cases:
            try:
                ready += case._ready()
            except ClosedResourceError:
                ready += 1
        return SelectorStatistics(
            cases=len(self._cases), ready=ready, channels_only=self._channels is not None
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        kind = "channel receives" if stats.channels_only else "cases"
        biased = ", biased" if self._biased else ""
        return f"<Selector {stats.cases} {kind}, {stats.ready} ready{biased}>"


def _unwatch(watches: list[tuple[Channel[Any], tuple[set[int], int]]]) -> None:
    """A selector is gone: its channels stop telling it when they become ready."""
    for channel, watch in watches:
        watchers = channel._watchers
        if watchers is not None:
            # by identity: another selector's watch may hold an equal set
            channel._watchers = [kept for kept in watchers if kept is not watch] or None
