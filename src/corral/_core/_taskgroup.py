"""Task groups: structured concurrency on asyncio with level-triggered cancellation."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType, TracebackType
from typing import Any, Final, Generic, Self, TypeVar

from ..errors import ArgumentTypeError, UsageError
from ._hooks import INSTRUMENTS
from ._reason import CancelReason, CancelSource
from ._scope import CancelScope, needs_self_adoption, run_adopted, wait_protected

__all__ = ("TASK_STATUS_IGNORED", "TaskGroup", "TaskGroupStatistics", "TaskHandle", "TaskStatus")

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

_NEW: Final = 0
_ACTIVE: Final = 1
_EXITING: Final = 2
_CLOSED: Final = 3
_STATE_NAMES: Final = ("new", "active", "exiting", "closed")


@dataclasses.dataclass(frozen=True, slots=True)
class TaskGroupStatistics:
    """A snapshot of a :class:`TaskGroup`."""

    state: str
    running: int
    starting: int
    spawned: int
    failed: int
    cancel_called: bool


class TaskStatus(Generic[T_contra]):
    """Handed to a child started with :meth:`TaskGroup.start` as ``task_status``.

    The child calls ``task_status.started(value)`` once it is ready (listening, connected,
    initialised); ``await tg.start(...)`` then returns ``value``.
    """

    __slots__ = ("_future", "_group", "_task")

    def __init__(self, group: TaskGroup | None, future: asyncio.Future[Any] | None) -> None:
        self._group = group
        self._future = future
        self._task: asyncio.Task[Any] | None = None

    def started(self, value: T_contra | None = None) -> None:
        """Report that the child is ready; ``value`` is what ``start()`` returns.

        Raises:
            UsageError: called twice.
        """
        future = self._future
        if future is None:
            return  # TASK_STATUS_IGNORED: started directly, nobody waits
        if self._group is None:
            raise UsageError("task_status.started() was called twice")
        group, self._group = self._group, None
        if self._task is not None:
            group._starting.pop(self._task, None)
        if not future.done():
            future.set_result(value)

    def __repr__(self) -> str:
        if self._future is None:
            return "<TaskStatus ignored>"
        return f"<TaskStatus {'started' if self._group is None else 'starting'}>"


#: The default for a ``task_status`` parameter, so the function can also be called or
#: started with ``start_soon`` directly: its ``started()`` does nothing.
TASK_STATUS_IGNORED: Final[TaskStatus[Any]] = TaskStatus(None, None)


class TaskHandle(Generic[T]):
    """A child task started with :meth:`TaskGroup.create_task`; await it for its result.

    Awaiting the handle waits for the child and returns its result or raises its error
    (the error is *also* part of the group's ``ExceptionGroup``, as with asyncio).
    Cancelling the waiter cancels only the wait, never the child.
    """

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Task[T]) -> None:
        self._task = task

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.shield(self._task).__await__()

    @property
    def task(self) -> asyncio.Task[T]:
        """The underlying ``asyncio.Task``."""
        return self._task

    @property
    def name(self) -> str:
        """The task's name."""
        return self._task.get_name()

    def done(self) -> bool:
        """Whether the child has finished (result, error or cancellation)."""
        return self._task.done()

    def cancelled(self) -> bool:
        """Whether the child finished by cancellation."""
        return self._task.cancelled()

    def result(self) -> T:
        """The child's result; raises its error, or ``InvalidStateError`` while running."""
        return self._task.result()

    def exception(self) -> BaseException | None:
        """The child's error (``None`` if it succeeded)."""
        return self._task.exception()

    def cancel(self, reason: str | None = None) -> bool:
        """Cancel this child only (edge-triggered, like ``Task.cancel``).

        The group does not count a child cancelled this way as a failure.
        Returns ``False`` if the child had already finished.
        """
        return self._task.cancel(CancelReason(CancelSource.EXPLICIT, reason, self))

    def __repr__(self) -> str:
        if not self._task.done():
            state = "running"
        elif self._task.cancelled():
            state = "cancelled"
        elif self._task.exception() is not None:
            state = f"failed {type(self._task.exception()).__name__}"
        else:
            state = "done"
        return f"<TaskHandle {self.name!r} {state}>"


def _not_async(what: str, fn: object, result: object) -> ArgumentTypeError:
    if isinstance(result, Coroutine):
        result.close()
    name = getattr(fn, "__qualname__", type(fn).__name__)
    return ArgumentTypeError(
        f"{what} needs an async function and its arguments; {name}(...) returned "
        f"{type(result).__name__}, not a coroutine. Pass `{what}(fn, *args)` where fn is "
        "defined with `async def`; for blocking sync code, run it in a worker thread."
    )


def _coroutine_passed(what: str, fn: object) -> ArgumentTypeError:
    if isinstance(fn, Coroutine):
        fn.close()
    return ArgumentTypeError(
        f"{what} takes the async function and its arguments, not a coroutine object: "
        f"write `{what}(fn, *args)` instead of `{what}(fn(*args))`"
    )


class TaskGroup:
    """A scope that owns child tasks: it does not exit until every child has finished.

    ::

        async with corral.TaskGroup() as tg:
            tg.start_soon(fetch, "a")
            handle = tg.create_task(fetch("b"))
            port = await tg.start(serve)   # waits for task_status.started(port)
        # here every child is done

    Semantics:

    - If a child (or the body) raises, the group cancels its scope: the body and every
      other child see ``CancelledError`` at their next wait. When everything has
      finished, the errors are raised together as an ``ExceptionGroup`` (a
      ``BaseExceptionGroup`` if one is not an ``Exception``), body error first, then
      children in the order they failed.
    - Cancelling the task that runs the ``async with`` (or an enclosing scope) cancels
      every child; the group waits for them, then lets the ``CancelledError`` through.
    - :meth:`cancel` cancels the whole group; the ``async with`` then exits quietly.
    - Children are strongly referenced until they finish: never garbage-collected while
      running. Cancellation is level-triggered for children too (they run inside
      :attr:`cancel_scope`).

    Raises:
        UsageError: the group is entered twice, or used before entry or after exit.
    """

    __slots__ = (
        "_children",
        "_errors",
        "_host",
        "_loop",
        "_on_child_done",
        "_scope",
        "_spawned",
        "_starting",
        "_state",
        "_waiter",
        "_wrap",
    )

    def __init__(self) -> None:
        self._scope = CancelScope()
        self._state = _NEW
        self._children: set[asyncio.Task[Any]] = set()
        self._starting: dict[asyncio.Task[Any], asyncio.Future[Any]] = {}
        self._errors: list[BaseException] = []
        self._waiter: asyncio.Future[None] | None = None
        self._host: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spawned = 0
        self._wrap = False  # children adopt themselves (a task factory is installed)
        self._on_child_done = self._child_done

    async def __aenter__(self) -> Self:
        if self._state != _NEW:
            raise UsageError("this TaskGroup was already entered; a task group is single use")
        self._scope.__enter__()
        self._host = self._scope._host
        self._loop = loop = self._host.get_loop()  # type: ignore[union-attr]
        self._wrap = needs_self_adoption(loop)
        self._state = _ACTIVE
        return self

    @property
    def cancel_scope(self) -> CancelScope:
        """The scope that the body and every child run in."""
        return self._scope

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the body and every child; the group then exits without an error."""
        self._scope.cancel(reason)

    # -- starting children ------------------------------------------------------------

    def _check_open(self, what: str) -> asyncio.AbstractEventLoop:
        if self._state == _ACTIVE or self._state == _EXITING:
            return self._loop  # type: ignore[return-value]
        if self._state == _NEW:
            raise UsageError(f"{what} on a TaskGroup that was not entered: use `async with`")
        raise UsageError(f"{what} on a TaskGroup that has already exited")

    def start_soon(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> None:
        """Start ``fn(*args)`` as a child task; it begins running at the next loop step.

        Raises:
            ArgumentTypeError: ``fn`` is a coroutine object (pass the function and its
                arguments), or calling it did not return a coroutine (a sync function).
            UsageError: the group was not entered or has exited.
        """
        loop = self._check_open("start_soon()")
        try:
            coro = fn(*args)
        except TypeError:
            if isinstance(fn, Coroutine):
                raise _coroutine_passed("start_soon", fn) from None
            raise
        if type(coro) is not CoroutineType and not isinstance(coro, Coroutine):
            raise _not_async("start_soon", fn, coro)
        if self._wrap:
            coro = run_adopted(self._scope, coro)
        task = loop.create_task(coro, name=name)
        self._adopt(task)

    def create_task(
        self, coro: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> TaskHandle[T]:
        """Start a coroutine object as a child and return a handle to await its result.

        Raises:
            ArgumentTypeError: ``coro`` is not a coroutine object.
            UsageError: the group was not entered or has exited.
        """
        if not isinstance(coro, Coroutine):  # checked at run time; the type says it all
            what = "an async function" if callable(coro) else type(coro).__name__  # type: ignore[unreachable]
            raise ArgumentTypeError(
                f"create_task() takes a coroutine object, got {what}: write "
                "`tg.create_task(fn(*args))`, or `tg.start_soon(fn, *args)`"
            )
        try:
            loop = self._check_open("create_task()")
        except UsageError:
            coro.close()
            raise
        task = loop.create_task(run_adopted(self._scope, coro) if self._wrap else coro, name=name)
        self._adopt(task)
        return TaskHandle(task)

    async def start(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> Any:
        """Start ``fn(*args, task_status=...)`` and wait until it calls
        ``task_status.started(value)``; return ``value``. The child keeps running in the
        group afterwards.

        Cancellation: cancelling the caller while it waits cancels the starting child.

        Raises:
            ArgumentTypeError: as for :meth:`start_soon`.
            UsageError: the group is not open, or the child finished without calling
                ``task_status.started()`` (its error, if it raised, is raised instead;
                it is not also added to the group's errors).
        """
        loop = self._check_open("start()")
        future: asyncio.Future[Any] = loop.create_future()
        status: TaskStatus[Any] = TaskStatus(self, future)
        try:
            coro = fn(*args, task_status=status)
        except TypeError as exc:
            if isinstance(fn, Coroutine):
                raise _coroutine_passed("start", fn) from None
            if "task_status" in str(exc):
                name = getattr(fn, "__qualname__", repr(fn))
                raise ArgumentTypeError(
                    f"start() calls {name}(*args, task_status=...), which it does not accept: "
                    "declare `*, task_status: corral.TaskStatus[T] = corral.TASK_STATUS_IGNORED` "
                    "and call `task_status.started(value)` once ready"
                ) from exc
            raise
        if not isinstance(coro, Coroutine):
            raise _not_async("start", fn, coro)
        task = loop.create_task(run_adopted(self._scope, coro) if self._wrap else coro, name=name)
        status._task = task
        if status._group is not None:  # an eager task may have called started() already
            self._starting[task] = future
        self._adopt(task)
        try:
            return await future
        except asyncio.CancelledError:
            if not task.done():
                task.cancel(
                    CancelReason(CancelSource.PARENT_CANCELLED, "start() was cancelled", self)
                )
            raise

    def _adopt(self, task: asyncio.Task[Any]) -> None:
        self._spawned += 1
        if task.done():  # finished eagerly, before we saw it
            self._child_done(task)
            return
        self._children.add(task)
        if not self._wrap:
            self._scope._adopt_task(task)
        task.add_done_callback(self._on_child_done)
        if INSTRUMENTS.active:
            INSTRUMENTS.task_spawned(task, asyncio.current_task())

    def _child_done(self, task: asyncio.Task[Any]) -> None:
        self._children.discard(task)
        self._scope._release_task(task)
        if INSTRUMENTS.active:
            INSTRUMENTS.task_done(task)
        starting = self._starting.pop(task, None) if self._starting else None
        if starting is not None:
            self._fail_start(task, starting)
        elif not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self._errors.append(exc)
                self._scope._cancel(CancelSource.SIBLING_FAILED, f"{type(exc).__name__}: {exc}")
        if not self._children and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail_start(self, task: asyncio.Task[Any], future: asyncio.Future[Any]) -> None:
        if future.done():
            if not task.cancelled():
                task.exception()  # the starter gave up; the error is not the group's either
            return
        if task.cancelled():
            future.set_exception(
                UsageError(
                    f"child {task.get_name()!r} was cancelled before it called "
                    "task_status.started()"
                )
            )
            return
        exc = task.exception()
        if exc is None:
            exc = UsageError(
                f"child {task.get_name()!r} returned without calling task_status.started()"
            )
        future.set_exception(exc)

    # -- leaving ------------------------------------------------------------------------

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._state != _ACTIVE:
            raise UsageError("this TaskGroup is not active")
        self._state = _EXITING
        body_error = (
            exc if exc is not None and not isinstance(exc, asyncio.CancelledError) else None
        )
        if body_error is not None:
            self._scope._cancel(
                CancelSource.SIBLING_FAILED, f"the body raised {type(exc).__name__}"
            )
        cancelled: BaseException | None = exc if isinstance(exc, asyncio.CancelledError) else None
        if cancelled is not None and not self._scope._cancel_called:
            # the host is being cancelled from outside: take every child down with it
            self._scope._cancel(CancelSource.PARENT_CANCELLED, None)
        while self._children:
            self._waiter = self._loop.create_future()  # type: ignore[union-attr]
            if INSTRUMENTS.active:
                INSTRUMENTS.task_parked(self._host, self)
            try:
                await wait_protected(self._waiter)
            except asyncio.CancelledError as err:
                cancelled = err
                if not self._scope._cancel_called:
                    self._scope._cancel(CancelSource.PARENT_CANCELLED, None)
            finally:
                if INSTRUMENTS.active:
                    INSTRUMENTS.task_woken(self._host, self)
        self._waiter = None
        self._state = _CLOSED
        errors = self._errors
        if body_error is not None:
            errors.insert(0, body_error)
        if errors:
            # Leave the scope first so its cancel bookkeeping is undone, then raise.
            self._scope.__exit__(type(errors[0]), errors[0], None)
            try:
                raise BaseExceptionGroup("unhandled errors in a TaskGroup", errors)
            finally:
                self._errors = []
                del errors
        scope = self._scope
        if cancelled is None and not scope._shield and scope._parent is not None:
            # Leaving the group is a checkpoint: if an enclosing scope was cancelled
            # while we waited (protected) for the children, do not run on past it.
            reason = scope._parent._visible_cancel_reason()
            if reason is not None:
                cancelled = asyncio.CancelledError(reason)
        if cancelled is not None:
            if scope.__exit__(type(cancelled), cancelled, None):
                return True
            if cancelled is exc:
                return False
            raise cancelled
        return scope.__exit__(None, None, None)

    # -- introspection ----------------------------------------------------------------

    def statistics(self) -> TaskGroupStatistics:
        """A snapshot: state, running and starting children, spawned and failed counts."""
        return TaskGroupStatistics(
            state=_STATE_NAMES[self._state],
            running=len(self._children),
            starting=len(self._starting),
            spawned=self._spawned,
            failed=len(self._errors),
            cancel_called=self._scope.cancel_called,
        )

    def __repr__(self) -> str:
        parts = [_STATE_NAMES[self._state], f"{len(self._children)} running"]
        if self._errors:
            parts.append(f"{len(self._errors)} failed")
        if self._scope.cancel_called:
            parts.append("cancelled")
        return f"<TaskGroup {', '.join(parts)}>"
