"""A map / filter / chunk pipeline over n integers: double, keep those not divisible by 3,
group by 100; the consumer counts the chunks."""

from __future__ import annotations

from benchmarks._harness import TimesFaster, Workload, async_case


def double(x: int) -> int:
    return x * 2


def not_divisible_by_3(x: int) -> bool:
    return x % 3 != 0


async def corral_stream(n: int) -> None:
    """corral: ``Stream(range(n)).map(double).filter(...).chunk(100)``, read with ``async for``."""
    from corral import Stream

    chunks = 0
    async for _ in Stream(range(n)).map(double).filter(not_divisible_by_3).chunk(100):
        chunks += 1


async def aiostream_pipe(n: int) -> None:
    """aiostream: ``stream.iterate(range(n)) | pipe.map | pipe.filter | pipe.chunks(100)``."""
    from aiostream import pipe, stream

    chunks = 0
    pipeline = (
        stream.iterate(range(n))
        | pipe.map(double)  # type: ignore[arg-type]
        | pipe.filter(not_divisible_by_3)
        | pipe.chunks(100)
    )
    async with pipeline.stream() as items:
        async for _ in items:
            chunks += 1


async def hand_written(n: int) -> None:
    """A hand-written async generator doing the same, read with ``async for``."""

    async def pipeline() -> object:
        chunk: list[int] = []
        for x in range(n):
            y = double(x)
            if not_divisible_by_3(y):
                chunk.append(y)
                if len(chunk) == 100:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    chunks = 0
    async for _ in pipeline():  # type: ignore[attr-defined]
        chunks += 1


CORRAL = "corral Stream"
AIOSTREAM = "aiostream pipe"
HAND = "hand-written async generator"

WORKLOAD = Workload(
    name="pipeline",
    title="map / filter / chunk(100) pipeline over a range (sync functions)",
    n=1_000_000,
    smoke_n=1_000,
    unit="items",
    baseline=HAND,
    cases=(
        async_case(CORRAL, corral_stream),
        async_case(AIOSTREAM, aiostream_pipe),
        async_case(HAND, hand_written),
    ),
    floors=(TimesFaster(CORRAL, AIOSTREAM, 2),),
)
