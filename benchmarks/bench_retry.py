"""Call a retrying async function that succeeds on its first attempt; n calls in a row."""

from __future__ import annotations

from benchmarks._harness import TimesFaster, Workload, async_case


async def _work(value: int) -> int:
    return value


async def corral_retry(n: int) -> None:
    """corral: ``@corral.retry(attempts=3)`` on an async function."""
    import corral

    work = corral.retry(attempts=3)(_work)
    for i in range(n):
        await work(i)


async def tenacity_retry(n: int) -> None:
    """tenacity: ``@tenacity.retry(stop=stop_after_attempt(3))`` on an async function."""
    import tenacity

    work = tenacity.retry(stop=tenacity.stop_after_attempt(3))(_work)
    for i in range(n):
        await work(i)


async def tenacity_async_retrying(n: int) -> None:
    """tenacity: ``async for attempt in AsyncRetrying(...): with attempt: ...``."""
    import tenacity

    for i in range(n):
        async for attempt in tenacity.AsyncRetrying(stop=tenacity.stop_after_attempt(3)):
            with attempt:
                await _work(i)


async def stamina_retry(n: int) -> None:
    """stamina: ``@stamina.retry(on=Exception, attempts=3)`` on an async function."""
    import stamina

    work = stamina.retry(on=Exception, attempts=3)(_work)
    for i in range(n):
        await work(i)


CORRAL = "corral retry"
TENACITY = "tenacity @retry"
TENACITY_LOOP = "tenacity AsyncRetrying"
STAMINA = "stamina retry"

WORKLOAD = Workload(
    name="retry",
    title="Call a retrying async function that succeeds on the first attempt",
    n=100_000,
    smoke_n=100,
    unit="calls",
    baseline=TENACITY,
    cases=(
        async_case(CORRAL, corral_retry),
        async_case(TENACITY, tenacity_retry),
        async_case(TENACITY_LOOP, tenacity_async_retrying),
        async_case(STAMINA, stamina_retry),
    ),
    floors=(
        TimesFaster(CORRAL, TENACITY, 20),
        TimesFaster(CORRAL, TENACITY_LOOP, 20),
        TimesFaster(CORRAL, STAMINA, 20),
    ),
)
