"""The instrumentation hook protocol: events reach instruments, broken ones are dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import corral
from corral import INSTRUMENTS
from corral._core._hooks import install_step_hooks


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def task_spawned(self, task: asyncio.Task[Any], parent: asyncio.Task[Any] | None) -> None:
        self.events.append(("spawned", task.get_name()))

    def task_done(self, task: asyncio.Task[Any]) -> None:
        self.events.append(("done", task.get_name()))

    def task_cancelled(self, task: asyncio.Task[Any], reason: object) -> None:
        self.events.append(("cancelled", task.get_name()))

    def scope_cancelled(self, scope: object, reason: object) -> None:
        self.events.append(("scope_cancelled", str(reason)))

    def task_parked(self, task: asyncio.Task[Any] | None, on: object) -> None:
        self.events.append(("parked", type(on).__name__))

    def task_woken(self, task: asyncio.Task[Any] | None, on: object) -> None:
        self.events.append(("woken", type(on).__name__))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    INSTRUMENTS.add(rec)
    try:
        yield rec
    finally:
        INSTRUMENTS.remove(rec)
    assert not INSTRUMENTS.active


async def test_task_group_reports_its_children(recorder: Recorder) -> None:
    async def child() -> None:
        await asyncio.sleep(0)

    async with corral.TaskGroup() as tg:
        tg.start_soon(child, name="kid")
    names = [event for event in recorder.events if event[1] == "kid"]
    assert names == [("spawned", "kid"), ("done", "kid")]
    assert ("parked", "TaskGroup") in recorder.events
    assert ("woken", "TaskGroup") in recorder.events


async def test_scope_cancellation_is_reported(recorder: Recorder) -> None:
    with corral.CancelScope() as scope:
        scope.cancel("bye")
        await asyncio.sleep(1)
    kinds = [kind for kind, _ in recorder.events]
    assert "scope_cancelled" in kinds
    assert "cancelled" in kinds


def test_registry_is_inactive_without_listeners() -> None:
    active = [INSTRUMENTS.active]
    rec = Recorder()
    INSTRUMENTS.add(rec)
    INSTRUMENTS.add(rec)  # twice: still one listener
    active.append(INSTRUMENTS.active)
    assert INSTRUMENTS.listeners() == (rec,)
    assert INSTRUMENTS.wants("task_done")
    assert not INSTRUMENTS.wants("before_task_step")
    INSTRUMENTS.remove(rec)
    active.append(INSTRUMENTS.active)
    INSTRUMENTS.remove(rec)  # unknown: no error
    assert active == [False, True, False]


async def test_broken_instrument_is_removed(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def task_done(self, task: asyncio.Task[Any]) -> None:
            raise RuntimeError("instrument bug")

    broken = Broken()
    INSTRUMENTS.add(broken)
    try:

        async def child() -> None:
            pass

        async with corral.TaskGroup() as tg:
            tg.start_soon(child)
            tg.start_soon(child)
        assert broken not in INSTRUMENTS.listeners()
        reports = [r for r in caplog.records if "raised in task_done" in r.getMessage()]
        assert len(reports) == 1  # removed after the first failure: no second report
    finally:
        INSTRUMENTS.remove(broken)


@pytest.mark.corral_loops("asyncio")
async def test_step_hooks_see_every_step() -> None:
    steps: list[tuple[str, str]] = []

    class Stepper:
        def before_task_step(self, task: asyncio.Task[Any]) -> None:
            steps.append(("before", task.get_name()))

        def after_task_step(self, task: asyncio.Task[Any]) -> None:
            steps.append(("after", task.get_name()))

    async def worker() -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return 7

    stepper = Stepper()
    INSTRUMENTS.add(stepper)
    uninstall = install_step_hooks(asyncio.get_running_loop())
    try:
        task = asyncio.create_task(worker(), name="w")
        assert await task == 7
    finally:
        uninstall()
        INSTRUMENTS.remove(stepper)
    assert steps == [("before", "w"), ("after", "w")] * 3
    assert asyncio.get_running_loop().get_task_factory() is None
