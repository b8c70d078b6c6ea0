"""The compiled promise hot paths: what they add of their own (the lock, the running-loop
lookup, the fields, the garbage collector's view), and how they are loaded.

Every other promise test runs against whichever promise is in use; CI runs them once more
with ``CORRAL_PURE_PYTHON=1``, so both implementations pass the same tests.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import pytest

from corral._core import _promise, _speedups
from corral._core._promise import Promise

TIMEOUT = 10.0  # a safety net for a broken build; no test waits for it to pass

SOURCE = Path(_speedups.__file__).with_name("_promise_speedups.c")
BUILT = list(SOURCE.parent.glob("_promise_speedups.*.so")) + list(
    SOURCE.parent.glob("_promise_speedups.*.pyd")
)

compiled = pytest.mark.skipif(not _promise.ACCELERATED, reason="the pure-Python promise runs")


def test_a_built_module_is_used_unless_turned_off() -> None:
    wanted = os.environ.get(_speedups.PURE_PYTHON_VARIABLE, "") in ("", "0")
    built_here = any(
        path.name.startswith(
            f"_promise_speedups.cpython-{sys.version_info[0]}{sys.version_info[1]}"
        )
        for path in BUILT
    )
    assert (wanted and built_here) == _promise.ACCELERATED


def test_the_variable_turns_the_compiled_promise_off() -> None:
    code = "from corral._core import _promise; print(_promise.ACCELERATED)"
    environment = {**os.environ, _speedups.PURE_PYTHON_VARIABLE: "1"}
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    assert completed.stdout.strip() == "False"


@compiled
def test_a_module_built_from_another_source_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "_promise_speedups.c"
    other.write_text(SOURCE.read_text() + "\n/* changed */\n")
    monkeypatch.setattr(_speedups, "_SOURCE", other)
    with pytest.warns(RuntimeWarning, match="built from another version"):
        assert _speedups.load() is None


@compiled
def test_the_module_matches_its_source() -> None:
    module = _speedups.load()
    assert module is not None
    assert hashlib.sha256(SOURCE.read_bytes()).hexdigest() == module.SOURCE_SHA256


# ---------------------------------------------------------------------------- the lock


@compiled
def test_the_lock_is_reentrant_and_says_who_holds_it() -> None:
    lock: Any = _promise._LOCK
    assert not lock._is_owned()
    with lock:
        with lock:
            assert lock._is_owned()
            assert "2 deep" in repr(lock)
        assert lock._is_owned()
    assert not lock._is_owned()
    assert repr(lock) == "<corral promise lock unlocked>"


@compiled
def test_releasing_a_lock_not_held_is_an_error() -> None:
    lock = type(_promise._LOCK)()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()
    lock.acquire()
    errors: list[BaseException] = []

    def release_elsewhere() -> None:
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=release_elsewhere)
    thread.start()
    thread.join(TIMEOUT)
    lock.release()
    assert len(errors) == 1


@compiled
def test_the_lock_excludes_other_threads() -> None:
    lock = type(_promise._LOCK)()
    inside = 0
    most_inside = 0
    rounds = 200

    def work() -> None:
        nonlocal inside, most_inside
        for _ in range(rounds):
            with lock:
                inside += 1
                most_inside = max(most_inside, inside)
                time.sleep(0)  # let another thread try to get in
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert most_inside == 1
    assert inside == 0


@compiled
def test_a_waiting_thread_gets_the_lock_once_it_is_released() -> None:
    lock = type(_promise._LOCK)()
    order: list[str] = []
    lock.acquire()

    def wait_for_it() -> None:
        with lock:
            order.append("waiter")

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    time.sleep(0.05)  # the waiter is blocked now; nothing depends on the exact time
    order.append("holder")
    lock.release()
    thread.join(TIMEOUT)
    assert order == ["holder", "waiter"]


# ---------------------------------------------------------------------- running loop


@compiled
def test_the_running_loop_is_the_one_running_in_this_thread() -> None:
    lookup = _speedups.running_loop
    assert lookup() is None

    async def inside() -> Any:
        return lookup(), asyncio.get_running_loop()

    found, running = asyncio.run(inside())
    assert found is running
    assert lookup() is None  # the loop stopped: the remembered one is not used


@compiled
def test_each_thread_sees_its_own_running_loop() -> None:
    lookup = _speedups.running_loop
    seen: dict[str, bool] = {}
    ready = threading.Barrier(2, timeout=TIMEOUT)

    async def check(name: str) -> None:
        ready.wait()
        for _ in range(100):
            assert lookup() is asyncio.get_running_loop()
            await asyncio.sleep(0)
        seen[name] = True

    threads = [threading.Thread(target=asyncio.run, args=(check(name),)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert seen == {"a": True, "b": True}


@compiled
def test_a_loop_without_a_thread_id_is_found_every_time() -> None:
    uvloop = pytest.importorskip("uvloop")
    lookup = _speedups.running_loop

    async def inside() -> tuple[Any, Any, Any]:
        first = lookup()
        await asyncio.sleep(0)
        return first, lookup(), asyncio.get_running_loop()

    for _ in range(2):  # the second loop is a new one, and is found too
        loop = uvloop.new_event_loop()
        try:
            first, second, running = loop.run_until_complete(inside())
        finally:
            loop.close()
        assert first is second is running
        assert lookup() is None


@compiled
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_see_its_parents_loop() -> None:
    async def fork_inside_the_loop() -> int:
        assert _speedups.running_loop() is asyncio.get_running_loop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
            pid = os.fork()
        if pid == 0:  # the child: its copy of the loop does not run here
            os._exit(0 if _speedups.running_loop() is None else 1)
        return pid

    _, status = os.waitpid(asyncio.run(fork_inside_the_loop()), 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ---------------------------------------------------------------------------- fields


def test_a_new_promise_reads_as_it_was_made() -> None:
    promise: Promise[int] = Promise()
    assert (promise._state, promise._value, promise._tb, promise._reactions) == (
        0,
        None,
        None,
        None,
    )
    assert promise._handled is False
    assert (promise._runner, promise._source, promise._arg1, promise._arg2) == (None,) * 4


def test_a_promise_takes_no_arguments() -> None:
    with pytest.raises(TypeError, match="argument"):
        Promise(1)  # type: ignore[call-arg]


def job_of(promise: Promise[Any]) -> tuple[Any, ...]:
    return (promise._runner, promise._source, promise._arg1, promise._arg2)


def test_a_derived_promise_reads_as_it_was_made() -> None:
    head: Promise[int] = Promise()

    def step(value: int) -> int:
        return value + 1

    child = head.then(step)
    assert child._state == 1  # following its job from birth
    assert child._source is head
    assert child._arg1 is step
    assert child._arg2 is None
    assert child._value is None
    assert child._handled is False
    assert head._reactions is child
    head.resolve(1)
    assert child.result() == 2
    assert job_of(child) == (None, None, None, None)  # a settled promise keeps no job


@compiled
def test_the_job_and_the_outcome_share_their_fields_by_state() -> None:
    promise: Promise[int] = Promise()
    promise._arg1 = print  # a pending promise has a job's fields...
    assert promise._arg1 is print
    assert promise._tb is None  # ...and no outcome: the shared field reads as None here
    with pytest.raises(RuntimeError, match="_value of a pending promise"):
        promise._value = 1
    with pytest.raises(RuntimeError, match="settled promise"):
        promise._handled = object()  # type: ignore[assignment]  # only a settled one has a watch
    promise._arg1 = None
    promise.reject(ValueError("no"))
    assert isinstance(promise._value, ValueError)
    assert promise._tb is None  # rejected with no traceback: never raised
    assert promise._arg1 is None
    with pytest.raises(RuntimeError, match="_source of a settled promise"):
        promise._source = promise
    assert promise._handled is not False  # watched: reported if nobody looks
    assert isinstance(promise.exception(), ValueError)
    assert promise._handled is True


def test_promises_can_be_weakly_referenced() -> None:
    promise: Promise[int] = Promise()
    reference = weakref.ref(promise)
    assert reference() is promise
    del promise
    gc.collect()
    assert reference() is None


# ----------------------------------------------------------------- garbage collection


def test_a_pending_chain_in_a_cycle_is_collected() -> None:
    head: Promise[int] = Promise()

    def keeping_the_head(value: int, keep: object = head) -> int:
        return value

    tail = head
    for _ in range(100):
        tail = tail.then(keeping_the_head)  # the callback keeps the head alive
    first = weakref.ref(head)
    last = weakref.ref(tail)
    del head, tail, keeping_the_head  # now only the cycle holds them
    gc.collect()
    assert first() is None
    assert last() is None


def test_a_rejected_promise_in_a_cycle_is_collected() -> None:
    class Holder(Exception):
        promise: Promise[int] | None = None

    reported: list[object] = []
    previous = _promise.set_unhandled_rejection_handler(lambda error, loop: reported.append(error))
    try:
        promise: Promise[int] = Promise()
        error = Holder()
        error.promise = promise  # the promise holds the error, the error the promise
        promise.reject(error)
        reference = weakref.ref(promise)
        del promise, error
        gc.collect()
        assert reference() is None
        assert len(reported) == 1  # and its rejection, unhandled, was reported
    finally:
        _promise.set_unhandled_rejection_handler(previous)


def test_a_long_pending_chain_is_freed_without_deep_recursion() -> None:
    head: Promise[int] = Promise()
    tail = head
    for _ in range(200_000):
        tail = tail.then(None)
    last = weakref.ref(tail)
    del tail
    del head  # frees 200,000 promises, each holding the one before it
    gc.collect()
    assert last() is None
