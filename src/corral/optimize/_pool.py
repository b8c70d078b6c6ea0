"""corral.Pool: a bounded pool of reusable objects (connections, clients, sessions)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, cast

from .._core._hooks import INSTRUMENTS
from .._core._scope import current_task
from .._core._time import Seconds, seconds_arg
from ..errors import ClosedResourceError, InvalidArgumentError, UsageError
from ._callables import function_arg
from ._limiter import size_arg

__all__ = ("Pool", "PoolStatistics")

T = TypeVar("T")

_log = logging.getLogger("corral.pool")

# Handed to a waiter instead of an object: "a slot is free, create one yourself".
_CREATE: Final = object()
# What a lease holds outside its ``async with`` block.
_OUT: Final = object()


@dataclasses.dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of a :class:`Pool`.

    Attributes:
        max_size: how many objects the pool holds at most (idle, in use and being created).
        min_size: how many objects the pool keeps even when they idle past ``max_idle``.
        size: how many objects exist now, counting those being created.
        idle: how many objects wait in the pool to be checked out.
        in_use: how many objects are checked out.
        waiting: how many callers wait for an object.
        created: how many objects the factory has made so far.
        discarded: how many objects were closed and dropped so far: broken ones, ones
            that failed their health check, and ones idle past ``max_idle``.
    """

    max_size: int
    min_size: int
    size: int
    idle: int
    in_use: int
    waiting: int
    created: int
    discarded: int


class _Lease(Generic[T]):
    """``async with pool.acquire() as obj``: checks an object out and back in."""

    __slots__ = ("_obj", "_pool")

    def __init__(self, pool: Pool[T]) -> None:
        self._pool = pool
        self._obj: Any = _OUT  # the object while the block runs

    async def __aenter__(self) -> T:
        if self._obj is not _OUT:
            raise UsageError("this acquire() has already been entered; call acquire() again")
        pool = self._pool
        idle = pool._idle
        # The uncontended path: an idle object, nobody in line, no check to run.
        if idle and not pool._waiters and pool._plain:
            obj = idle.pop()
            pool._in_use += 1
        else:
            obj = await pool._checkout()
        if INSTRUMENTS.active:
            pool._report("acquired")
        self._obj = obj
        return obj

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        obj = self._obj
        self._obj = _OUT
        if obj is _OUT:
            return
        pool = self._pool
        pool._in_use -= 1
        if exc_type is None and pool._open:
            if pool._plain and not pool._waiters:
                pool._idle.append(obj)
            else:
                pool._give_back(obj)
        else:
            pool._discard(obj)
            pool._pass_on_slot()


class Pool(Generic[T]):
    """Lends out at most ``max_size`` objects made by ``factory``, reusing returned ones.

    ``async with pool.acquire() as conn:`` checks an object out: an idle one if there is
    one (the most recently returned first), a new one from ``factory`` while fewer than
    ``max_size`` exist, or else the next one returned, waiting in line, first come first
    served. Leaving the block returns the object, or (if an exception escapes the block)
    closes and drops it, since an operation cut short may have left it in an unknown state.

    ``health_check(obj)`` (async, returns ``bool``) runs whenever an existing object is
    checked out; one that fails it (``False`` or an exception) is closed and a new one is
    made in its place, without losing the caller's turn. Objects idle for longer than
    ``max_idle`` seconds are closed, down to ``min_size``. ``async with pool:`` creates
    ``min_size`` objects up front, keeps that many from then on (a task the pool owns
    replaces dropped objects; its factory errors are logged), and closes the pool on
    exit. ``close(obj)`` (sync or async) closes an object; it runs in a task the pool
    owns, and its errors are logged, never raised to a caller.

    Cancellation: a caller cancelled while it waits in line leaves it holding nothing; an
    object or a free slot handed to it at that moment goes to the next caller. A caller
    cancelled while the factory or the health check runs gives its slot back. Waiting is
    bounded by the enclosing cancel scope's deadline like any other await.

    Errors of ``factory`` propagate to the caller that asked for the object, and its slot
    is given back.

    Thread-safety: not thread-safe; use a pool from the tasks of one event loop.

    Args:
        factory: async function that makes a new object.
        max_size: how many objects may exist at once (``>= 1``).
        min_size: how many objects ``async with pool:`` creates and keeps, and idling
            never closes (``0 <= min_size <= max_size``).
        max_idle: seconds (or ``timedelta``) an object may stay idle before it is
            closed; ``None``: forever.
        health_check: async function that says whether an object is still good.
        close: function (sync or async) that closes an object; ``None``: objects are
            just dropped.

    Raises:
        ArgumentTypeError: an argument has the wrong type, or a function argument is a
            coroutine object.
        InvalidArgumentError: a size is out of range, or ``max_idle`` is zero, negative
            or NaN.
    """

    __slots__ = (
        "_close",
        "_closing",
        "_created",
        "_discarded",
        "_factory",
        "_health_check",
        "_idle",
        "_idle_since",
        "_in_use",
        "_max_idle",
        "_max_size",
        "_min_size",
        "_open",
        "_plain",
        "_reaper",
        "_refilling",
        "_size",
        "_waiters",
        "_warm",
    )

    def __init__(
        self,
        factory: Callable[[], Awaitable[T]],
        *,
        max_size: int,
        min_size: int = 0,
        max_idle: Seconds | None = None,
        health_check: Callable[[T], Awaitable[bool]] | None = None,
        close: Callable[[T], object] | None = None,
    ) -> None:
        function_arg(factory, "factory")
        self._max_size = size_arg(max_size, "max_size")
        self._min_size = size_arg(min_size, "min_size", minimum=0)
        if self._min_size > self._max_size:
            raise InvalidArgumentError(
                f"min_size must not exceed max_size, got min_size={min_size!r} "
                f"and max_size={max_size!r}"
            )
        self._max_idle: float | None = None
        if max_idle is not None:
            self._max_idle = seconds_arg(max_idle, "max_idle")
            if self._max_idle == 0:
                raise InvalidArgumentError(f"max_idle must be above zero, got {max_idle!r}")
        if health_check is not None:
            function_arg(health_check, "health_check")
        if close is not None:
            function_arg(close, "close")
        self._factory = factory
        self._health_check = health_check
        self._close = close
        # Idle objects, most recently returned last; with max_idle, the loop time each
        # went idle, in the same order.
        self._idle: deque[T] = deque()
        self._idle_since: deque[float] = deque()
        # No health check and no max_idle: checkout and check-in need no clock or await.
        self._plain = health_check is None and max_idle is None
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._size = 0
        self._in_use = 0
        self._created = 0
        self._discarded = 0
        self._open = True
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.TimerHandle | None = None
        self._warm = False  # entered: kept at min_size from then on
        self._refilling: asyncio.Task[None] | None = None

    def acquire(self) -> contextlib.AbstractAsyncContextManager[T]:
        """Check an object out for the ``async with`` block: ``async with pool.acquire() as obj``.

        Entering waits in line while ``max_size`` objects are in use. Leaving returns the
        object; an exception escaping the block (cancellation included) closes and drops
        it instead.

        Cancellation: see the class; a cancelled entry holds nothing.

        Raises:
            ClosedResourceError: (on entry) the pool is closed, or is closed while waiting.
            Exception: (on entry) whatever ``factory`` raised.
        """
        return _Lease(self)

    # -- checkout -------------------------------------------------------------------------

    async def _checkout(self) -> T:
        """Take a slot (an idle object, room for a new one, or a turn in line), then fill it.

        An existing object that turns out unusable is dropped, and its slot is used to
        make a new one: the caller does not lose its turn.
        """
        if not self._open:
            raise ClosedResourceError(f"{self!r} is closed")
        idle = self._idle
        handed: Any
        if idle and not self._waiters:
            handed = idle.pop()
            since = self._idle_since.pop() if self._max_idle is not None else 0.0
        elif self._size < self._max_size and not self._waiters:
            self._size += 1
            handed, since = _CREATE, 0.0
        else:
            handed = await self._wait()
            since = asyncio.get_running_loop().time()  # handed over straight from use
        self._in_use += 1
        if handed is not _CREATE and await self._usable(handed, since):
            obj: T = handed
            return obj
        return await self._create()

    async def _wait(self) -> Any:
        """Wait in line for an object or for room to make one (``_CREATE``)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        task = current_task()
        if INSTRUMENTS.active:
            INSTRUMENTS.task_parked(task, self)
        try:
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                # An object (or a slot) arrived together with the cancellation: pass it on.
                handed = future.result()
                if handed is _CREATE:
                    self._size -= 1
                    self._pass_on_slot()
                else:
                    self._give_back(handed)
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            raise
        finally:
            if INSTRUMENTS.active:
                INSTRUMENTS.task_woken(task, self)

    async def _create(self) -> T:
        """Make an object in a slot already counted in ``_size`` and ``_in_use``."""
        try:
            obj = await self._factory()
        except BaseException:
            self._size -= 1
            self._in_use -= 1
            self._pass_on_slot()
            raise
        self._created += 1
        if INSTRUMENTS.active:
            self._report("created")
        if not self._open:  # closed while the factory ran
            self._in_use -= 1
            self._discard(obj)
            raise ClosedResourceError(f"{self!r} was closed while an object was being made")
        return obj

    async def _usable(self, obj: T, since: float) -> bool:
        """Whether a checked-out existing object may be lent; if not, it is closed (its
        slot stays with the caller)."""
        max_idle = self._max_idle
        if max_idle is not None and asyncio.get_running_loop().time() - since >= max_idle:
            self._drop(obj)
            return False
        check = self._health_check
        if check is None:
            return True
        try:
            healthy = await check(obj)
        except Exception:
            _log.debug("health check of %r raised; dropping it", obj, exc_info=True)
            healthy = False
        except BaseException:
            self._in_use -= 1
            self._discard(obj)
            self._pass_on_slot()
            raise
        if healthy:
            return True
        self._drop(obj)
        return False

    # -- check-in ---------------------------------------------------------------------------

    def _give_back(self, obj: T) -> None:
        """Hand ``obj`` to the longest waiting caller, or put it with the idle ones."""
        if not self._open:
            self._discard(obj)
            return
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(obj)
                return
        self._idle.append(obj)
        if self._max_idle is not None:
            loop = asyncio.get_running_loop()
            self._idle_since.append(loop.time())
            if self._reaper is None:
                self._arm_reaper(loop)

    def _pass_on_slot(self) -> None:
        """A slot became free (an object was dropped): let the next waiter create one."""
        waiters = self._waiters
        if not self._open:
            return
        while waiters and self._size < self._max_size:
            future = waiters.popleft()
            if not future.done():
                self._size += 1
                future.set_result(_CREATE)
                return

    def _discard(self, obj: T) -> None:
        """Drop ``obj`` and its slot, and close it; refill a warm pool to ``min_size``."""
        self._size -= 1
        self._drop(obj)
        if self._warm and self._open and self._size < self._min_size and not self._refilling:
            task = asyncio.get_running_loop().create_task(self._refill())
            if not task.done():
                self._refilling = task
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def _drop(self, obj: T) -> None:
        """Close ``obj`` in a task the pool owns; its slot is the caller's business."""
        self._discarded += 1
        if INSTRUMENTS.active:
            self._report("discarded")
        close = self._close
        if close is not None:
            task = asyncio.get_running_loop().create_task(self._close_one(close, obj))
            if not task.done():
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_one(close: Callable[[T], object], obj: T) -> None:
        try:
            result = close(obj)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _log.warning("closing pooled object %r failed", obj, exc_info=True)

    # -- idle objects ------------------------------------------------------------------------

    def _arm_reaper(self, loop: asyncio.AbstractEventLoop) -> None:
        idle = self._idle
        max_idle = self._max_idle
        if idle and max_idle is not None and self._size > self._min_size:
            self._reaper = loop.call_at(self._idle_since[0] + max_idle, self._reap)
        else:
            self._reaper = None

    def _reap(self) -> None:
        """Close the objects idle for ``max_idle`` or longer, oldest first, to ``min_size``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        idle = self._idle
        since = self._idle_since
        max_idle = cast(float, self._max_idle)  # armed only with a max_idle
        while idle and now - since[0] >= max_idle and self._size > self._min_size:
            since.popleft()
            self._discard(idle.popleft())
            self._pass_on_slot()
        self._arm_reaper(loop)

    # -- life --------------------------------------------------------------------------------

    async def __aenter__(self) -> Pool[T]:
        """Create ``min_size`` objects; return the pool.

        Raises:
            ClosedResourceError: the pool is closed.
            Exception: whatever ``factory`` raised (the pool is then closed).
        """
        if not self._open:
            raise ClosedResourceError(f"{self!r} is closed")
        self._warm = True
        try:
            await self._fill()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def _fill(self) -> None:
        """Create objects until ``min_size`` exist (counting those in use)."""
        while self._open and self._size < self._min_size:
            self._size += 1
            self._in_use += 1
            obj = await self._create()
            self._in_use -= 1
            self._give_back(obj)

    async def _refill(self) -> None:
        """The refill task: back to ``min_size`` after objects were dropped."""
        try:
            await self._fill()
        except Exception:
            _log.warning("refilling %r to min_size failed", self, exc_info=True)
        finally:
            self._refilling = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pool: fail the waiting callers, close the idle objects, and close
        the objects in use as they come back. Closing twice does nothing more.

        Waits for the closing of every dropped object to finish.

        Cancellation: cancelling the wait leaves the closing tasks running to their end
        in the background; the pool is closed either way.
        """
        if self._open:
            self._open = False
            if self._reaper is not None:
                self._reaper.cancel()
                self._reaper = None
            if self._refilling is not None:
                self._refilling.cancel()
            waiters = self._waiters
            while waiters:
                future = waiters.popleft()
                if not future.done():
                    future.set_exception(ClosedResourceError(f"{self!r} was closed"))
            idle = self._idle
            while idle:
                self._discard(idle.popleft())
            self._idle_since.clear()
            if INSTRUMENTS.active:
                self._report("closed")
        while self._closing:
            await asyncio.wait(set(self._closing))

    # -- reporting ---------------------------------------------------------------------------

    def _report(self, name: str) -> None:
        INSTRUMENTS.event(
            self,
            name,
            {"size": self._size, "idle": len(self._idle), "in_use": self._in_use},
        )

    def statistics(self) -> PoolStatistics:
        """A snapshot: limits, objects by state, callers waiting, objects made and dropped."""
        return PoolStatistics(
            max_size=self._max_size,
            min_size=self._min_size,
            size=self._size,
            idle=len(self._idle),
            in_use=self._in_use,
            waiting=sum(1 for future in self._waiters if not future.done()),
            created=self._created,
            discarded=self._discarded,
        )

    def __repr__(self) -> str:
        state = "" if self._open else " closed"
        waiting = sum(1 for future in self._waiters if not future.done())
        return (
            f"<Pool{state} {self._size}/{self._max_size} objects, {self._in_use} in use, "
            f"{len(self._idle)} idle, {waiting} waiting>"
        )
