"""``select`` over four channels of which one is ready, against one plain ``receive``."""

from __future__ import annotations

import math

from benchmarks._harness import AtMost, Workload, async_case


async def corral_select(n: int) -> None:
    """corral: ``select`` on four channels' receive cases (built once); one has items."""
    from corral import Channel, select

    channels: list[Channel[int]] = [Channel(math.inf) for _ in range(4)]
    ready = channels[2]
    for i in range(n):
        ready.send_nowait(i)
    cases = [channel.receive_case() for channel in channels]
    for _ in range(n):
        await select(*cases)


async def corral_receive(n: int) -> None:
    """corral: a plain ``receive`` on the one channel that has items."""
    from corral import Channel

    channel: Channel[int] = Channel(math.inf)
    for i in range(n):
        channel.send_nowait(i)
    for _ in range(n):
        await channel.receive()


SELECT = "corral select, 4 channels"
RECEIVE = "corral receive"

WORKLOAD = Workload(
    name="select",
    title="select over four channels, one ready, against a plain receive",
    n=200_000,
    smoke_n=500,
    unit="selects",
    baseline=RECEIVE,
    cases=(async_case(SELECT, corral_select), async_case(RECEIVE, corral_receive)),
    floors=(AtMost(SELECT, RECEIVE, 3),),
)
