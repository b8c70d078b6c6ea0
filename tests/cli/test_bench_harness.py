"""The benchmark harness: timing, interleaving, floors and reports."""

from __future__ import annotations

import asyncio
import json

import pytest

from corral.cli._bench import find_checkout
from corral.errors import InvalidArgumentError

find_checkout()

from benchmarks import _harness  # noqa: E402
from benchmarks._harness import (  # noqa: E402
    AtMost,
    OverheadAtMost,
    TimesFaster,
    Workload,
    async_case,
    sync_case,
    timed_case,
)


def fixed(seconds: float) -> _harness.Case:
    return timed_case(f"fixed {seconds}", lambda _n: seconds)


def test_floors_judge_ratios_speedups_and_overheads() -> None:
    best = {"a": 1.0, "b": 2.0}
    assert AtMost("a", "b", 0.5).judge(best).held is True
    assert AtMost("b", "a", 1.5).judge(best).held is False
    assert AtMost("b", "a", 1.5).judge(best).detail == "2.00x"
    assert TimesFaster("a", "b", 2).judge(best).held is True
    assert TimesFaster("a", "b", 2.5).judge(best).held is False
    assert OverheadAtMost("b", "a", 1.0).judge(best).held is True
    assert OverheadAtMost("b", "a", 0.5).judge(best).held is False
    assert OverheadAtMost("b", "a", 0.5).judge(best).detail == "+1000.0 ms"


def test_a_floor_with_a_case_that_did_not_run_is_not_judged() -> None:
    verdict = AtMost("a", "missing", 1).judge({"a": 1.0})
    assert verdict.held is None
    assert verdict.detail == "not run: missing"
    assert _harness.floor_verdict(verdict) == "not judged"
    held = AtMost("a", "a", 1).judge({"a": 1.0})
    assert _harness.floor_verdict(held) == "holds"
    assert _harness.floor_verdict(held, smoke=True) == "not judged (smoke run)"


def test_floor_texts_say_the_claim() -> None:
    assert AtMost("corral", "asyncio", 1.2).text == "corral <= 1.2x asyncio"
    assert TimesFaster("corral", "anyio", 4).text == "corral >= 4x faster than anyio"
    assert OverheadAtMost("corral", "asyncio", 0.03).text == "corral <= asyncio + 30 ms"


def test_a_workload_rejects_inconsistent_declarations() -> None:
    one, two = fixed(1), fixed(2)
    with pytest.raises(InvalidArgumentError, match="duplicate case names"):
        Workload("w", "t", 1, 1, "x", one.name, (one, one))
    with pytest.raises(InvalidArgumentError, match="baseline 'nope'"):
        Workload("w", "t", 1, 1, "x", "nope", (one, two))
    with pytest.raises(InvalidArgumentError, match="names 'ghost'"):
        Workload("w", "t", 1, 1, "x", one.name, (one, two), (AtMost("ghost", one.name, 1),))


def test_cases_run_interleaved_best_of_repeat() -> None:
    order: list[str] = []
    times = {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 6.0, 4.0])}

    def case(name: str) -> _harness.Case:
        def measure(n: int) -> float:
            order.append(name)
            return next(times[name])

        return timed_case(name, measure)

    workload = Workload("w", "t", 10, 1, "x", "b", (case("a"), case("b")), (AtMost("a", "b", 1),))
    report = _harness.run([workload], repeat=3)
    assert order == ["a", "b", "a", "b", "a", "b"]
    result = report.workloads[0]
    assert [case.best for case in result.cases] == [1.0, 4.0]
    assert result.ratio(result.cases[0]) == 0.25
    assert result.floors[0].held is True
    assert report.ok


def test_smoke_runs_use_the_small_size_once_and_never_fail_on_floors() -> None:
    sizes: list[int] = []

    def measure(n: int) -> float:
        sizes.append(n)
        return 1.0

    slow = timed_case("slow", measure)
    workload = Workload(
        "w", "t", 1000, 3, "x", "fixed 0.1", (slow, fixed(0.1)), (AtMost("slow", "fixed 0.1", 1),)
    )
    smoke = _harness.run([workload], smoke=True)
    assert sizes == [3]
    assert smoke.repeat == 1
    assert smoke.workloads[0].floors[0].held is False
    assert smoke.ok
    assert "-> not judged (smoke run)" in _harness.to_text(smoke)
    full = _harness.run([workload], repeat=1)
    assert sizes == [3, 1000]
    assert not full.ok


def test_an_import_error_marks_the_case_unavailable_and_other_errors_fail() -> None:
    def missing(n: int) -> float:
        raise ImportError("No module named 'peer'")

    def broken(n: int) -> float:
        raise RuntimeError("bug")

    workload = Workload(
        "w",
        "t",
        1,
        1,
        "x",
        "fixed 1",
        (fixed(1), timed_case("missing", missing), timed_case("broken", broken)),
        (AtMost("missing", "fixed 1", 1),),
    )
    report = _harness.run([workload], repeat=2)
    fine, unavailable, failed = report.workloads[0].cases
    assert fine.times == [1, 1]
    assert unavailable.unavailable == "No module named 'peer'"
    assert unavailable.times == []
    assert failed.error == "RuntimeError: bug"
    assert report.workloads[0].floors[0].held is None
    assert not report.ok


def test_a_case_that_raises_case_unavailable_is_unavailable() -> None:
    def needs_a_service(n: int) -> float:
        raise _harness.CaseUnavailable("redis is not reachable at 127.0.0.1:6379")

    workload = Workload(
        "w", "t", 1, 1, "x", "fixed 1", (fixed(1), timed_case("service", needs_a_service))
    )
    report = _harness.run([workload], repeat=2)
    unavailable = report.workloads[0].cases[1]
    assert unavailable.unavailable == "redis is not reachable at 127.0.0.1:6379"
    assert unavailable.error is None


def test_async_cases_each_run_in_a_fresh_event_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def body(n: int) -> None:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)

    case = async_case("async", body)
    assert case.measure(1) >= 0
    assert case.measure(1) >= 0
    assert loops[0] is not loops[1]
    assert loops[0].is_closed()


def test_sync_case_times_the_call() -> None:
    calls: list[int] = []
    case = sync_case("sync", calls.append)
    assert case.measure(7) >= 0
    assert calls == [7]


def test_repeat_below_one_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="repeat must be at least 1, got 0"):
        _harness.run([], repeat=0)


def test_discover_finds_every_workload_and_rejects_unknown_names() -> None:
    names = [workload.name for workload in _harness.discover()]
    assert sorted(names) == [
        "adaptive",
        "all",
        "amap",
        "breaker",
        "bridge",
        "cache",
        "catchup",
        "channel",
        "coalesce",
        "dataloader",
        "eventstore",
        "eventstore-postgres",
        "import",
        "limiter",
        "pingpong",
        "pipeline",
        "pool",
        "projection",
        "promise-await",
        "promise-chain",
        "ratelimit",
        "redis-ratelimit",
        "retry",
        "select",
        "taskgroup",
        "timeout",
        "to_thread",
    ]
    assert [w.name for w in _harness.discover(["timeout", "all"])] == ["timeout", "all"]
    with pytest.raises(InvalidArgumentError, match="unknown workload\\(s\\) bogus; known:"):
        _harness.discover(["bogus"])


def test_every_declared_release_floor_is_present() -> None:
    floors = {floor.text for workload in _harness.discover() for floor in workload.floors}
    assert floors == {
        "corral TaskGroup.start_soon <= 1.2x asyncio.TaskGroup.create_task",
        "corral TaskGroup.start_soon >= 4x faster than anyio start_soon",
        "corral.all <= 1.1x asyncio.gather",
        "corral amap <= 1.1x asyncio.Queue 100-worker pool",
        "corral amap >= 10x faster than aiometer amap",
        "corral Promise <= 1.5x asyncio.Future",
        "corral Promise.then >= 5x faster than promise 2.3 Promise.then",
        "corral move_on_after <= 1.5x asyncio.timeout",
        "corral move_on_after >= 1.5x faster than anyio move_on_after",
        "import corral <= import asyncio + 30 ms",
        "corral BridgeChannel >= 1.2x faster than culsans Queue",
        "corral to_thread <= 1.2x asyncio.to_thread",
        "corral to_thread >= 1.2x faster than anyio to_thread.run_sync",
        "corral Channel(128) >= 1.3x faster than asyncio.Queue(128)",
        "corral Channel(128) >= 3x faster than anyio memory stream(128)",
        "corral Channel(128) >= 3x faster than trio memory channel(128)",
        "corral Channel(0) pair <= 1x asyncio.Queue(1) pair",
        "corral Channel(0) pair >= 2x faster than anyio stream(0) pair",
        "corral Selector.select, 4 channels <= 3x corral receive",
        "corral RateLimiter.acquire >= 1.5x faster than aiolimiter acquire",
        "corral RateLimiter.acquire <= 2x asyncio.Semaphore acquire+release",
        "corral RateLimiter.acquire, Redis store <= 1.5x redis-py EVALSHA, trivial script",
        "corral retry >= 20x faster than tenacity @retry",
        "corral retry >= 20x faster than tenacity AsyncRetrying",
        "corral retry >= 20x faster than stamina retry",
        "corral @CircuitBreaker >= 2.5x faster than purgatory breaker",
        "corral breaker.call >= 2x faster than aiobreaker call_async",
        "corral Limiter <= 1.5x asyncio.Semaphore",
        "corral Limiter >= 5x faster than anyio CapacityLimiter",
        "corral AdaptiveLimiter (Gradient) <= 4x asyncio.Semaphore",
        "corral cached >= 2x faster than async-lru alru_cache",
        "corral cached(ttl) >= 1.2x faster than async-lru alru_cache(ttl)",
        "corral Stream >= 2x faster than aiostream pipe",
        "corral Pool <= 1.5x asyncio.Queue pool",
        "corral append, 1 stream >= 2x faster than eventsourcing insert_events, 1 aggregate",
        "corral append, 1,000 streams >= 2x faster than eventsourcing insert_events, "
        "1,000 aggregates",
        "corral append, 16 tasks >= 10x faster than eventsourcing insert_events, 16 threads",
        "corral read_all <= 1x eventsourcing select_notifications",
        "corral subscribe, catch-up >= 100,000 events/s",
        "corral Projector.catch_up >= 2x faster than eventsourcing ProjectionRunner",
        "corral append, 1 writer >= 3x faster than eventsourcing insert_events, 1 writer",
        "corral append, 8 tasks >= 5x faster than eventsourcing insert_events, 8 threads",
        "corral append, 1 writer >= 0.6x the speed of raw asyncpg INSERT per event, 1 writer",
        "corral append, 8 tasks >= 0.6x the speed of raw asyncpg INSERT per event, 8 connections",
        "corral Coalescer <= 2x dict of futures",
        "corral load_many >= 2x faster than aiodataloader load_many",
        "corral load_many makes no more batch calls than aiodataloader load_many",
        "corral gather(load) makes no more batch calls than aiodataloader gather(load)",
    }


def test_reports_render_as_text_markdown_and_json() -> None:
    workload = Workload(
        "w",
        "Title",
        1000,
        1,
        "ops",
        "fixed 2",
        (fixed(1), fixed(2)),
        (AtMost("fixed 1", "fixed 2", 1),),
    )
    report = _harness.run([workload], repeat=1)
    text = _harness.to_text(report)
    assert "Title [w, n=1,000 ops]" in text
    assert "0.50x" in text
    assert "floor: fixed 1 <= 1x fixed 2: 0.50x -> holds" in text
    markdown = _harness.to_markdown(report)
    assert "| w (n=1,000) | fixed 1 | 1000.0 ms (1,000,000 ns/op) | 0.50x |" in markdown
    assert "| w (n=1,000) | fixed 2 | 2000.0 ms (2,000,000 ns/op) | 1.00x (baseline) |" in markdown
    assert "| fixed 1 <= 1x fixed 2 | 0.50x | holds |" in markdown
    data = json.loads(_harness.to_json_text(report))
    assert data["workloads"][0]["cases"][0]["best_seconds"] == 1
    assert data["workloads"][0]["floors"][0]["held"] is True
    assert set(data["machine"]) == {"cpu", "cores", "python", "promise", "os", "date"}
    assert data["machine"]["promise"] in ("compiled", "pure Python")


# ---------------------------------------------------------------- isolated workloads


def test_an_isolated_run_measures_each_workload_in_a_worker_process() -> None:
    from benchmarks import _isolation

    workloads = _harness.discover(["retry", "promise-await"])
    seen: list[tuple[str, str, int]] = []
    report = _harness.run(
        workloads,
        smoke=True,
        repeat=2,
        isolate=True,
        progress=lambda workload, case, attempt: seen.append((workload.name, case.name, attempt)),
    )
    expected = [
        (workload.name, case.name, attempt)
        for workload in workloads
        for attempt in range(2)
        for case in workload.cases
    ]
    assert seen == expected  # announced by the workers, run by run, in order
    for result in report.workloads:
        assert all(len(case.times) == 2 and case.error is None for case in result.cases)
        assert len(result.floors) == len(_harness.discover([result.name])[0].floors)
    assert _isolation.worker_command(workloads[0], smoke=True, runs=2)[1:4] == [
        "-m",
        "benchmarks",
        "--worker",
    ]


def test_a_worker_that_dies_fails_every_case_of_its_workload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from benchmarks import _isolation

    script = "import sys; print('not a protocol line'); sys.stderr.write('boom'); sys.exit(3)"
    monkeypatch.setattr(
        _isolation, "worker_command", lambda *args, **kwargs: [sys.executable, "-c", script]
    )
    (workload,) = _harness.discover(["retry"])
    report = _harness.run([workload], smoke=True, isolate=True)
    (result,) = report.workloads
    assert not report.ok
    for case in result.cases:
        assert case.times == []
        assert case.error is not None
        assert "exited with status 3 without a result: boom" in case.error


def test_a_worker_reports_cases_that_could_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from benchmarks import _isolation

    (workload,) = _harness.discover(["retry"])
    names = [case.name for case in workload.cases]
    cases: list[dict[str, object]] = [
        {"name": name, "times": [], "unavailable": "no such peer", "error": None} for name in names
    ]
    floors = [{"text": "judged in the worker", "held": None, "detail": "not run"}]
    line = _isolation.MARKER + json.dumps({"cases": cases, "floors": floors})
    script = f"print({line!r})"
    monkeypatch.setattr(
        _isolation, "worker_command", lambda *args, **kwargs: [sys.executable, "-c", script]
    )
    report = _harness.run([workload], smoke=True, isolate=True)
    (result,) = report.workloads
    assert [case.unavailable for case in result.cases] == ["no such peer"] * len(names)
    assert [(floor.text, floor.held) for floor in result.floors] == [("judged in the worker", None)]


def test_floors_that_read_what_a_case_recorded_are_judged_in_the_worker() -> None:
    report = _harness.run(_harness.discover(["dataloader"]), smoke=True, isolate=True)
    (result,) = report.workloads
    details = [floor.detail for floor in result.floors if "batch calls" in floor.text]
    assert details == ["1 vs 1 batch calls", "1 vs 1 batch calls"]
