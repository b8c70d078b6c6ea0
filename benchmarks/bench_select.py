"""``select`` over four channels of which one is ready, against one plain ``receive``.

Two ways to select: ``select(*cases)`` with the cases built once, and a ``Selector``
built once over the same cases (the floor is the selector's: a loop that selects over
fixed cases is what it is for).

Only the selects (or receives) are timed: filling the channels first is setup, and
timing it too would add the same cost to both sides and flatter the ratio.
"""

from __future__ import annotations

import asyncio
import math
import time

from benchmarks._harness import AtMost, Workload, timed_case


async def _select_loop(n: int) -> float:
    from corral import Channel, select

    channels: list[Channel[int]] = [Channel(math.inf) for _ in range(4)]
    ready = channels[2]
    for i in range(n):
        ready.send_nowait(i)
    cases = [channel.receive_case() for channel in channels]
    start = time.perf_counter()
    for _ in range(n):
        await select(*cases)
    return time.perf_counter() - start


async def _selector_loop(n: int) -> float:
    from corral import Channel, Selector

    channels: list[Channel[int]] = [Channel(math.inf) for _ in range(4)]
    ready = channels[2]
    for i in range(n):
        ready.send_nowait(i)
    selector = Selector(*(channel.receive_case() for channel in channels))
    start = time.perf_counter()
    for _ in range(n):
        await selector.select()
    return time.perf_counter() - start


async def _receive_loop(n: int) -> float:
    from corral import Channel

    channel: Channel[int] = Channel(math.inf)
    for i in range(n):
        channel.send_nowait(i)
    start = time.perf_counter()
    for _ in range(n):
        await channel.receive()
    return time.perf_counter() - start


def corral_select(n: int) -> float:
    """corral: ``select`` on four channels' receive cases (built once); one has items."""
    return asyncio.run(_select_loop(n))


def corral_selector(n: int) -> float:
    """corral: ``Selector.select`` over the same four receive cases."""
    return asyncio.run(_selector_loop(n))


def corral_receive(n: int) -> float:
    """corral: a plain ``receive`` on the one channel that has items."""
    return asyncio.run(_receive_loop(n))


SELECT = "corral select, 4 channels"
SELECTOR = "corral Selector.select, 4 channels"
RECEIVE = "corral receive"

WORKLOAD = Workload(
    name="select",
    title="select over four channels, one ready, against a plain receive",
    n=200_000,
    smoke_n=500,
    unit="selects",
    baseline=RECEIVE,
    cases=(
        timed_case(SELECTOR, corral_selector),
        timed_case(SELECT, corral_select),
        timed_case(RECEIVE, corral_receive),
    ),
    floors=(AtMost(SELECTOR, RECEIVE, 3),),
)
