"""Stream time operators on the virtual clock: exact times for chunk windows, throttle,
debounce and the per-item timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from stream_sources import at, stamped

import corral
from corral import Stream
from corral.errors import DeadlineExceeded
from corral.testing import VirtualClock

pytestmark = pytest.mark.usefixtures("virtual_clock")


async def test_chunk_with_timeout_flushes_a_partial_chunk_after_its_first_item() -> None:
    stream = Stream(at(0, 0.1, 0.2, 0.3, 5, 5.5, 9)).chunk(3, timeout=1)
    assert await stamped(stream) == [
        (0.2, [0, 0.1, 0.2]),  # full
        (1.3, [0.3]),  # one second after its first item
        (6, [5, 5.5]),
        (9, [9]),  # the source ended: what is there goes at once
    ]


async def test_chunk_timeout_waits_for_a_first_item_before_timing() -> None:
    assert await stamped(Stream(at(10, 10.5)).chunk(5, timeout=2)) == [(10.5, [10, 10.5])]


async def test_chunk_timeout_raises_an_upstream_error_at_once() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(0.5)
        raise ValueError("broke")

    loop = asyncio.get_running_loop()
    with pytest.raises(ValueError, match="broke"):
        await Stream(failing()).chunk(5, timeout=2).list()
    assert loop.time() == 0.5


async def test_throttle_spaces_items_evenly_from_the_first() -> None:
    assert await stamped(Stream(range(5)).throttle(4, per=2)) == [
        (0, 0),
        (0.5, 1),
        (1.0, 2),
        (1.5, 3),
        (2.0, 4),
    ]


async def test_throttle_lets_slow_items_through_without_waiting() -> None:
    assert await stamped(Stream(at(0, 3, 3.1, 10)).throttle(5)) == [
        (0, 0),
        (3, 3),
        (3.2, 3.1),  # 0.2 s after the one before
        (10, 10),
    ]


async def test_throttle_refuses_a_wait_past_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(DeadlineExceeded):
        with corral.fail_after(1.5):
            async for _ in Stream(range(10)).throttle(1):
                pass
    assert loop.time() == 1  # items at 0 and 1; the one at 2 is past the deadline


async def test_debounce_keeps_the_items_followed_by_quiet() -> None:
    stream = Stream(at(0, 0.1, 0.2, 2, 2.4, 5)).debounce(0.5)
    assert await stamped(stream) == [
        (0.7, 0.2),  # 0 and 0.1 were replaced within 0.5 s
        (2.9, 2.4),
        (5, 5),  # the source ended: the last item goes at once
    ]


async def test_debounce_of_an_empty_stream_is_empty() -> None:
    assert await Stream(at()).debounce(1).list() == []


async def test_timeout_raises_naming_the_item_and_the_wait(virtual_clock: VirtualClock) -> None:
    received: list[float] = []
    with pytest.raises(DeadlineExceeded, match=r"stream item 3 did not arrive within 1.5 s"):
        async for item in Stream(at(1, 2, 5)).timeout(1.5):
            received.append(item)
    assert received == [1, 2]
    assert virtual_clock.time() == 3.5  # 1.5 s after asking for the third


async def test_timeout_times_each_wait_from_the_request() -> None:
    async def consume() -> list[float]:
        got = []
        async for item in Stream(at(1, 2.5, 4)).timeout(1.5):
            got.append(item)
            await asyncio.sleep(0.5)  # the consumer's own time does not count
        return got

    assert await consume() == [1, 2.5, 4]


async def test_timeout_is_a_timeout_error_and_closes_the_source() -> None:
    closed = []

    async def source() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(10)
            yield 2
        finally:
            closed.append(True)

    with pytest.raises(TimeoutError):
        await Stream(source()).map(str).timeout(2).list()
    assert closed == [True]
