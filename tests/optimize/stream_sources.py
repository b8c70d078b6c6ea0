"""Timed sources for the Stream tests on the virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from corral import Stream


async def at(*times: float) -> AsyncIterator[float]:
    """Yields each time in ``times`` (increasing) at that loop time."""
    loop = asyncio.get_running_loop()
    for when in times:
        await asyncio.sleep(when - loop.time())
        yield when


async def stamped(stream: Stream[Any]) -> list[tuple[float, Any]]:
    """Each item of ``stream`` with the loop time the consumer received it at."""
    loop = asyncio.get_running_loop()
    return [(loop.time(), item) async for item in stream]
