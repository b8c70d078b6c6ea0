"""Level-triggered cancel scopes on asyncio.

A :class:`CancelScope` is a region of one task's code (plus, for task groups, the
children started in it). Once the scope is cancelled, every wait inside it raises
``asyncio.CancelledError``, again and again, until the code leaves the scope: the
cancellation is a *state* of the region, not a one-off event. That is what makes
cleanup code that awaits inside a cancelled region safe to write.

How it works on asyncio, whose cancellation is edge-triggered (one ``CancelledError``
per ``Task.cancel()``): while a scope is cancelled, a callback runs once per loop
iteration and cancels every task inside the region that is parked on an unfinished
future. Each ``Task.cancel()`` made on behalf of a scope is counted; on exit the scope
calls ``Task.uncancel()`` as many times and swallows the ``CancelledError`` only when no
other cancellation is pending (``Task.cancelling()`` back to its value at entry), the
same rule ``asyncio.timeout`` uses. So scopes nest with ``asyncio.timeout``,
``asyncio.TaskGroup`` and plain ``Task.cancel()`` in both directions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sys
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from ..errors import DeadlineExceeded, UsageError
from ._deadlines import DeadlineQueue, deadline_queue
from ._hooks import INSTRUMENTS
from ._reason import CancelReason, CancelSource
from ._time import Seconds, deadline_arg, seconds_arg

if TYPE_CHECKING:
    from ._token import CancelToken, TokenRegistration

T = TypeVar("T")

__all__ = (
    "CancelScope",
    "CancelScopeStatistics",
    "current_effective_deadline",
    "fail_after",
    "fail_at",
    "move_on_after",
    "move_on_at",
    "needs_self_adoption",
    "run_adopted",
    "wait_protected",
)

if sys.version_info >= (3, 12):
    _c_current_task = asyncio.current_task

    def current_task() -> asyncio.Task[Any] | None:
        """The running task, or ``None`` outside a task (and outside a running loop)."""
        try:
            return _c_current_task()
        except RuntimeError:  # no running event loop
            return None

else:  # 3.11: asyncio.current_task is Python; read the C registry it wraps directly
    from _asyncio import _current_tasks  # type: ignore[attr-defined]

    from ._speedups import running_loop as _running_loop

    def current_task() -> asyncio.Task[Any] | None:
        """The running task (asyncio.current_task without its Python-level wrapper)."""
        return _current_tasks.get(_running_loop())  # type: ignore[no-any-return]


_current_task = current_task


# The innermost scope of every task that is inside one (hosts and task-group children).
# Entries are removed when a task leaves its outermost scope or a child task finishes.
TASK_SCOPES: Final[dict[asyncio.Task[Any], CancelScope]] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class CancelScopeStatistics:
    """A snapshot of a :class:`CancelScope`."""

    state: str
    deadline: float
    shield: bool
    cancel_called: bool
    cancelled_caught: bool
    reason: str | None
    tasks: int
    child_scopes: int


# Futures that corral's own bookkeeping waits on inside cancelled regions (a task group
# waiting for its children to finish). Scopes do not re-cancel a task parked on one: it
# has nothing to give up, and waking it every iteration would spin the loop.
_PROTECTED_WAITS: Final[set[asyncio.Future[Any]]] = set()

_NEW: Final = 0
_ENTERED: Final = 1
_EXITED: Final = 2


def _on_the_stack(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is running although it is not the current task.

    That is a task whose ``create_task()`` call runs a new task's first step at once (an
    eager task factory). It waits for nothing, so a ``Task.cancel()`` now would only be
    recorded, and on Python 3.12, whose ``Task.uncancel()`` does not withdraw a request
    that was never delivered, it would outlive the scope that made it and cancel the
    task's next wait after it.
    """
    coro = task.get_coro()
    return bool(getattr(coro, "cr_running", False) or getattr(coro, "gi_running", False))


def needs_self_adoption(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether children must adopt themselves (:func:`run_adopted`) on ``loop``.

    True when a task factory is installed: it may be eager, running a task's first step
    inside ``create_task``, before the spawner could adopt it.
    """
    return loop.get_task_factory() is not None


async def run_adopted(scope: CancelScope, coro: Awaitable[T]) -> T:
    """Run ``coro`` as the body of the current task, adopted into ``scope`` first."""
    task = current_task()
    assert task is not None
    scope._adopt_task(task)
    return await coro


async def wait_protected(fut: asyncio.Future[Any]) -> None:
    """Wait for ``fut`` without being re-cancelled by cancel scopes on every iteration.

    For waits that must run to the end inside a cancelled region (children finishing
    their cleanup). A direct ``Task.cancel()`` still interrupts it. Once the wait ends,
    cancellation of the region resumes for the task.
    """
    task = current_task()
    _PROTECTED_WAITS.add(fut)
    try:
        await fut
    finally:
        _PROTECTED_WAITS.discard(fut)
        scope = TASK_SCOPES.get(task) if task is not None else None
        if scope is not None:
            scope._resume_cancellation()


class CancelScope:
    """A region of code that can be cancelled as a whole, with an optional deadline.

    Use it as a (sync or async) context manager inside a task::

        with CancelScope(deadline=loop.time() + 5) as scope:
            await work()
        if scope.cancelled_caught:
            ...  # the deadline passed; we moved on

    Cancellation semantics: after :meth:`cancel` (or when ``deadline`` passes, or a bound
    ``token`` is cancelled), every ``await`` inside the scope raises
    ``asyncio.CancelledError`` until the block exits; the scope catches the error it
    caused at its exit and execution continues after the ``with`` block. A cancellation
    from outside (an enclosing scope, ``asyncio.timeout``, ``Task.cancel()``) passes
    through. A ``shield=True`` scope is not reached by enclosing scopes' cancellation
    (its own ``cancel()`` and deadline still apply). Inner deadlines never extend outer
    ones: :func:`current_effective_deadline` is the earliest that applies.

    A scope is single use, is entered and exited by the same task, and is not
    thread-safe: from another thread, cancel it through a bound :class:`CancelToken`.

    Args:
        deadline: absolute time on the running loop's clock (``loop.time()``) at which
            the scope cancels itself; ``math.inf`` (the default) means never.
        shield: protect the block from cancellation coming from enclosing scopes.
        token: a :class:`CancelToken` whose cancellation cancels this scope.

    Raises:
        InvalidArgumentError: ``deadline`` is NaN.
        UsageError: entered twice, entered outside a task, or exited in another task or
            out of order.
    """

    # Class-level defaults: a scope sets only what differs, which keeps creating one
    # cheap (a timeout is entered and left on hot paths).
    _token_registration: TokenRegistration | None = None
    _fail_on_deadline = False
    _cancel_called = False
    _reason: CancelReason | None = None
    _state = _NEW
    _host: asyncio.Task[Any] | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _parent: CancelScope | None = None
    _host_inside = False  # the host task is directly in this scope
    _tasks: set[asyncio.Task[Any]] | None = None  # other tasks inside (group children)
    _child_scopes: set[CancelScope] | None = None
    _deadline_queue: DeadlineQueue | None = None  # where our deadline waits, if armed
    _delivery: asyncio.Handle | None = None
    _host_cancels = 0
    _cancelling = 0
    #: ``True`` once the scope caught the ``CancelledError`` that its own cancellation
    #: caused (the block was cut short).
    cancelled_caught = False

    def __init__(
        self,
        *,
        deadline: float = math.inf,
        shield: bool = False,
        token: CancelToken | None = None,
    ) -> None:
        self._deadline = deadline if deadline == math.inf else deadline_arg(deadline)
        self._shield = bool(shield)
        self._token = token

    # -- entering and leaving -------------------------------------------------------

    def __enter__(self) -> Self:
        task = _current_task()
        if task is None:
            raise UsageError("a CancelScope must be entered inside a running asyncio task")
        if self._state != _NEW:
            raise UsageError(
                "this CancelScope was already entered; a scope is single use, create a new one"
            )
        self._state = _ENTERED
        self._host = task
        self._loop = loop = task.get_loop()
        parent = TASK_SCOPES.get(task)
        if parent is not None:
            self._parent = parent
            parent._remove_task(task)
            children = parent._child_scopes
            if children is None:
                parent._child_scopes = {self}
            else:
                children.add(self)
        TASK_SCOPES[task] = self
        self._host_inside = True
        self._cancelling = task.cancelling()
        if self._token is not None:
            self._token_registration = self._token._bind_scope(self, loop)
        if self._cancel_called:
            self._deliver_cancellation()
        elif self._deadline != math.inf:
            self._arm_timer(loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        task = self._host
        if self._state != _ENTERED:
            raise UsageError("this CancelScope is not active (it was never entered, or exited)")
        if _current_task() is not task:
            raise UsageError("a CancelScope must be exited by the task that entered it")
        if TASK_SCOPES.get(task) is not self:  # type: ignore[arg-type]
            raise UsageError(
                "cancel scopes exited out of order (an inner scope is still active); "
                "this happens when a scope is held open across a generator's yield"
            )
        assert task is not None
        self._state = _EXITED
        if self._deadline_queue is not None:
            self._deadline_queue.forget()
            self._deadline_queue = None
        if self._delivery is not None:
            self._delivery.cancel()
            self._delivery = None
        if self._token_registration is not None:
            self._token_registration.remove()
            self._token_registration = None
        self._host_inside = False
        parent = self._parent
        if parent is None:
            del TASK_SCOPES[task]
        else:
            TASK_SCOPES[task] = parent
            parent._add_task(task)
            if parent._child_scopes is not None:
                parent._child_scopes.discard(self)
            if self._shield or self._cancel_called:
                parent._resume_cancellation()
        if not self._cancel_called:
            return False
        for _ in range(self._host_cancels):
            task.uncancel()
        self._host_cancels = 0
        if not isinstance(exc, asyncio.CancelledError):
            return False
        if parent is not None and parent._cancel_visible():
            # An enclosing scope is cancelled too: the outermost cancelled one catches.
            return False
        if task.cancelling() > self._cancelling:
            return False  # somebody else cancelled this task as well: let it through
        self.cancelled_caught = True
        reason = self._reason
        if self._fail_on_deadline and reason is not None and reason.source is CancelSource.DEADLINE:
            raise DeadlineExceeded(
                f"deadline exceeded: the block did not finish by loop time {self._deadline:.6g}"
            ) from exc
        return True

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)

    @classmethod
    def _open_region(
        cls, loop: asyncio.AbstractEventLoop, parent: CancelScope | None
    ) -> CancelScope:
        """An active scope with no host task: the region a combinator's inputs run in.

        It hangs under ``parent`` (the caller's innermost scope), so cancellation and
        deadlines of enclosing scopes reach the tasks adopted into it.
        """
        scope = cls()
        scope._state = _ENTERED
        scope._loop = loop
        if parent is not None:
            scope._parent = parent
            if parent._child_scopes is None:
                parent._child_scopes = {scope}
            else:
                parent._child_scopes.add(scope)
        return scope

    def _close_region(self) -> None:
        """Close a region opened with :meth:`_open_region` once its tasks are done."""
        self._state = _EXITED
        if self._delivery is not None:
            self._delivery.cancel()
            self._delivery = None
        parent = self._parent
        if parent is not None and parent._child_scopes is not None:
            parent._child_scopes.discard(self)

    def _adopt_task(self, task: asyncio.Task[Any]) -> None:
        """Put a child task directly inside this scope, before its first step.

        Under a custom task factory (an eager one runs the first step inside
        ``create_task``) the child adopts itself instead: see :func:`run_adopted`.
        """
        TASK_SCOPES[task] = self
        self._add_task(task)
        if self._cancel_called and self._delivery is None:
            self._resume_cancellation()

    def _release_task(self, task: asyncio.Task[Any]) -> None:
        """Forget a child task adopted with :meth:`_adopt_task` that has finished."""
        if TASK_SCOPES.get(task) is self:
            del TASK_SCOPES[task]
        self._remove_task(task)

    def _add_task(self, task: asyncio.Task[Any]) -> None:
        """``task`` is now directly inside this scope (not in one of its child scopes)."""
        if task is self._host:
            self._host_inside = True
        elif self._tasks is None:
            self._tasks = {task}
        else:
            self._tasks.add(task)

    def _remove_task(self, task: asyncio.Task[Any]) -> None:
        if task is self._host:
            self._host_inside = False
        elif self._tasks is not None:
            self._tasks.discard(task)

    # -- cancelling ------------------------------------------------------------------

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the scope: every wait inside it raises ``CancelledError`` until it exits.

        Calling it again has no effect (the first reason stays). May be called before the
        scope is entered (it then starts cancelled) or after it exited (no effect).
        Must be called from the thread running the scope's loop.
        """
        self._cancel(CancelSource.EXPLICIT, reason)

    def _cancel(self, source: CancelSource, reason: str | None) -> None:
        if self._cancel_called:
            return
        self._cancel_called = True
        self._reason = CancelReason(source, reason, self)
        if self._deadline_queue is not None:
            self._deadline_queue.forget()
            self._deadline_queue = None
        if INSTRUMENTS.active:
            INSTRUMENTS.scope_cancelled(self, self._reason)
        if self._state == _ENTERED:
            self._deliver_cancellation()

    def _on_deadline(self) -> None:
        """Called by the deadline queue once the loop clock reached our deadline."""
        self._deadline_queue = None  # our entry left the queue
        self._cancel(CancelSource.DEADLINE, None)

    def _deadline_live(self, deadline: float) -> bool:
        """Whether a queue entry for ``deadline`` still stands for this scope."""
        return self._state == _ENTERED and not self._cancel_called and deadline == self._deadline

    def _arm_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._deadline <= loop.time():
            self._cancel(CancelSource.DEADLINE, None)
        else:
            queue = self._deadline_queue = deadline_queue(loop)
            queue.add(self._deadline, self)

    def _deliver_cancellation(self) -> None:
        """Cancel every waiting task in this cancelled region; repeat next iteration while
        any task is still inside it (that repetition is what makes it level-triggered)."""
        self._delivery = None
        if self._state != _ENTERED:
            return
        if self._deliver_to_region(self, _current_task()):
            assert self._loop is not None
            self._delivery = self._loop.call_soon(self._deliver_cancellation)

    def _deliver_to_region(self, origin: CancelScope, current: asyncio.Task[Any] | None) -> bool:
        found = False
        reason = origin._reason
        tasks: tuple[asyncio.Task[Any], ...] = tuple(self._tasks) if self._tasks else ()
        if self._host_inside:
            tasks = (self._host, *tasks)  # type: ignore[arg-type]
        for task in tasks:
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is not None and waiter in _PROTECTED_WAITS:
                continue
            found = True
            # A task whose waiter is already done is about to resume with its result;
            # cancelling now would throw that result away (a lost queue item), so wait
            # for its next wait. ``_must_cancel`` means a cancel is already on its way.
            # A task on the stack is reached by the next delivery (see _on_the_stack).
            if (
                task is current
                or getattr(task, "_must_cancel", False)
                or (waiter is not None and waiter.done())
                or (waiter is None and _on_the_stack(task))
            ):
                continue
            task.cancel(reason)
            if task is origin._host:
                origin._host_cancels += 1
            if INSTRUMENTS.active:
                INSTRUMENTS.task_cancelled(task, reason)
        if self._child_scopes:
            for scope in tuple(self._child_scopes):
                if not scope._shield and not scope._cancel_called:
                    found = scope._deliver_to_region(origin, current) or found
        return found

    def _cancel_visible(self) -> bool:
        """Whether a cancellation of this scope or an enclosing one reaches code here."""
        return self._visible_cancel_reason() is not None

    def _visible_cancel_reason(self) -> CancelReason | None:
        """The reason of the nearest cancelled scope, from here outwards until a shield."""
        scope: CancelScope | None = self
        while scope is not None:
            if scope._cancel_called:
                return scope._reason
            if scope._shield:
                return None
            scope = scope._parent
        return None

    def _resume_cancellation(self) -> None:
        """A task came back into this region (from a shielded or self-cancelled child
        scope): restart delivery in the nearest cancelled scope that reaches here."""
        scope: CancelScope | None = self
        while scope is not None:
            if scope._cancel_called:
                if scope._delivery is None and scope._state == _ENTERED:
                    assert scope._loop is not None
                    scope._delivery = scope._loop.call_soon(scope._deliver_cancellation)
                return
            if scope._shield:
                return
            scope = scope._parent

    # -- properties -------------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """The absolute loop time at which the scope cancels itself (``inf``: never).

        Settable while the scope is active: moving it reschedules the timer, and a
        deadline already in the past cancels the scope at once.
        """
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        deadline = deadline_arg(value)
        self._deadline = deadline
        if self._state != _ENTERED or self._cancel_called:
            return
        if self._deadline_queue is not None:
            self._deadline_queue.forget()
            self._deadline_queue = None
        if deadline != math.inf:
            assert self._loop is not None
            self._arm_timer(self._loop)

    @property
    def shield(self) -> bool:
        """Whether cancellation from enclosing scopes is kept out of this scope.

        Settable; lowering the shield inside a cancelled region lets the cancellation in.
        """
        return self._shield

    @shield.setter
    def shield(self, value: bool) -> None:
        self._shield = bool(value)
        if not self._shield and self._state == _ENTERED and self._parent is not None:
            self._parent._resume_cancellation()

    @property
    def cancel_called(self) -> bool:
        """Whether the scope has been cancelled (explicitly, by deadline or by token)."""
        return self._cancel_called

    @property
    def cancel_reason(self) -> CancelReason | None:
        """Why the scope was cancelled, or ``None`` while it is not."""
        return self._reason

    @property
    def active(self) -> bool:
        """Whether the scope has been entered and not yet exited."""
        return self._state == _ENTERED

    def statistics(self) -> CancelScopeStatistics:
        """A snapshot: state, deadline, shield, cancellation, and what runs inside."""
        return CancelScopeStatistics(
            state=("new", "active", "exited")[self._state],
            deadline=self._deadline,
            shield=self._shield,
            cancel_called=self._cancel_called,
            cancelled_caught=self.cancelled_caught,
            reason=str(self._reason) if self._reason is not None else None,
            tasks=len(self._tasks or ()) + self._host_inside,
            child_scopes=len(self._child_scopes or ()),
        )

    def __repr__(self) -> str:
        state = ("new", "active", "exited")[self._state]
        parts = [state]
        if self._cancel_called:
            parts.append(
                f"cancelled ({self._reason.source.value})" if self._reason else "cancelled"
            )
        if self._deadline != math.inf:
            parts.append(f"deadline={self._deadline:.6g}")
        if self._shield:
            parts.append("shielded")
        if self._tasks:
            parts.append(f"{len(self._tasks) + self._host_inside} tasks")
        return f"<CancelScope {', '.join(parts)}>"


def current_effective_deadline() -> float:
    """The earliest deadline that applies to the current task, in loop time.

    Walks from the innermost scope outwards until a shielded scope, taking the earliest
    deadline (and a bound token's). Returns ``-inf`` if a scope on that path is already
    cancelled, and ``inf`` when no deadline applies (including outside any scope).

    Raises:
        UsageError: called outside a running asyncio task.
    """
    task = _current_task()
    if task is None:
        raise UsageError("current_effective_deadline() must be called inside a running task")
    deadline = math.inf
    scope = TASK_SCOPES.get(task)
    while scope is not None:
        if scope._cancel_called:
            return -math.inf
        deadline = min(deadline, scope._deadline)
        if scope._token is not None:
            deadline = min(deadline, scope._token.deadline)
        if scope._shield:
            break
        scope = scope._parent
    return deadline


def _loop_time() -> float:
    loop = asyncio._get_running_loop()
    if loop is None:
        raise UsageError("timeouts read the running loop's clock; call this inside async code")
    return loop.time()


def move_on_at(deadline: float, *, shield: bool = False) -> CancelScope:
    """A scope that silently cancels its block at ``deadline`` (loop time).

    Check ``scope.cancelled_caught`` afterwards to know whether the block was cut short.

    Raises:
        InvalidArgumentError: ``deadline`` is NaN.
    """
    return CancelScope(deadline=deadline_arg(deadline), shield=shield)


def move_on_after(delay: Seconds, *, shield: bool = False) -> CancelScope:
    """A scope that silently cancels its block ``delay`` seconds from now.

    ``delay`` may be a ``timedelta``. The clock is the running loop's, so corral's
    virtual clock drives it in tests.

    Raises:
        InvalidArgumentError: ``delay`` is negative or NaN.
        ArgumentTypeError: ``delay`` is not a number or timedelta.
        UsageError: called outside async code (no running loop).
    """
    if (type(delay) is float or type(delay) is int) and delay >= 0:  # fast path; NaN fails >=
        seconds: float = delay
    else:
        seconds = seconds_arg(delay, "delay")
    return CancelScope(deadline=_loop_time() + seconds, shield=shield)


def fail_at(deadline: float, *, shield: bool = False) -> CancelScope:
    """Like :func:`move_on_at`, but raises :class:`~corral.errors.DeadlineExceeded` (a
    ``TimeoutError``) when the deadline cuts the block short.

    An explicit ``scope.cancel()`` still exits silently; only the deadline raises.

    Raises:
        InvalidArgumentError: ``deadline`` is NaN.
        DeadlineExceeded: on exit, if the deadline cancelled the block.
    """
    scope = CancelScope(deadline=deadline_arg(deadline), shield=shield)
    scope._fail_on_deadline = True
    return scope


def fail_after(delay: Seconds, *, shield: bool = False) -> CancelScope:
    """Like :func:`move_on_after`, but raises :class:`~corral.errors.DeadlineExceeded` (a
    ``TimeoutError``) when the delay runs out before the block finishes.

    Raises:
        InvalidArgumentError: ``delay`` is negative or NaN.
        ArgumentTypeError: ``delay`` is not a number or timedelta.
        UsageError: called outside async code (no running loop).
        DeadlineExceeded: on exit, if the deadline cancelled the block.
    """
    seconds = seconds_arg(delay, "delay")
    scope = CancelScope(deadline=_loop_time() + seconds, shield=shield)
    scope._fail_on_deadline = True
    return scope
