"""Build a chain of 1M ``then`` steps on a pending promise, resolve it, get the end."""

from __future__ import annotations

from benchmarks._harness import TimesFaster, Workload, async_case, sync_case


def increment(value: int) -> int:
    """The step: one more."""
    return value + 1


async def corral_chain(n: int) -> None:
    """corral: n ``then(increment)`` steps, resolve the head, await the tail."""
    from corral import Promise

    head: Promise[int] = Promise()
    tail = head
    for _ in range(n):
        tail = tail.then(increment)
    head.resolve(0)
    assert await tail == n


def promise_package_chain(n: int) -> None:
    """The ``promise`` package: n ``then(increment)`` steps, resolve, ``get()`` the tail."""
    from promise import Promise

    head: Promise[int] = Promise()
    tail = head
    for _ in range(n):
        tail = tail.then(increment)
    head.do_resolve(0)
    assert tail.get() == n


CORRAL = "corral Promise.then"
PEER = "promise 2.3 Promise.then"

WORKLOAD = Workload(
    name="promise-chain",
    title="A long then-chain: build it, resolve the head, get the tail",
    n=1_000_000,
    smoke_n=1_000,
    unit="steps",
    baseline=PEER,
    cases=(async_case(CORRAL, corral_chain), sync_case(PEER, promise_package_chain)),
    floors=(TimesFaster(CORRAL, PEER, 5),),
)
