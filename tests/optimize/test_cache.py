"""cached: hits, LRU, TTL, coalesced misses, stale-while-revalidate, negative caching,
cancellation, invalidation, closing, loop affinity, stores, bad input."""

from __future__ import annotations

import asyncio
import logging
import math
import traceback
from collections import OrderedDict
from collections.abc import Hashable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral import CacheEntry, CacheStatistics, CacheStore, MemoryCacheStore, cached
from corral.errors import (
    ArgumentTypeError,
    ClosedResourceError,
    InvalidArgumentError,
    UsageError,
)
from corral.testing import VirtualClock, wait_all_tasks_blocked

# Tests that wait or read the clock run on the virtual-clock loop; the rest on every loop.
virtual_time = pytest.mark.usefixtures("virtual_clock")


class Source:
    """An async function to cache that counts its calls and can be told to fail or wait."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[object] = []
        self.delay = delay
        self.error: Exception | None = None
        self.version = 0

    async def __call__(self, x: object) -> str:
        self.calls.append(x)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return f"{x}@{self.version}"


def stats(fn: Any) -> dict[str, Any]:
    """The statistics that are not zero (or None), for short assertions."""
    snapshot: CacheStatistics = fn.statistics()
    return {name: value for name, value in vars_of(snapshot).items() if value}


def vars_of(snapshot: CacheStatistics) -> dict[str, Any]:
    return {name: getattr(snapshot, name) for name in snapshot.__slots__}


# -- hits, keys, LRU --------------------------------------------------------------------------


async def test_a_hit_returns_the_stored_result_without_calling() -> None:
    source = Source()
    fetch = cached()(source)
    assert await fetch(1) == "1@0"
    source.version = 1
    assert await fetch(1) == "1@0"
    assert await fetch(2) == "2@1"
    assert source.calls == [1, 2]
    assert fetch.statistics() == CacheStatistics(
        hits=1,
        stale_hits=0,
        misses=2,
        coalesced=0,
        refreshes=0,
        refresh_failures=0,
        in_flight=0,
        size=2,
        evictions=0,
    )


async def test_keys_are_the_arguments_with_keywords_in_any_order() -> None:
    calls: list[tuple[object, ...]] = []

    @cached()
    async def add(a: int, b: int = 0, *, c: int = 0) -> int:
        calls.append((a, b, c))
        return a + b + c

    assert await add(1, 2) == 3
    assert await add(1, 2) == 3
    assert await add(1, b=2, c=3) == 6
    assert await add(1, c=3, b=2) == 6  # same keywords, other order: same entry
    assert await add(1, 2, c=3) == 6  # b by position is another key
    assert calls == [(1, 2, 0), (1, 2, 3), (1, 2, 3)]


async def test_a_key_function_chooses_what_is_compared() -> None:
    source = Source()
    fetch = cached(key=lambda x: str(x).lower())(source)
    assert await fetch("A") == "A@0"
    assert await fetch("a") == "A@0"
    assert await fetch.invalidate("a") is True
    assert await fetch.invalidate("a") is False
    assert await fetch("a") == "a@0"


async def test_unhashable_arguments_are_refused_with_a_hint() -> None:
    fetch = cached()(Source())
    with pytest.raises(ArgumentTypeError, match=r"unhashable arguments.*pass key="):
        await fetch([1])
    with pytest.raises(ArgumentTypeError, match="unhashable arguments"):
        await fetch.invalidate({"a": 1})
    assert fetch.statistics().misses == 0


async def test_the_least_recently_used_entry_is_evicted() -> None:
    source = Source()
    fetch = cached(maxsize=2)(source)
    await fetch(1)
    await fetch(2)
    await fetch(1)  # 2 is now the least recently used
    await fetch(3)
    assert stats(fetch) == {"hits": 1, "misses": 3, "size": 2, "evictions": 1}
    await fetch(1)
    await fetch(2)
    assert source.calls == [1, 2, 3, 2]


@given(st.lists(st.integers(0, 6), max_size=40), st.integers(1, 4))
def test_lru_eviction_follows_a_model(keys: list[int], maxsize: int) -> None:
    async def run() -> tuple[list[int], list[int]]:
        source = Source()
        fetch = cached(maxsize=maxsize)(source)
        model: OrderedDict[int, None] = OrderedDict()
        expected: list[int] = []
        for key in keys:
            if key in model:
                model.move_to_end(key)
            else:
                expected.append(key)
                model[key] = None
                if len(model) > maxsize:
                    model.popitem(last=False)
            await fetch(key)
        assert fetch.statistics().size == len(model)
        return [int(str(call)) for call in source.calls], expected

    calls, expected = corral.testing.run(run)
    assert calls == expected


async def test_none_is_a_result_like_any_other() -> None:
    calls = 0

    @cached()
    async def nothing() -> int | None:
        nonlocal calls
        calls += 1
        return None

    assert await nothing() is None
    assert await nothing() is None
    assert calls == 1


async def test_the_decorated_function_keeps_the_name_and_docs_of_the_original() -> None:
    @cached()
    async def load(x: int) -> int:
        """Load x."""
        return x

    assert (load.__name__, load.__doc__) == ("load", "Load x.")  # type: ignore[attr-defined]
    assert asyncio.iscoroutinefunction(load)


# -- time: ttl, stale-while-revalidate, negative ttl -----------------------------------------


@virtual_time
async def test_an_entry_expires_after_its_ttl(virtual_clock: VirtualClock) -> None:
    source = Source()
    fetch = cached(ttl=10)(source)
    await fetch(1)
    await asyncio.sleep(9.999)
    assert await fetch(1) == "1@0"
    source.version = 1
    await asyncio.sleep(0.001)
    assert await fetch(1) == "1@1"
    assert source.calls == [1, 1]
    assert stats(fetch) == {"hits": 1, "misses": 2, "size": 1}


@virtual_time
async def test_ttl_takes_a_timedelta() -> None:
    source = Source()
    fetch = cached(ttl=timedelta(minutes=1))(source)
    await fetch(1)
    await asyncio.sleep(59)
    await fetch(1)
    await asyncio.sleep(1)
    await fetch(1)
    assert source.calls == [1, 1]


@virtual_time
async def test_a_stale_entry_is_served_while_one_refresh_runs() -> None:
    source = Source(delay=1)
    fetch = cached(ttl=10, stale_while_revalidate=5)(source)
    assert await fetch(1) == "1@0"  # t = 1
    source.version = 1
    await asyncio.sleep(10)  # t = 11: stale
    assert list(await asyncio.gather(fetch(1), fetch(1), fetch(1))) == ["1@0"] * 3
    assert fetch.statistics().in_flight == 1
    await asyncio.sleep(1)  # the refresh is done
    assert await fetch(1) == "1@1"
    assert source.calls == [1, 1]
    assert stats(fetch) == {"hits": 1, "stale_hits": 3, "misses": 1, "refreshes": 1, "size": 1}


@virtual_time
async def test_past_the_stale_window_a_call_waits_for_a_new_value() -> None:
    source = Source(delay=1)
    fetch = cached(ttl=10, stale_while_revalidate=5)(source)
    await fetch(1)
    source.version = 1
    await asyncio.sleep(15)
    assert await fetch(1) == "1@1"
    assert stats(fetch) == {"misses": 2, "size": 1}


@virtual_time
async def test_a_caller_past_the_stale_window_joins_the_running_refresh() -> None:
    source = Source(delay=4)
    fetch = cached(ttl=10, stale_while_revalidate=2)(source)
    await fetch(1)  # t = 4, fresh until 14, stale until 16
    source.version = 1
    await asyncio.sleep(11)  # t = 15: stale
    assert await fetch(1) == "1@0"  # starts the refresh, done at t = 19
    await asyncio.sleep(2)  # t = 17: past the stale window
    assert await fetch(1) == "1@1"  # waits for the refresh instead of a second call
    assert source.calls == [1, 1]


@virtual_time
async def test_a_failed_refresh_keeps_the_stale_entry(caplog: pytest.LogCaptureFixture) -> None:
    source = Source()
    fetch = cached(ttl=10, stale_while_revalidate=5)(source)
    await fetch(1)
    await asyncio.sleep(11)
    source.error = ConnectionError("down")
    with caplog.at_level(logging.WARNING, logger="corral.cache"):
        assert await fetch(1) == "1@0"
        await wait_all_tasks_blocked()
    assert "refresh of cached function" in caplog.text
    assert "ConnectionError: down" in caplog.text
    assert await fetch(1) == "1@0"  # still stale, a new refresh
    await wait_all_tasks_blocked()
    assert stats(fetch) == {
        "stale_hits": 2,
        "misses": 1,
        "refreshes": 2,
        "refresh_failures": 2,
        "size": 1,
    }
    await asyncio.sleep(5)
    with pytest.raises(ConnectionError):
        await fetch(1)


async def test_errors_are_not_cached_by_default() -> None:
    source = Source()
    fetch = cached()(source)
    source.error = KeyError("x")
    for _ in range(2):
        with pytest.raises(KeyError):
            await fetch(1)
    assert source.calls == [1, 1]
    assert fetch.statistics().size == 0


@virtual_time
async def test_negative_ttl_caches_errors_for_that_long() -> None:
    source = Source()
    fetch = cached(ttl=60, negative_ttl=2)(source)
    source.error = LookupError("missing")
    depths = []
    for _ in range(3):
        with pytest.raises(LookupError, match="missing") as caught:
            await fetch(1)
        depths.append(len(traceback.extract_tb(caught.value.__traceback__)))
    assert source.calls == [1]
    assert depths[1] == depths[2]  # raising it again does not grow its traceback
    source.error = None
    await asyncio.sleep(2)
    assert await fetch(1) == "1@0"
    assert stats(fetch) == {"hits": 2, "misses": 2, "size": 1}


@virtual_time
async def test_negative_ttl_without_ttl_expires_errors_only() -> None:
    source = Source()
    fetch = cached(negative_ttl=1)(source)
    source.error = LookupError()
    with pytest.raises(LookupError):
        await fetch(1)
    await asyncio.sleep(1)
    source.error = None
    await fetch(1)
    await asyncio.sleep(3600)
    await fetch(1)
    assert source.calls == [1, 1]


# -- coalescing and cancellation ---------------------------------------------------------------


@virtual_time
async def test_concurrent_misses_share_one_call() -> None:
    source = Source(delay=1)
    fetch = cached()(source)
    results = await asyncio.gather(*(fetch(1) for _ in range(5)), fetch(2))
    assert results == ["1@0"] * 5 + ["2@0"]
    assert source.calls == [1, 2]
    assert stats(fetch) == {"misses": 2, "coalesced": 4, "size": 2}


@virtual_time
async def test_an_error_reaches_every_waiter_and_is_not_kept() -> None:
    source = Source(delay=1)
    source.error = ValueError("bad")
    fetch = cached()(source)
    results = await asyncio.gather(fetch(1), fetch(1), return_exceptions=True)
    assert [type(result) for result in results] == [ValueError, ValueError]
    source.error = None
    assert await fetch(1) == "1@0"


@virtual_time
async def test_a_cancelled_waiter_leaves_the_call_to_the_others() -> None:
    source = Source(delay=1)
    fetch = cached()(source)
    first = asyncio.create_task(fetch(1))
    second = asyncio.create_task(fetch(1))
    await wait_all_tasks_blocked()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "1@0"
    assert await fetch(1) == "1@0"
    assert source.calls == [1]


@virtual_time
async def test_the_call_is_cancelled_when_its_last_waiter_leaves() -> None:
    started = asyncio.Event()
    finished = False

    @cached()
    async def slow(x: int) -> int:
        nonlocal finished
        started.set()
        await asyncio.sleep(10)
        finished = True
        return x

    waiters = [asyncio.create_task(slow(1)) for _ in range(3)]
    await started.wait()
    await wait_all_tasks_blocked()
    for waiter in waiters:
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    await wait_all_tasks_blocked()
    assert not finished
    assert slow.statistics().in_flight == 0
    assert slow.statistics().size == 0  # cancellation never caches
    assert await slow(1) == 1  # a new call, not a stuck one


@virtual_time
async def test_a_deadline_bounds_the_wait_and_the_call_stops_with_its_last_waiter() -> None:
    source = Source(delay=10)
    fetch = cached()(source)
    with corral.move_on_after(3) as scope:
        await fetch(1)
    assert scope.cancelled_caught
    await wait_all_tasks_blocked()
    assert fetch.statistics().in_flight == 0
    assert fetch.statistics().size == 0


async def test_a_call_that_raises_cancelled_error_itself_is_not_cached() -> None:
    calls = 0

    @cached()
    async def gives_up() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncio.CancelledError
        return calls

    with pytest.raises(asyncio.CancelledError):
        await gives_up()
    assert await gives_up() == 2


@given(st.lists(st.booleans(), min_size=1, max_size=8))
def test_whoever_stays_gets_the_result_and_nothing_leaks(stays: list[bool]) -> None:
    """Any subset of the waiters of one call may leave; the call runs iff someone stays."""

    async def run() -> None:
        source = Source(delay=5)
        fetch = cached()(source)
        waiters = [asyncio.create_task(fetch(1)) for _ in stays]
        await wait_all_tasks_blocked()
        for waiter, stay in zip(waiters, stays, strict=True):
            if not stay:
                waiter.cancel()
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        for outcome, stay in zip(outcomes, stays, strict=True):
            assert outcome == "1@0" if stay else isinstance(outcome, asyncio.CancelledError)
        snapshot = fetch.statistics()
        assert (snapshot.in_flight, snapshot.size) == (0, 1 if any(stays) else 0)
        assert source.calls == [1]

    corral.testing.run(run)


# -- invalidation, clearing, closing ------------------------------------------------------------


@virtual_time
async def test_invalidating_during_a_call_keeps_its_result_out() -> None:
    source = Source(delay=1)
    fetch = cached()(source)
    waiter = asyncio.create_task(fetch(1))
    await wait_all_tasks_blocked()
    assert await fetch.invalidate(1) is False  # no entry yet; the running call is detached
    newcomer = asyncio.create_task(fetch(1))  # starts its own call
    assert await waiter == "1@0"
    source.version = 1
    assert await newcomer == "1@0"
    assert source.calls == [1, 1]
    assert fetch.statistics().size == 1


async def test_clear_forgets_everything() -> None:
    source = Source()
    fetch = cached()(source)
    await fetch(1)
    await fetch(2)
    await fetch.clear()
    await fetch(1)
    assert source.calls == [1, 2, 1]


@virtual_time
async def test_aclose_cancels_calls_and_refreshes_and_refuses_new_calls() -> None:
    source = Source(delay=10)
    fetch = cached(ttl=1, stale_while_revalidate=100)(source)
    await fetch(1)
    await asyncio.sleep(2)
    assert await fetch(1) == "1@0"  # a refresh starts
    waiter = asyncio.create_task(fetch(2))
    await wait_all_tasks_blocked()
    assert fetch.statistics().in_flight == 2
    await fetch.aclose()
    with pytest.raises(ClosedResourceError):
        await waiter
    assert fetch.statistics().in_flight == 0
    assert fetch.statistics().size == 0
    for attempt in (fetch(1), fetch.invalidate(1), fetch.clear()):
        with pytest.raises(ClosedResourceError, match="was closed"):
            await attempt
    await fetch.aclose()  # closing twice is fine


# -- loops ---------------------------------------------------------------------------------------


def test_a_cache_moves_to_a_new_loop_once_the_old_one_is_closed() -> None:
    source = Source()
    fetch = cached(ttl=60)(source)
    assert asyncio.run(fetch(1)) == "1@0"
    source.version = 1
    assert asyncio.run(fetch(1)) == "1@1"  # the entries of the closed loop are gone
    assert source.calls == [1, 1]


async def test_a_cache_refuses_a_second_open_loop() -> None:
    source = Source()
    fetch = cached(ttl=60)(source)
    await fetch(1)
    with pytest.raises(UsageError, match="belongs to the event loop of its first call"):
        await asyncio.to_thread(asyncio.run, fetch(2))


async def test_a_hit_that_never_expires_is_served_on_any_loop() -> None:
    fetch = cached()(Source())
    await fetch(1)
    assert await asyncio.to_thread(asyncio.run, fetch(1)) == "1@0"
    with pytest.raises(UsageError):
        await asyncio.to_thread(asyncio.run, fetch(2))


# -- methods -------------------------------------------------------------------------------------


class Repository:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loads = 0

    @cached()
    async def load(self, x: int) -> str:
        self.loads += 1
        return f"{self.name}:{x}"


async def test_on_a_method_each_instance_has_its_own_entries() -> None:
    first, second = Repository("a"), Repository("b")
    assert await first.load(1) == "a:1"
    assert await second.load(1) == "b:1"
    assert await first.load(1) == "a:1"
    assert (first.loads, second.loads) == (1, 1)
    assert await Repository.load.invalidate(first, 1) is True
    await first.load(1)
    assert first.loads == 2
    assert Repository.load.statistics().size == 2


# -- instruments ---------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Hashable]] = []
        self.sources: list[str] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if "key" in fields:
            self.events.append((name, fields["key"]))
            self.sources.append(repr(source))

    def task_parked(self, task: object, on: object) -> None:
        if repr(on).startswith("<cached"):
            self.events.append(("parked", None))

    def task_woken(self, task: object, on: object) -> None:
        if repr(on).startswith("<cached"):
            self.events.append(("woken", None))


@virtual_time
async def test_reports_hits_misses_and_coalesced_calls() -> None:
    source = Source(delay=1)
    fetch = cached(ttl=1, stale_while_revalidate=1)(source)
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        await asyncio.gather(fetch(1), fetch(1))
        await fetch(1)
        await asyncio.sleep(1)
        await fetch(1)
        await asyncio.sleep(1)
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.events == [
        ("miss", (1,)),
        ("parked", None),
        ("coalesced", (1,)),
        ("parked", None),
        ("woken", None),
        ("woken", None),
        ("hit", (1,)),
        ("stale_hit", (1,)),
    ]
    assert recorder.sources[-1] == "<cached Source 1 entries, 1 hits, 1 misses, 1 in flight>"


# -- other stores -------------------------------------------------------------------------------


class ProtocolStore:
    """A store reached only through the async protocol (as a remote store would be)."""

    def __init__(self) -> None:
        self.inner = MemoryCacheStore(maxsize=None)
        self.gets = 0
        self.broken = False

    async def get(self, key: Hashable) -> CacheEntry | None:
        self.gets += 1
        await asyncio.sleep(0)  # a round trip
        if self.broken:
            raise ConnectionError("store down")
        return await self.inner.get(key)

    async def set(self, key: Hashable, entry: CacheEntry) -> None:
        await asyncio.sleep(0)
        await self.inner.set(key, entry)

    async def delete(self, key: Hashable) -> bool:
        return await self.inner.delete(key)

    async def clear(self) -> None:
        await self.inner.clear()


@virtual_time
async def test_another_store_gets_hits_stale_entries_and_one_lookup_per_key() -> None:
    store = ProtocolStore()
    assert isinstance(store, CacheStore)
    source = Source(delay=1)
    fetch = cached(ttl=10, stale_while_revalidate=5, store=store)(source)
    assert list(await asyncio.gather(fetch(1), fetch(1))) == ["1@0", "1@0"]
    assert store.gets == 1  # the lookup is coalesced too
    assert await fetch(1) == "1@0"
    source.version = 1
    await asyncio.sleep(10)
    assert await fetch(1) == "1@0"  # stale: served, and the refresh starts
    assert await fetch(1) == "1@0"  # served from the refresh's stale copy
    await asyncio.sleep(1)
    assert await fetch(1) == "1@1"
    assert stats(fetch) == {"hits": 2, "stale_hits": 2, "misses": 1, "coalesced": 1, "refreshes": 1}
    assert await fetch.invalidate(1) is True
    await fetch.clear()
    await fetch(1)
    assert source.calls == [1, 1, 1]


async def test_errors_of_the_store_reach_the_callers() -> None:
    store = ProtocolStore()
    fetch = cached(store=store)(Source())
    store.broken = True
    with pytest.raises(ConnectionError, match="store down"):
        await fetch(1)
    store.broken = False
    assert await fetch(1) == "1@0"
    assert fetch.statistics().in_flight == 0


@virtual_time
async def test_the_memory_store_answers_with_remaining_times() -> None:
    store = MemoryCacheStore(maxsize=2)
    await store.set("a", CacheEntry("A", False, 10, 5))
    await store.set("b", CacheEntry(KeyError("b"), True, math.inf))
    await asyncio.sleep(12)
    assert await store.get("a") == CacheEntry("A", False, 0.0, 3.0)
    entry = await store.get("b")
    assert entry is not None
    assert (entry.failed, entry.fresh_for, type(entry.value)) == (True, math.inf, KeyError)
    await asyncio.sleep(3)
    assert await store.get("a") is None
    await store.set("c", CacheEntry("C", False, 1))
    await store.set("d", CacheEntry("D", False, 1))
    assert await store.get("b") is None  # evicted
    assert (len(store), store.evictions, store.maxsize) == (2, 1, 2)
    assert await store.delete("c") is True
    assert await store.delete("c") is False
    await store.clear()
    assert repr(store) == "<MemoryCacheStore 0 entries, 2 max>"


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"ttl": 0}, InvalidArgumentError, "ttl must be a duration above zero, got 0"),
        ({"ttl": -1}, InvalidArgumentError, "ttl must not be negative"),
        ({"ttl": math.nan}, InvalidArgumentError, "ttl must be a number of seconds, not NaN"),
        ({"ttl": "1"}, ArgumentTypeError, "ttl must be seconds"),
        ({"maxsize": 0}, InvalidArgumentError, "maxsize must be at least 1, got 0"),
        ({"maxsize": 1.5}, ArgumentTypeError, "maxsize must be an int"),
        (
            {"ttl": 1, "stale_while_revalidate": math.inf},
            InvalidArgumentError,
            "stale_while_revalidate must be a finite duration above zero",
        ),
        (
            {"stale_while_revalidate": 1},
            InvalidArgumentError,
            "stale_while_revalidate needs a ttl",
        ),
        ({"negative_ttl": 0}, InvalidArgumentError, "negative_ttl must be a duration above zero"),
        ({"key": 3}, ArgumentTypeError, "key must be a function"),
        ({"store": {}}, ArgumentTypeError, "store must be a corral.CacheStore, not dict"),
        (
            {"store": MemoryCacheStore(), "maxsize": 10},
            InvalidArgumentError,
            "maxsize=10 sizes the default memory store",
        ),
    ],
)
def test_bad_options_are_refused(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        cached(**options)


async def test_decorating_a_coroutine_object_or_a_non_function_is_refused() -> None:
    async def work() -> int:
        return 1

    coroutine = work()
    with pytest.raises(ArgumentTypeError, match="not the result of calling it"):
        cached()(coroutine)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="decorates an async function, not 3"):
        cached()(3)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"write @cached\(\)"):
        cached(work)  # type: ignore[arg-type]


def test_a_failed_entry_must_hold_an_exception() -> None:
    with pytest.raises(ArgumentTypeError, match="holds an exception, not str"):
        CacheEntry("oops", True, 1)
    with pytest.raises(InvalidArgumentError, match="fresh_for"):
        CacheEntry(1, False, math.nan)
    with pytest.raises(InvalidArgumentError, match="stale_for"):
        CacheEntry(1, False, 1, -1)


@virtual_time
async def test_a_caller_arriving_as_the_last_waiter_leaves_gets_a_call_of_its_own() -> None:
    source = Source(delay=1)
    fetch = cached()(source)
    leaving = asyncio.create_task(fetch(1))
    await wait_all_tasks_blocked()
    leaving.cancel()
    await asyncio.sleep(0)  # the waiter has left; the call is cancelled, not yet unwound
    assert await fetch(1) == "1@0"
    assert leaving.cancelled()
    assert source.calls == [1, 1]


@virtual_time
async def test_an_unbounded_cache_drops_expired_entries_as_it_stores_new_ones() -> None:
    fetch = cached(ttl=1, maxsize=None)(Source())
    for key in range(100):
        await fetch(key)
        await asyncio.sleep(0.25)
    size = fetch.statistics().size
    assert size is not None
    assert size <= 5  # the entries of the last second, and no more
    assert fetch.statistics().evictions == 0


async def test_default_keys_read_the_same_in_every_process() -> None:
    store = ProtocolStore()

    @cached(store=store)
    async def add(a: int, *, b: int = 0, c: int = 0) -> int:
        return a + b + c

    await add(1, c=3, b=2)
    await add(1)
    assert [repr(key) for key in store.inner.records] == [
        "((1,), <keywords>, (('b', 2), ('c', 3)))",
        "(1,)",
    ]
