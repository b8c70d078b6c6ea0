"""The instrumentation hook protocol.

corral's primitives report what they do to *instruments*: objects with any subset of the
methods of :class:`Instrument`. Nobody listening costs one attribute check per event::

    if INSTRUMENTS.active:
        INSTRUMENTS.task_spawned(task, parent)

``corral.observe`` implements instruments (flight recorder, task tree, profiler); nothing
in ``_core`` imports it. Instruments are process-wide and called synchronously in the
thread where the event happens; an instrument that raises is removed and the error is
logged, so a broken listener never breaks the program it watches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Protocol, runtime_checkable

__all__ = ("INSTRUMENTS", "Instrument", "InstrumentedCoroutine", "Instruments")

_log = logging.getLogger("corral.instruments")

#: Every hook an instrument may implement, in the order of a task's life.
HOOK_NAMES: tuple[str, ...] = (
    "task_spawned",
    "before_task_step",
    "after_task_step",
    "task_parked",
    "task_woken",
    "task_cancelled",
    "task_done",
    "scope_cancelled",
    "event",
)


@runtime_checkable
class Instrument(Protocol):
    """What an instrument may listen to. Implement any subset; the rest are skipped.

    Every hook runs synchronously where the event happens and must return quickly.
    """

    def task_spawned(self, task: asyncio.Task[Any], parent: asyncio.Task[Any] | None) -> None:
        """A task was started by a corral task group or combinator (or any task, once
        :func:`install_step_hooks` put corral's task factory on the loop)."""

    def before_task_step(self, task: asyncio.Task[Any]) -> None:
        """The loop is about to resume ``task`` (step hooks need ``install_step_hooks``)."""

    def after_task_step(self, task: asyncio.Task[Any]) -> None:
        """``task`` just yielded back to the loop or finished."""

    def task_parked(self, task: asyncio.Task[Any] | None, on: object) -> None:
        """``task`` started to wait on ``on`` (a promise, a task group, a limiter...)."""

    def task_woken(self, task: asyncio.Task[Any] | None, on: object) -> None:
        """``task`` stopped waiting on ``on``, for whatever reason."""

    def task_cancelled(self, task: asyncio.Task[Any], reason: object) -> None:
        """corral delivered a cancellation to ``task``; ``reason`` is a ``CancelReason``."""

    def task_done(self, task: asyncio.Task[Any]) -> None:
        """A task that corral started has finished (result, error or cancellation)."""

    def scope_cancelled(self, scope: object, reason: object) -> None:
        """A cancel scope was cancelled (explicitly, by its deadline, or by a token)."""

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        """A primitive-specific event: a limiter lent a token, a breaker opened..."""


class Instruments:
    """The registry of active instruments, with one dispatch method per hook.

    ``active`` is ``True`` while at least one instrument is registered; primitives check
    it before building any event data.
    """

    __slots__ = ("_by_hook", "_lock", "active")

    def __init__(self) -> None:
        self.active = False
        self._lock = threading.Lock()
        self._by_hook: dict[str, tuple[Any, ...]] = dict.fromkeys(HOOK_NAMES, ())

    def add(self, instrument: object) -> None:
        """Start sending events to ``instrument`` (adding one twice has no effect)."""
        with self._lock:
            for name in HOOK_NAMES:
                method = getattr(instrument, name, None)
                if method is not None and instrument not in self._listeners(name):
                    self._by_hook[name] = (*self._by_hook[name], instrument)
            self.active = any(self._by_hook.values())

    def remove(self, instrument: object) -> None:
        """Stop sending events to ``instrument``; removing an unknown one does nothing."""
        with self._lock:
            for name in HOOK_NAMES:
                self._by_hook[name] = tuple(i for i in self._by_hook[name] if i is not instrument)
            self.active = any(self._by_hook.values())

    def listeners(self) -> tuple[object, ...]:
        """Every registered instrument, each once, in registration order."""
        seen: dict[int, object] = {}
        for name in HOOK_NAMES:
            for instrument in self._by_hook[name]:
                seen.setdefault(id(instrument), instrument)
        return tuple(seen.values())

    def wants(self, hook: str) -> bool:
        """Whether any registered instrument implements ``hook``."""
        return bool(self._by_hook[hook])

    def _listeners(self, name: str) -> tuple[Any, ...]:
        return self._by_hook[name]

    def _call(self, name: str, *args: object) -> None:
        for instrument in self._by_hook[name]:
            try:
                getattr(instrument, name)(*args)
            except Exception:
                _log.exception("instrument %r raised in %s; it has been removed", instrument, name)
                self.remove(instrument)

    def task_spawned(self, task: asyncio.Task[Any], parent: asyncio.Task[Any] | None) -> None:
        self._call("task_spawned", task, parent)

    def before_task_step(self, task: asyncio.Task[Any]) -> None:
        self._call("before_task_step", task)

    def after_task_step(self, task: asyncio.Task[Any]) -> None:
        self._call("after_task_step", task)

    def task_parked(self, task: asyncio.Task[Any] | None, on: object) -> None:
        self._call("task_parked", task, on)

    def task_woken(self, task: asyncio.Task[Any] | None, on: object) -> None:
        self._call("task_woken", task, on)

    def task_cancelled(self, task: asyncio.Task[Any], reason: object) -> None:
        self._call("task_cancelled", task, reason)

    def task_done(self, task: asyncio.Task[Any]) -> None:
        self._call("task_done", task)

    def scope_cancelled(self, scope: object, reason: object) -> None:
        self._call("scope_cancelled", scope, reason)

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        self._call("event", source, name, fields)


#: The process-wide registry that every corral primitive reports to.
INSTRUMENTS = Instruments()


class InstrumentedCoroutine(Coroutine[Any, Any, Any]):
    """Wraps a coroutine so each step of its task is reported to the step hooks.

    Used by the task factory that :func:`install_step_hooks` puts on a loop; plain tasks
    pay nothing.
    """

    __slots__ = ("_coro", "_task")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._task: asyncio.Task[Any] | None = None

    def bind(self, task: asyncio.Task[Any]) -> None:
        self._task = task

    def send(self, value: Any) -> Any:
        task = self._task
        if task is None:
            return self._coro.send(value)
        INSTRUMENTS.before_task_step(task)
        try:
            return self._coro.send(value)
        finally:
            INSTRUMENTS.after_task_step(task)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        task = self._task
        if task is not None:
            INSTRUMENTS.before_task_step(task)
        try:
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)  # pragma: no cover - legacy signature
        finally:
            if task is not None:
                INSTRUMENTS.after_task_step(task)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()

    @property
    def cr_frame(self) -> Any:
        return getattr(self._coro, "cr_frame", None)

    @property
    def cr_code(self) -> Any:
        return getattr(self._coro, "cr_code", None)

    @property
    def cr_await(self) -> Any:
        return getattr(self._coro, "cr_await", None)

    def __repr__(self) -> str:
        return repr(self._coro)


TaskFactory = Callable[..., "asyncio.Future[Any]"]


def install_step_hooks(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Report every task of ``loop`` created from now on to the spawn and step hooks.

    Puts a task factory on ``loop`` that wraps each new task's coroutine in an
    :class:`InstrumentedCoroutine`; an existing factory (such as the eager task factory)
    is kept and called underneath. Returns a function that puts the previous factory
    back. Tasks created before the call are not instrumented.
    """
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        wrapped = InstrumentedCoroutine(coro)
        if previous is None:
            task: asyncio.Task[Any] = asyncio.Task(wrapped, loop=loop, **kwargs)
        else:
            task = previous(loop, wrapped, **kwargs)  # type: ignore[assignment]
        wrapped.bind(task)
        if INSTRUMENTS.active:
            INSTRUMENTS.task_spawned(task, asyncio.current_task(loop))
        return task

    loop.set_task_factory(factory)

    def uninstall() -> None:
        loop.set_task_factory(previous)

    return uninstall
