"""Fault points: no-op without an injector; an injector can fail or delay them."""

from __future__ import annotations

import asyncio

import pytest

import corral
from corral._core._faults import FAULTS
from corral.errors import ArgumentTypeError, UsageError
from corral.testing import VirtualClock


async def test_fault_point_without_injector_does_nothing() -> None:
    assert not FAULTS.active
    await corral.fault_point("db.query", object())


async def test_injector_sees_points_and_can_raise_or_delay(virtual_clock: VirtualClock) -> None:
    seen: list[tuple[str, object]] = []

    async def injector(point: str, target: object) -> None:
        seen.append((point, target))
        if point == "db.query":
            raise ConnectionResetError("injected")
        if point == "net.send":
            await asyncio.sleep(5)

    uninstall = FAULTS.install(injector)
    try:
        with pytest.raises(ConnectionResetError, match="injected"):
            await corral.fault_point("db.query", "conn")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await corral.fault_point("net.send")
        assert loop.time() - start == pytest.approx(5)
    finally:
        uninstall()
    assert not FAULTS.active
    assert seen == [("db.query", "conn"), ("net.send", None)]
    uninstall()  # removing twice is harmless


async def test_delay_is_cancellable(virtual_clock: VirtualClock) -> None:
    async def stall(point: str, target: object) -> None:
        await asyncio.sleep(100)

    uninstall = FAULTS.install(stall)
    try:
        with corral.move_on_after(1) as scope:
            await corral.fault_point("slow")
    finally:
        uninstall()
    assert scope.cancelled_caught


def test_one_injector_at_a_time() -> None:
    async def injector(point: str, target: object) -> None:
        pass

    uninstall = FAULTS.install(injector)
    try:
        with pytest.raises(UsageError, match="already installed"):
            FAULTS.install(injector)
    finally:
        uninstall()


async def test_bad_arguments() -> None:
    with pytest.raises(ArgumentTypeError, match="string"):
        await corral.fault_point(42)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="async callable"):
        FAULTS.install("nope")  # type: ignore[arg-type]
