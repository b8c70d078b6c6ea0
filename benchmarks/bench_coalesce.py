"""Concurrent identical calls sharing one execution: rounds of 100 callers of one key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from benchmarks._harness import AtMost, Workload, async_case

CALLERS = 100


async def _work() -> int:
    await asyncio.sleep(0)
    return 1


def _rounds(n: int) -> int:
    return max(1, n // CALLERS)


async def corral_coalescer(n: int) -> None:
    """corral: ``await flights.do(key, work)`` from 100 tasks per round."""
    from corral import Coalescer

    flights = Coalescer()
    for key in range(_rounds(n)):
        await asyncio.gather(*[flights.do(key, _work) for _ in range(CALLERS)])


class DictOfFutures:
    """The usual hand-written singleflight: the first caller runs the call, the others
    await a future it resolves (a cancelled joiner cancels that shared future)."""

    def __init__(self) -> None:
        self.flights: dict[Hashable, asyncio.Future[Any]] = {}

    async def do(self, key: Hashable, fn: Callable[[], Awaitable[Any]]) -> Any:
        shared = self.flights.get(key)
        if shared is not None:
            return await shared
        shared = self.flights[key] = asyncio.get_running_loop().create_future()
        try:
            result = await fn()
        except Exception as error:
            shared.set_exception(error)
            shared.exception()  # retrieved: joiners, if any, raise it too
            raise
        finally:
            del self.flights[key]
        shared.set_result(result)
        return result


async def dict_of_futures(n: int) -> None:
    """hand-written: a dict of futures, as above, from 100 tasks per round."""
    flights = DictOfFutures()
    for key in range(_rounds(n)):
        await asyncio.gather(*[flights.do(key, _work) for _ in range(CALLERS)])


CORRAL = "corral Coalescer"
HAND_WRITTEN = "dict of futures"

WORKLOAD = Workload(
    name="coalesce",
    title="Share one execution among 100 concurrent callers of a key, round after round",
    n=20_000,
    smoke_n=200,
    unit="calls",
    baseline=HAND_WRITTEN,
    cases=(
        async_case(CORRAL, corral_coalescer),
        async_case(HAND_WRITTEN, dict_of_futures),
    ),
    floors=(AtMost(CORRAL, HAND_WRITTEN, 2),),
)
