"""``select``: wait on several channel operations, futures, events and a timeout at once.

First a non-blocking pass asks every case whether it could complete now; among the ready
ones a uniformly random one (the first, when ``biased``) is committed. If none is ready
(and there is no default case), the select creates one future and registers it with every
case. The first party to resolve that future (a sender handing over an item, a receiver
taking one, a timer, a future's callback) commits the select to its case; every other
party checks ``done()`` first and passes on. When the select resumes it removes all its
registrations, whatever happened.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from .._core._hooks import INSTRUMENTS
from .._core._promise import Promise
from .._core._scope import current_task
from .._core._time import Seconds, seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError
from ._cases import SelectCase, Selected, _new_record, selected
from ._channel import ReceiveCase, _defer_cancellation

__all__ = (
    "DefaultCase",
    "EventCase",
    "FutureCase",
    "TimeoutCase",
    "default_case",
    "event_case",
    "future_case",
    "select",
    "timeout_case",
)

_random = random.random


class DefaultCase(SelectCase):
    """The case that fires when no other case is ready: it makes a select non-blocking."""

    __slots__ = ()

    def _ready(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<DefaultCase>"


_DEFAULT = DefaultCase()


def default_case() -> DefaultCase:
    """The default case of a :func:`select`, as Go's ``default:``.

    With it the select never waits: if no other case is ready, the default case fires
    (``value`` is ``None``). At most one per select.
    """
    return _DEFAULT


class TimeoutCase(SelectCase):
    """A case that fires ``delay`` seconds after the select starts waiting.

    The clock is the running loop's (corral's virtual clock drives it in tests). A delay
    of ``0`` is ready at once.
    """

    __slots__ = ("delay",)

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def _ready(self) -> bool:
        return self.delay <= 0

    def _commit(self, index: int) -> Selected:
        return selected(index, self, None)

    def _register(self, waiter: asyncio.Future[tuple[int, Any]], index: int) -> object:
        return waiter.get_loop().call_later(self.delay, _fire, waiter, index, None)

    def _unregister(self, handle: object) -> None:
        assert isinstance(handle, asyncio.TimerHandle)
        handle.cancel()

    def __repr__(self) -> str:
        return f"<TimeoutCase {self.delay:g}s>"


def _fire(waiter: asyncio.Future[tuple[int, Any]], index: int, value: Any) -> None:
    if not waiter.done():
        waiter.set_result((index, value))


def timeout_case(delay: Seconds) -> TimeoutCase:
    """A :func:`select` case that fires ``delay`` seconds after the select starts waiting.

    Reusable: each select that uses it starts its own timer. ``delay`` may be a
    ``timedelta``.

    Raises:
        InvalidArgumentError: ``delay`` is negative or NaN.
        ArgumentTypeError: ``delay`` is not a number or timedelta.
    """
    return TimeoutCase(seconds_arg(delay, "delay"))


class FutureCase(SelectCase):
    """A case that fires when an asyncio future or a corral :class:`~corral.Promise` is
    done. ``value`` is its result; if it failed, ``select`` raises its exception (as
    ``await`` would). Losing leaves the future untouched."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any] | Promise[Any]) -> None:
        self.future = future

    def _ready(self) -> bool:
        return self.future.done()

    def _commit(self, index: int) -> Selected:
        return selected(index, self, self.future.result())

    def _register(self, waiter: asyncio.Future[tuple[int, Any]], index: int) -> object:
        future = self.future
        watched = future.as_future() if isinstance(future, Promise) else future

        def on_done(_: asyncio.Future[Any]) -> None:
            _fire(waiter, index, None)

        watched.add_done_callback(on_done)
        return (watched, on_done)

    def _unregister(self, handle: object) -> None:
        watched: asyncio.Future[Any]
        on_done: Callable[[asyncio.Future[Any]], None]
        watched, on_done = handle  # type: ignore[misc]
        watched.remove_done_callback(on_done)
        if watched is not self.future:
            watched.cancel()  # the promise's private mirror: let the promise forget it

    def _resolve(self, index: int, raw: Any) -> Selected:
        return selected(index, self, self.future.result())

    def __repr__(self) -> str:
        return f"<FutureCase {self.future!r}>"


def future_case(future: asyncio.Future[Any] | Promise[Any]) -> FutureCase:
    """A :func:`select` case that fires when ``future`` (an asyncio future or task, or a
    :class:`~corral.Promise`) is done.

    The select's ``value`` is the result; a failed future makes ``select`` raise its
    error. A select that picks another case leaves ``future`` as it was (not cancelled).

    Raises:
        ArgumentTypeError: ``future`` is a coroutine or anything else that is not a
            future or promise (start it as a task first).
    """
    if isinstance(future, (asyncio.Future, Promise)):
        return FutureCase(future)
    raise ArgumentTypeError(
        f"future_case() takes an asyncio future, task or corral Promise, not "
        f"{type(future).__name__}; start a coroutine as a task first"
    )


class EventCase(SelectCase):
    """A case that fires when an :class:`asyncio.Event` is set (``value`` is ``None``)."""

    __slots__ = ("event",)

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def _ready(self) -> bool:
        return self.event.is_set()

    def _commit(self, index: int) -> Selected:
        return selected(index, self, None)

    def _register(self, waiter: asyncio.Future[tuple[int, Any]], index: int) -> object:
        watcher = waiter.get_loop().create_task(self.event.wait())

        def on_done(task: asyncio.Task[Any]) -> None:
            if not task.cancelled():
                _fire(waiter, index, None)

        watcher.add_done_callback(on_done)
        return watcher

    def _unregister(self, handle: object) -> None:
        assert isinstance(handle, asyncio.Task)
        handle.cancel()

    def __repr__(self) -> str:
        return f"<EventCase {self.event!r}>"


def event_case(event: asyncio.Event) -> EventCase:
    """A :func:`select` case that fires once ``event`` is set.

    Raises:
        ArgumentTypeError: ``event`` is not an :class:`asyncio.Event`.
    """
    if not isinstance(event, asyncio.Event):
        raise ArgumentTypeError(f"event_case() takes an asyncio.Event, not {type(event).__name__}")
    return EventCase(event)


def _check(cases: tuple[object, ...], function: str = "select()") -> None:
    default = None
    for position, case in enumerate(cases):
        if not isinstance(case, SelectCase):
            raise ArgumentTypeError(
                f"{function} argument {position} is not a case: {type(case).__name__} "
                f"({case!r}); build cases with channel.receive_case(), "
                "channel.send_case(item), timeout_case(), future_case(), event_case() "
                "or default_case()"
            )
        if isinstance(case, DefaultCase):
            if default is not None:
                raise InvalidArgumentError(
                    f"{function} got two default cases (arguments {default} and {position})"
                )
            default = position


async def select(*cases: SelectCase, biased: bool = False) -> Selected:
    """Wait until one of ``cases`` can proceed, perform exactly that one, and say which.

    Cases: ``ch.receive_case()``, ``ch.send_case(item)`` (also on channel ends, and
    :func:`receive_case` / :func:`send_case`, which accept ``None`` for a case that never
    fires), :func:`timeout_case`, :func:`future_case`, :func:`event_case` and
    :func:`default_case`. Exactly one case fires; the others have no effect at all
    (nothing is received, nothing sent, no future cancelled).

    Among cases that are ready at once the choice is uniformly random, as in Go; with
    ``biased=True`` the first ready case in argument order wins. With a default case the
    select never waits. With no cases (and no default) it waits until cancelled.

    Go's rules hold: a receive on a closed, drained channel is ready and fires with
    ``closed=True``; a send case chosen on a closed channel raises; a select that
    offers to send and receive on the same rendezvous channel does not match itself.

    A loop that selects over the same cases again and again does better with a
    :class:`~corral.Selector`, which checks them once.

    Cancellation: if cancelled while waiting, no case fires: every registration is
    removed, and an item handed to a receive case just before the cancellation goes back
    to the head of its channel. If a receiver took the item of a send case just before
    the cancellation, that case did fire: ``select`` returns it and the task is
    cancelled at its next wait. A select that finds a case ready completes without
    yielding to the event loop, so it is not a cancellation point.

    Returns:
        A :class:`Selected` record: ``index`` and ``case`` of the case that fired,
        ``value`` (the item received, the future's result, else ``None``) and ``closed``.

    Raises:
        ArgumentTypeError: an argument is not a case (the message gives its position).
        InvalidArgumentError: more than one default case.
        ClosedResourceError: a chosen send case's channel is closed, or a case uses a
            closed end.
        BrokenResourceError: a chosen send case's channel has no open receive end.
        BaseException: a future case's error, when that case fires.
    """
    ready_index = -1
    ready_channel: Any = None
    default = -1
    count = 0
    index = -1
    checked: tuple[object, ...] = cases  # arguments are checked, whatever the annotation says
    try:
        for case in checked:
            index += 1
            channel = case._direct  # type: ignore[attr-defined]
            if channel is not None:
                # the commonest case, checked inline: a receive straight from a channel
                if not (
                    channel._buffer
                    or not channel._open
                    or (channel._senders and channel._receive_ready())
                ):
                    continue
            elif not case._ready():  # type: ignore[attr-defined]
                if type(case) is DefaultCase:
                    if default >= 0:
                        _check(checked)
                    default = index
                continue
            count += 1
            # the first ready case when biased; else reservoir sampling, a uniform choice
            if count == 1 or (not biased and _random() * count < 1):
                ready_index = index
                ready_channel = channel
    except AttributeError:
        try:
            _check(checked)  # an argument that is not a case: say which
        except ArgumentTypeError as refusal:
            raise refusal from None
        raise
    if ready_index >= 0:
        if ready_channel is not None:
            # a receive straight from a channel's buffer, done inline (as _commit would)
            buffer = ready_channel._buffer
            if buffer and not ready_channel._senders:
                record = (ready_index, cases[ready_index], buffer.popleft(), False)
                return _new_record(Selected, record)  # type: ignore[no-any-return]
        return _commit(cases[ready_index], ready_index)
    if default >= 0:
        return selected(default, cases[default], None)
    return await _wait(cases)


def _commit(case: SelectCase, index: int) -> Selected:
    """Perform the chosen ready ``case``; a receive from a buffer is done inline."""
    if type(case) is ReceiveCase:
        channel = case.channel
        assert channel is not None
        buffer = channel._buffer
        if buffer and not channel._senders:
            return _new_record(Selected, (index, case, buffer.popleft(), False))  # type: ignore[no-any-return]
    return case._commit(index)


async def _wait(cases: tuple[SelectCase, ...]) -> Selected:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[tuple[int, Any]] = loop.create_future()
    handles = [case._register(waiter, index) for index, case in enumerate(cases)]
    if INSTRUMENTS.active:
        INSTRUMENTS.task_parked(current_task(), cases)
    try:
        index, raw = await waiter
    except BaseException as exc:
        if waiter.done() and not waiter.cancelled():
            index, raw = waiter.result()
            if cases[index]._undo(raw) and isinstance(exc, asyncio.CancelledError):
                _defer_cancellation(exc)
                return cases[index]._resolve(index, raw)
        raise
    finally:
        waiter.cancel()
        for case, handle in zip(cases, handles, strict=True):
            case._unregister(handle)
        if INSTRUMENTS.active:
            INSTRUMENTS.task_woken(current_task(), cases)
    return cases[index]._resolve(index, raw)
