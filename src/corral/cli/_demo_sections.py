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


@section(
    "channels",
    "Channels and select",
    "Go-style channels: a rendezvous or a buffer, close() that lets receivers drain, and "
    "select over several channel operations, a timeout and a default case.",
    requires=("Channel", "select", "timeout_case", "default_case"),
)
def channels() -> None:
    import asyncio

    import corral

    async def main() -> None:
        jobs = corral.Channel[int](2)
        results = corral.Channel[str]()  # a rendezvous: each send waits for a receiver

        async def worker(name: str) -> None:
            async for job in jobs:
                await results.send(f"{name} squared {job}: {job * job}")

        async with corral.TaskGroup() as tg:
            tg.start_soon(worker, "w1")
            tg.start_soon(worker, "w2")
            for job in range(1, 5):
                await jobs.send(job)
            jobs.close()  # the workers drain the buffer, then their loops end
            lines = [await results.receive() for _ in range(4)]
        print(*sorted(lines), sep="\n")

        quiet = corral.Channel[str]()
        picked = await corral.select(
            quiet.receive_case(), corral.timeout_case(0.01), corral.default_case()
        )
        print("nothing ready, so the default case fired: case", picked.index, repr(picked.case))
        picked = await corral.select(quiet.receive_case(), corral.timeout_case(0.01))
        print("then the timeout fired: case", picked.index, repr(picked.case))
        print(repr(jobs))

    asyncio.run(main())


@section(
    "threads",
    "Threads and the sync/async boundary",
    "to_thread runs blocking code in a worker that sees a CancelToken; BridgeChannel "
    "carries items between plain threads and tasks with the same close semantics.",
    requires=("to_thread", "from_thread", "BridgeChannel"),
)
def threads() -> None:
    import asyncio
    import threading
    import time

    import corral

    def blocking_sum(n: int) -> int:
        total = 0
        for i in range(n):
            corral.from_thread.check_cancelled()  # a safe point to stop at
            total += i
        return total

    def slow_poll() -> str:
        for _ in range(1000):
            corral.from_thread.check_cancelled()
            time.sleep(0.001)
        return "finished"

    def produce(bridge: corral.BridgeChannel[int]) -> None:
        for i in range(5):
            bridge.put(i)  # blocking put, from a plain thread
        bridge.close()

    async def main() -> None:
        print("to_thread:", await corral.to_thread(blocking_sum, 1_000))
        with corral.move_on_after(0.02) as scope:
            await corral.to_thread(slow_poll)
        print("cancelled through the thread's token:", scope.cancelled_caught)

        bridge = corral.BridgeChannel[int](2)
        thread = threading.Thread(target=produce, args=(bridge,))
        thread.start()
        print("from a thread, via BridgeChannel:", [item async for item in bridge])
        thread.join()

    asyncio.run(main())


@section(
    "simulation",
    "Finding races with the simulation loop",
    "The simulation loop runs a program under seeded task orders. It finds a lost "
    "update that plain asyncio never shows, and the seed replays it exactly.",
    requires=("testing.Simulation", "testing.simulate"),
)
def simulation() -> None:
    import asyncio

    from corral.testing import Simulation, simulate

    async def deposit_and_fee(locked: bool) -> int:
        balance = {"alice": 100}
        lock = asyncio.Lock()

        async def update(delta: int) -> None:
            await asyncio.sleep(0)  # read: a round trip to the store
            seen = balance["alice"]
            await asyncio.sleep(0)  # write: another round trip
            balance["alice"] = seen + delta

        async def change(delta: int) -> None:
            if locked:
                async with lock:
                    await update(delta)
            else:
                await update(delta)

        async def fee() -> None:
            await asyncio.sleep(0)  # looks the fee up first
            await change(-10)

        async with asyncio.TaskGroup() as group:
            group.create_task(change(50))
            group.create_task(fee())
        return balance["alice"]

    print("plain asyncio:", asyncio.run(deposit_and_fee(False)))
    for seed in range(100):
        sim = Simulation(seed=seed)
        balance = sim.run(deposit_and_fee, False)
        if balance != 140:
            print(f"seed {seed} loses the deposit: {balance}")
            replayed = simulate(deposit_and_fee, False, schedule=sim.schedule)
            print("replaying its schedule gives", replayed, "again")
            break
    fixed = {simulate(deposit_and_fee, True, seed=seed) for seed in range(100)}
    print("with a lock, 100 seeds agree:", fixed)


@section(
    "limits-and-retries",
    "Limits and retries",
    "Limiter bounds how many run at once, RateLimiter how many start per second (GCRA), "
    "and retry backs off with jitter, never retrying cancellation or sleeping past a deadline.",
    requires=("Limiter", "RateLimiter", "retry"),
)
def limits_and_retries() -> None:
    import asyncio

    import corral
    import corral.testing

    async def main() -> None:
        loop = asyncio.get_running_loop()
        limiter = corral.Limiter(2)
        running = peak = 0

        async def job() -> None:
            nonlocal running, peak
            async with limiter:
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(1)
                running -= 1

        async with corral.TaskGroup() as tg:
            for _ in range(6):
                tg.start_soon(job)
        print(f"Limiter(2): 6 jobs of 1 s took {loop.time():g} s, at most {peak} at once")

        rate = corral.RateLimiter(5, per=1.0, burst=1)
        start = loop.time()
        admitted = []
        for _ in range(4):
            await rate.acquire()
            admitted.append(round(loop.time() - start, 2))
        print("RateLimiter(5/s, burst 1) admitted at", admitted)

        calls = 0

        @corral.retry(attempts=4, wait_initial=0.5, wait_jitter=False, on=ConnectionError)
        async def flaky() -> str:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise ConnectionError("try again")
            return "connected"

        start = loop.time()
        result = await flaky()
        print(f"retry: {result} after {calls} calls, waited {loop.time() - start:g} s")

    corral.testing.run(main)  # virtual time: the waits above take no real time


@section(
    "mapping-and-pipelines",
    "Bounded mapping and pipelines",
    "amap runs a function over many inputs with a concurrency limit, pulling inputs only as "
    "capacity frees; Stream chains map/filter/chunk/... stages and closes every one of them.",
    requires=("amap", "map_all", "Stream"),
)
def mapping_and_pipelines() -> None:
    import asyncio
    import itertools

    import corral
    import corral.testing

    async def fetch(page: int) -> str:
        await asyncio.sleep(0.1)
        return f"page {page}"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pages = await corral.map_all(fetch, range(50), limit=10)
        print(f"map_all: {len(pages)} pages of 0.1 s, 10 at a time, in {loop.time():g} s")

        endless = itertools.count()  # amap pulls only what it can run
        first: list[str] = []
        async with corral.amap(fetch, endless, limit=5, ordered=True) as results:
            async for page in results:
                first.append(page)
                if len(first) == 3:
                    break  # leaving the block cancels the calls still running
        print("amap over an endless source, first three:", first, f"({next(endless)} pulled)")

        batches = await (
            corral.Stream(range(1, 21))
            .filter(lambda n: n % 3 != 0)
            .map(lambda n: n * n)
            .chunk(5)
            .list()
        )
        print("Stream filter | map | chunk(5):", batches)

    corral.testing.run(main)  # virtual time: the sleeps above take no real time


@section(
    "resilience",
    "Resilience: breaker, hedging, policies",
    "A CircuitBreaker fails fast while a dependency is down; hedge starts a second attempt "
    "when the first is slow; policy() composes the stages in one documented order.",
    requires=("CircuitBreaker", "hedge", "policy", "Fallback", "Timeout"),
)
def resilience() -> None:
    import asyncio
    import contextlib

    import corral
    import corral.testing
    from corral.errors import CircuitOpenError

    async def down() -> str:
        raise ConnectionError("dependency is down")

    async def main() -> None:
        breaker = corral.CircuitBreaker("inventory", window_calls=10, minimum_calls=4)
        for _ in range(6):
            with contextlib.suppress(ConnectionError, CircuitOpenError):
                await breaker.call(down)
        stats = breaker.statistics()
        print(f"breaker: {stats.state.value} after 4 failures, {stats.rejected} calls rejected")

        attempts = 0

        async def sometimes_slow() -> str:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(5 if attempts == 1 else 0.05)  # the first copy is slow
            return f"answer from attempt {attempts}"

        loop = asyncio.get_running_loop()
        start = loop.time()
        answer = await corral.hedge(sometimes_slow, delay=0.1)
        print(f"hedge: {answer} after {loop.time() - start:.2f} s, the slow one cancelled")

        resilient = corral.policy(
            corral.Fallback(value="cached answer"),
            corral.retry(attempts=2, wait_jitter=False),
            corral.Timeout(1.0),
        )
        print("policy(fallback, retry, timeout):", await resilient.run(down))

    corral.testing.run(main)


@section(
    "caching-and-pools",
    "Batching, caching and pools",
    "DataLoader turns loads issued together into one batch call; cached keeps answers (LRU, "
    "TTL) and lets concurrent misses of one key share a call; Pool lends reusable objects.",
    requires=("DataLoader", "cached", "Pool"),
)
def caching_and_pools() -> None:
    import asyncio

    import corral
    import corral.testing

    async def main() -> None:
        batches: list[list[int]] = []

        async def users_by_id(ids: list[int]) -> list[str]:
            batches.append(ids)
            return [f"user {user_id}" for user_id in ids]

        users = corral.DataLoader(users_by_id)
        names = await corral.all(users.load(post % 4) for post in range(12))
        print(f"DataLoader: 12 loads ({names[0]!r}, ...) made {len(batches)} call: {batches}")

        calls = 0

        @corral.cached(ttl=60)
        async def user(user_id: int) -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return f"user {user_id}"

        await corral.all(user(i % 3) for i in range(30))
        stats = user.statistics()
        print(f"cached: 30 lookups of 3 users made {calls} calls ({stats.coalesced} shared one)")

        created = 0

        async def connect() -> str:
            nonlocal created
            created += 1
            return f"connection {created}"

        async with corral.Pool(connect, max_size=2) as pool:

            async def query(n: int) -> None:
                async with pool.acquire():
                    await asyncio.sleep(0.01)

            await corral.all(query(n) for n in range(10))
            print(f"Pool(max_size=2): 10 queries used {created} connections;", repr(pool))

    corral.testing.run(main)


@section(
    "adaptive-limits",
    "Adaptive concurrency",
    "AdaptiveLimiter tunes its own limit from the latency of the work it admits: here it "
    "finds the capacity of a server whose latency grows once more than 8 requests run.",
    requires=("AdaptiveLimiter", "Gradient"),
)
def adaptive_limits() -> None:
    import asyncio

    import corral
    import corral.testing

    async def main() -> None:
        in_flight = 0

        async def server() -> None:  # 10 ms up to 8 at once, slower beyond
            nonlocal in_flight
            in_flight += 1
            try:
                await asyncio.sleep(0.01 * max(1.0, in_flight / 8))
            finally:
                in_flight -= 1

        limiter = corral.AdaptiveLimiter(corral.Gradient(), initial=50, max_limit=200)

        async def client() -> None:
            for _ in range(200):
                async with limiter:
                    await server()

        async with corral.TaskGroup() as tg:
            for _ in range(100):
                tg.start_soon(client)
        print(f"limit started at 50 and settled at {limiter.statistics().limit}", repr(limiter))

    corral.testing.run(main)


@section(
    "event-store",
    "Event store on SQLite",
    "corral.connect('sqlite:///...') opens an event store in one file (WAL, fsync at commit, "
    "group commit): streams with optimistic concurrency, one global order, idempotent appends.",
    requires=("connect",),
)
def event_store() -> None:
    import asyncio
    import json
    import pathlib
    import tempfile

    import corral
    from corral.errors import ConcurrencyError
    from corral.eventsourcing import NO_STREAM, NewEvent

    def event(kind: str, **data: object) -> NewEvent:
        return NewEvent(kind, json.dumps(data).encode())

    async def main(path: pathlib.Path) -> None:
        async with corral.connect(f"sqlite:///{path}") as store:
            opened = event("AccountOpened", owner="ada")
            await store.append("account-1", [opened], expected_version=NO_STREAM)
            await store.append("account-1", [event("Deposited", amount=50)], expected_version=1)
            try:  # a writer that still believes the account is at version 1
                await store.append("account-1", [event("Withdrawn", amount=80)], expected_version=1)
            except ConcurrencyError as exc:
                print("conflict:", exc)
            again = await store.append("account-1", [opened], expected_version=NO_STREAM)
            print("retried append of the same event id is not duplicated:", again.positions)
            async for recorded in store.read_stream("account-1"):
                print(f"  v{recorded.version} #{recorded.position} {recorded.type}", end="")
                print(f" {json.loads(recorded.data)}")
            print(repr(store))

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(pathlib.Path(directory) / "bank.db"))


@section(
    "projections",
    "Projections and process managers",
    "A Projector keeps a read model and its checkpoint in one transaction; a ProcessRunner "
    "commits what a manager stages with its checkpoint: each event takes effect exactly once.",
    requires=("connect",),
)
def projections() -> None:
    import asyncio
    import json
    import pathlib
    import tempfile

    import corral
    from corral.backends.sqlite import SqliteReadModel, SqliteTransaction
    from corral.eventsourcing import (
        NewEvent,
        ProcessContext,
        ProcessManager,
        ProcessRunner,
        Projection,
        Projector,
        RecordedEvent,
    )

    def new_event(kind: str, **data: object) -> NewEvent:
        return NewEvent(kind, json.dumps(data).encode())

    class Revenue(Projection[SqliteTransaction]):
        name = "revenue"
        categories = ("order",)

        async def setup(self, tx: SqliteTransaction) -> None:
            await tx.execute("CREATE TABLE IF NOT EXISTS revenue (day TEXT PRIMARY KEY, cents INT)")

        async def reset(self, tx: SqliteTransaction) -> None:
            await tx.execute("DROP TABLE IF EXISTS revenue")

        async def apply(self, event: RecordedEvent, tx: SqliteTransaction) -> None:
            placed = json.loads(event.data)
            await tx.execute(
                "INSERT INTO revenue VALUES (?, ?) "
                "ON CONFLICT (day) DO UPDATE SET cents = cents + excluded.cents",
                (placed["day"], placed["cents"]),
            )

    class Invoicing(ProcessManager):
        name = "invoicing"
        categories = ("order",)

        async def handle(self, event: RecordedEvent, ctx: ProcessContext) -> None:
            placed = json.loads(event.data)
            ctx.append(
                f"invoice-{event.stream}", [new_event("InvoiceIssued", cents=placed["cents"])]
            )

    async def main(path: pathlib.Path) -> None:
        # The read model shares the store's file here; it may as well have its own.
        views = await SqliteReadModel.open(path)
        async with corral.connect(f"sqlite:///{path}") as store, views:
            for n, (day, cents) in enumerate([("mon", 1200), ("mon", 800), ("tue", 500)]):
                await store.append(f"order-{n}", [new_event("OrderPlaced", day=day, cents=cents)])
            projector = Projector(store, Revenue(), views)
            invoicing = ProcessRunner(store, Invoicing())
            print("projected", await projector.catch_up(), "events;", end=" ")
            print("invoiced", await invoicing.catch_up(), "orders")
            print("again:", await projector.catch_up(), "and", await invoicing.catch_up())
            print("revenue:", await views.fetchall("SELECT * FROM revenue ORDER BY day"))

            async with corral.TaskGroup() as group:  # both live from here on
                group.start_soon(projector.run)
                group.start_soon(invoicing.run)
                placed = await store.append(
                    "order-3", [new_event("OrderPlaced", day="tue", cents=700)]
                )
                await projector.wait_for_position(placed.positions[-1], timeout=10)
                await invoicing.wait_for_position(placed.positions[-1], timeout=10)
                group.cancel_scope.cancel()
            tuesday = await views.fetchone("SELECT cents FROM revenue WHERE day = 'tue'")
            print("read your writes: tuesday is now", tuesday)
            invoices = [e async for e in store.read_all() if e.stream.startswith("invoice-")]
            print(len(invoices), "invoices, one per order:", [e.stream for e in invoices])
            print("rebuilt from zero:", await projector.rebuild(), "events")
            print(projector)
            print(invoicing)

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(pathlib.Path(directory) / "shop.db"))
