"""Call an async function through a closed circuit breaker that never trips; n calls."""

from __future__ import annotations

from benchmarks._harness import TimesFaster, Workload, async_case


async def _work(value: int) -> int:
    return value


async def plain_call(n: int) -> None:
    """No breaker: the bare ``await`` of the function, for context."""
    for i in range(n):
        await _work(i)


async def corral_decorated(n: int) -> None:
    """corral: a function decorated with ``@corral.CircuitBreaker(...)``."""
    import corral

    work = corral.CircuitBreaker("bench")(_work)
    for i in range(n):
        await work(i)


async def corral_call(n: int) -> None:
    """corral: ``await breaker.call(fn, i)``."""
    import corral

    breaker = corral.CircuitBreaker("bench")
    for i in range(n):
        await breaker.call(_work, i)


async def purgatory_decorated(n: int) -> None:
    """purgatory: ``@AsyncCircuitBreakerFactory()(name)`` with its in-memory unit of work."""
    import purgatory

    factory = purgatory.AsyncCircuitBreakerFactory()
    await factory.initialize()
    work = factory("bench")(_work)
    for i in range(n):
        await work(i)


async def aiobreaker_call(n: int) -> None:
    """aiobreaker: ``await breaker.call_async(fn, i)``."""
    import aiobreaker

    breaker = aiobreaker.CircuitBreaker()
    for i in range(n):
        await breaker.call_async(_work, i)


PLAIN = "plain await"
CORRAL = "corral @CircuitBreaker"
CORRAL_CALL = "corral breaker.call"
PURGATORY = "purgatory breaker"
AIOBREAKER = "aiobreaker call_async"

WORKLOAD = Workload(
    name="breaker",
    title="Call an async function through a closed circuit breaker",
    n=100_000,
    smoke_n=100,
    unit="calls",
    baseline=PURGATORY,
    cases=(
        async_case(PLAIN, plain_call),
        async_case(CORRAL, corral_decorated),
        async_case(CORRAL_CALL, corral_call),
        async_case(PURGATORY, purgatory_decorated),
        async_case(AIOBREAKER, aiobreaker_call),
    ),
    floors=(
        TimesFaster(CORRAL, PURGATORY, 2.5),
        TimesFaster(CORRAL_CALL, AIOBREAKER, 2),
    ),
)
