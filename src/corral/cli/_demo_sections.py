"""The sections of ``corral demo``, in the order they are shown.

Each function's body is shown on screen and then run, so it is written as a complete
little program: it imports what it uses and drives its own event loop.
"""

from __future__ import annotations

from ._demo import section

__all__ = ()


@section(
    "promises",
    "Promises",
    "A Promise is settled once, from anywhere, and is a native asyncio awaitable. "
    "then/catch/finally_ chain like JavaScript's; catch can filter by exception type.",
    requires=("Promise",),
)
def promises() -> None:
    import asyncio

    from corral import Promise

    async def main() -> None:
        promise, resolve, _reject = Promise[int].with_resolvers()
        asyncio.get_running_loop().call_later(0.01, resolve, 21)
        print("awaited:", await promise.then(lambda n: n * 2))

        failed: Promise[str] = Promise.rejected(KeyError("user:7"))
        print("caught:", await failed.catch(lambda exc: f"no {exc}", on=KeyError))

        print("try_:", await Promise.try_(int, "not a number").catch(repr))
        print(repr(promise))

    asyncio.run(main())


@section(
    "combinators",
    "Combinators",
    "all, all_settled, any and race wait for many awaitables at once; a limit bounds "
    "how many run together. Inputs the combinator started are cancelled when it is done.",
    requires=("all", "all_settled", "any", "race", "all_keyed"),
)
def combinators() -> None:
    import asyncio

    import corral

    async def fetch(name: str, delay: float, *, fail: bool = False) -> str:
        await asyncio.sleep(delay)
        if fail:
            raise ConnectionError(f"{name} is down")
        return name

    async def main() -> None:
        both = await corral.all([fetch("a", 0.02), fetch("b", 0.01)])
        print("all:", both)
        keyed = await corral.all_keyed({"x": fetch("a", 0.01), "y": fetch("b", 0)})
        print("all_keyed:", keyed)
        settled = await corral.all_settled([fetch("a", 0), fetch("b", 0, fail=True)])
        print("all_settled:", settled)
        first_ok = await corral.any([fetch("down", 0, fail=True), fetch("up", 0.01)])
        print("any:", first_ok)
        first = await corral.race([fetch("slow", 0.05), fetch("fast", 0.01)])
        print("race:", first)

        running = peak = 0

        async def job(i: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001)
            running -= 1
            return i

        squares = await corral.all((job(i * i) for i in range(10)), limit=3)
        print(f"limit=3: {squares}, at most {peak} at once")

    asyncio.run(main())


@section(
    "cancellation",
    "Cancellation and timeouts",
    "Cancel scopes bound a block in time: move_on_after quietly stops it, fail_after "
    "raises DeadlineExceeded (a TimeoutError). A shielded scope finishes its cleanup.",
    requires=("move_on_after", "fail_after", "CancelScope", "current_effective_deadline"),
)
def cancellation() -> None:
    import asyncio

    import corral

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with corral.move_on_after(0.05) as scope:
            await asyncio.sleep(10)
        print("move_on_after: cut short =", scope.cancelled_caught)

        try:
            with corral.fail_after(0.05):
                await asyncio.sleep(10)
        except TimeoutError as exc:
            print(f"fail_after raised {type(exc).__name__} (a TimeoutError)")

        with corral.move_on_after(10), corral.move_on_after(0.05):
            left = corral.current_effective_deadline() - loop.time()
            print(f"the nearest deadline wins: {left:.2f} s left")

        async def cleanup() -> None:
            with corral.CancelScope(shield=True):
                await asyncio.sleep(0.05)
                print("shielded cleanup finished")

        with corral.move_on_after(0.01) as outer:
            await cleanup()
        print("outer scope cancelled:", outer.cancel_called)

    asyncio.run(main())


@section(
    "structured-concurrency",
    "Structured concurrency",
    "A TaskGroup owns its children: it waits for all of them, and when one fails it "
    "cancels the rest and raises every error together in an ExceptionGroup.",
    requires=("TaskGroup", "TaskStatus", "TASK_STATUS_IGNORED"),
)
def structured_concurrency() -> None:
    import asyncio

    import corral

    async def worker(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        print(f"  {name} done")
        return name

    async def server(*, task_status: corral.TaskStatus[int] = corral.TASK_STATUS_IGNORED) -> None:
        task_status.started(8080)  # ready: start() returns 8080
        await asyncio.sleep(3600)

    async def broken() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("broken worker")

    async def main() -> None:
        async with corral.TaskGroup() as tg:
            tg.start_soon(worker, "slow", 0.02)
            tg.start_soon(worker, "fast", 0.01)
            handle = tg.create_task(worker("handle", 0))
        print("all children done; handle.result() =", handle.result())

        async with corral.TaskGroup() as tg:
            port = await tg.start(server)
            print("server ready on port", port)
            tg.cancel(reason="demo over")
        print("server cancelled with the group")

        try:
            async with corral.TaskGroup() as tg:
                tg.start_soon(worker, "never finishes", 3600)
                tg.start_soon(broken)
        except* ValueError as group:
            print("sibling cancelled; errors:", group.exceptions)

    asyncio.run(main())


@section(
    "virtual-time",
    "Virtual time",
    "corral.testing runs code on an event loop with a virtual clock that jumps to the next "
    "timer whenever every task is waiting: an hour of timeouts takes microseconds.",
    requires=("testing.run", "move_on_after"),
)
def virtual_time() -> None:
    import asyncio
    import time

    import corral
    import corral.testing

    async def main() -> float:
        with corral.move_on_after(30) as scope:
            await asyncio.sleep(3600)
        print("cut short after 30 s:", scope.cancelled_caught)
        await asyncio.sleep(0.5)
        return asyncio.get_running_loop().time()

    started = time.perf_counter()
    virtual = corral.testing.run(main)
    real = time.perf_counter() - started
    print(f"virtual time: {virtual} s; real time: {real * 1000:.1f} ms")


@section(
    "go-helpers",
    "Go-style helpers",
    "ErrGroup stops at the first error and bounds how many tasks run at once; Once runs "
    "an async function a single time for every caller; WaitGroup counts work in flight.",
    requires=("ErrGroup", "Once", "WaitGroup"),
)
def go_helpers() -> None:
    import asyncio

    import corral

    async def main() -> None:
        running = peak = 0

        async def fetch(n: int) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001)
            running -= 1
            if n == 7:
                raise ConnectionError(f"page {n} failed")

        try:
            async with corral.ErrGroup(limit=3) as group:
                for n in range(10):
                    await group.go(fetch, n)
        except ConnectionError as exc:
            print(f"ErrGroup raised the first error as it is: {exc!r}; peak {peak} at once")

        once: corral.Once[str] = corral.Once()
        connects = 0

        async def connect() -> str:
            nonlocal connects
            connects += 1
            await asyncio.sleep(0.001)
            return "connection #1"

        shared = await corral.all([once.do(connect) for _ in range(5)])
        print(f"Once: 5 callers got {set(shared)}; connect() ran {connects} time(s)")

        pending = corral.WaitGroup()
        pending.add(3)
        loop = asyncio.get_running_loop()
        for delay in (0.003, 0.001, 0.002):
            loop.call_later(delay, pending.done)  # plain callbacks, not tasks
        await pending.wait()
        print("WaitGroup: all 3 callbacks done;", repr(pending))

    asyncio.run(main())
