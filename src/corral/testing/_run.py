"""``corral.testing.run``: ``asyncio.run`` on virtual time."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple, Unpack

from ..errors import ArgumentTypeError, UsageError
from ._clock import VirtualClock
from ._loop import VirtualClockLoop

__all__ = ("run",)

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


def run(
    main: Callable[[Unpack[_Ts]], Coroutine[Any, Any, _T]],
    *args: *_Ts,
    clock: VirtualClock | None = None,
    eager: bool = False,
    debug: bool | None = None,
) -> _T:
    """Run ``main(*args)`` on a fresh :class:`VirtualClockLoop` and return its result.

    Like :func:`asyncio.run`: the loop is created, runs ``main`` to completion, then
    remaining tasks are cancelled, async generators and the default executor are shut
    down and the loop is closed. Timers run on virtual time, so::

        async def main() -> float:
            await asyncio.sleep(30)
            return asyncio.get_running_loop().time()

        assert corral.testing.run(main) == 30.0   # instantly

    Args:
        main: An async function (pass the function, not ``main()``).
        *args: Positional arguments for ``main``.
        clock: The clock to use; a fresh autojumping :class:`VirtualClock` starting at
            ``0.0`` when omitted. Pass one to inspect or steer time from outside.
        eager: Install :func:`asyncio.eager_task_factory`, so new tasks run
            synchronously up to their first wait (Python 3.12+).
        debug: asyncio debug mode, as for :func:`asyncio.run`.

    Returns:
        What ``main`` returned. Its exception, if it raised, propagates unchanged.

    Raises:
        ArgumentTypeError: ``main`` is a coroutine object or not callable, or does not
            return a coroutine; ``clock`` is not a :class:`VirtualClock`.
        UsageError: ``eager=True`` on Python 3.11, or called while a loop is running
            in this thread, or ``clock`` already drives an open loop.
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
    if eager and sys.version_info < (3, 12):
        raise UsageError(
            "eager=True needs Python 3.12 or newer (asyncio.eager_task_factory); "
            f"this is Python {sys.version_info.major}.{sys.version_info.minor}"
        )
    _check_no_running_loop()
    coro = main(*args)
    made: object = coro
    if not inspect.iscoroutine(made):
        raise ArgumentTypeError(
            f"main must be an async function returning a coroutine; {main!r} "
            f"returned {type(coro).__name__} ({coro!r})"
        )

    def new_loop() -> VirtualClockLoop:
        loop = VirtualClockLoop(clock)
        if eager and sys.version_info >= (3, 12):
            loop.set_task_factory(asyncio.eager_task_factory)
        return loop

    try:
        with asyncio.Runner(debug=debug, loop_factory=new_loop) as runner:
            return runner.run(coro)
    finally:
        # A no-op once the coroutine ran; otherwise (no loop could be made) it keeps
        # Python from warning about a coroutine that was never awaited.
        coro.close()


def _check_no_running_loop() -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(
        f"corral.testing.run() cannot be called while an event loop is running ({running!r}); "
        "await the coroutine instead"
    )
