"""Load 1,000 keys through a batching loader in rounds: n loads in all, cache on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks._harness import FloorResult, TimesFaster, Workload, async_case

KEYS = 1_000
ROUND = list(range(KEYS))

#: The batch calls each case made in its last run, by case name (checked by a floor).
BATCH_CALLS: dict[str, int] = {}


def _rounds(n: int) -> int:
    return max(1, n // KEYS)


async def _batch(keys: Sequence[int]) -> list[int]:
    return [key * 2 for key in keys]


async def corral_load_many(n: int) -> None:
    """corral: ``await loader.load_many(keys)`` per round."""
    from corral import DataLoader

    loader = DataLoader(_batch)
    for _ in range(_rounds(n)):
        await loader.load_many(ROUND)
    BATCH_CALLS[CORRAL] = loader.statistics().batches


async def corral_gather(n: int) -> None:
    """corral: ``await asyncio.gather(*map(loader.load, keys))`` per round."""
    from corral import DataLoader

    loader = DataLoader(_batch)
    for _ in range(_rounds(n)):
        await asyncio.gather(*map(loader.load, ROUND))
    BATCH_CALLS[CORRAL_GATHER] = loader.statistics().batches


def _aiodataloader() -> tuple[Any, list[int]]:
    from aiodataloader import DataLoader

    calls = [0]

    async def batch(keys: list[int]) -> list[int]:
        calls[0] += 1
        return await _batch(keys)

    return DataLoader(batch), calls


async def aiodataloader_load_many(n: int) -> None:
    """aiodataloader: ``await loader.load_many(keys)`` per round."""
    loader, calls = _aiodataloader()
    for _ in range(_rounds(n)):
        await loader.load_many(ROUND)
    BATCH_CALLS[AIODATALOADER] = calls[0]


async def aiodataloader_gather(n: int) -> None:
    """aiodataloader: ``await asyncio.gather(*map(loader.load, keys))`` per round."""
    loader, calls = _aiodataloader()
    for _ in range(_rounds(n)):
        await asyncio.gather(*map(loader.load, ROUND))
    BATCH_CALLS[AIODATALOADER_GATHER] = calls[0]


@dataclass(frozen=True, slots=True)
class NoMoreBatchCalls:
    """``case`` called its batch function no more often than ``other`` did."""

    case: str
    other: str

    @property
    def text(self) -> str:
        return f"{self.case} makes no more batch calls than {self.other}"

    def judge(self, best: dict[str, float]) -> FloorResult:
        if self.case not in BATCH_CALLS or self.other not in BATCH_CALLS:
            return FloorResult(self.text, None, "not run")
        mine, theirs = BATCH_CALLS[self.case], BATCH_CALLS[self.other]
        return FloorResult(self.text, mine <= theirs, f"{mine} vs {theirs} batch calls")


CORRAL = "corral load_many"
AIODATALOADER = "aiodataloader load_many"
CORRAL_GATHER = "corral gather(load)"
AIODATALOADER_GATHER = "aiodataloader gather(load)"

WORKLOAD = Workload(
    name="dataloader",
    title="Load 1,000 keys per round, batched and cached: round 1 is one batch call, then hits",
    n=100_000,
    smoke_n=2_000,
    unit="loads",
    baseline=AIODATALOADER,
    cases=(
        async_case(CORRAL, corral_load_many),
        async_case(AIODATALOADER, aiodataloader_load_many),
        async_case(CORRAL_GATHER, corral_gather),
        async_case(AIODATALOADER_GATHER, aiodataloader_gather),
    ),
    floors=(
        TimesFaster(CORRAL, AIODATALOADER, 2),
        NoMoreBatchCalls(CORRAL, AIODATALOADER),
        NoMoreBatchCalls(CORRAL_GATHER, AIODATALOADER_GATHER),
    ),
)
