"""DataLoader: batching, the result contract, caching, request scopes, cancellation, bad input."""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
from corral import DataLoader, DataLoaderStatistics, RequestScopeStatistics
from corral.errors import ArgumentTypeError, BatchError, InvalidArgumentError, UsageError
from corral.testing import VirtualClock, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")


class Backend:
    """A batch function that records every call and answers ``key * 10``."""

    def __init__(self, *, delay: float = 0, errors: Mapping[int, Exception] | None = None) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay
        self.errors = dict(errors or {})
        self.cancelled = 0

    async def __call__(self, keys: list[int]) -> list[int | Exception]:
        self.calls.append(list(keys))
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return [self.errors.get(key, key * 10) for key in keys]


async def test_loads_of_one_iteration_become_one_batch_call_of_distinct_keys() -> None:
    backend = Backend()
    loader = DataLoader(backend)
    futures = [loader.load(key) for key in (1, 2, 1, 3)]
    assert repr(loader) == "<DataLoader Backend: 3 queued, 0 batches in flight, 3 cached>"
    assert await asyncio.gather(*futures) == [10, 20, 10, 30]
    assert backend.calls == [[1, 2, 3]]
    assert loader.statistics() == DataLoaderStatistics(
        loads=4,
        cache_hits=1,
        batches=1,
        batched_keys=3,
        failed_batches=0,
        abandoned_batches=0,
        in_flight=0,
        queued=0,
        cached=3,
    )


async def test_loads_from_tasks_started_together_are_batched() -> None:
    backend = Backend(delay=1)
    loader = DataLoader(backend)

    async def resolve(key: int) -> int:
        return await loader.load(key)

    async with corral.TaskGroup() as tg:
        handles = [tg.create_task(resolve(key)) for key in range(5)]
    assert [handle.result() for handle in handles] == [0, 10, 20, 30, 40]
    assert backend.calls == [[0, 1, 2, 3, 4]]


async def test_loads_awaited_one_after_the_other_are_not_batched() -> None:
    backend = Backend()
    loader = DataLoader(backend)
    assert await loader.load(1) == 10
    assert await loader.load(2) == 20
    assert backend.calls == [[1], [2]]


async def test_a_batch_function_may_return_a_mapping_from_key_to_result() -> None:
    async def by_key(keys: list[str]) -> dict[str, int | Exception]:
        return {key: len(key) if key != "bad" else LookupError(key) for key in reversed(keys)}

    loader = DataLoader(by_key)
    many = loader.load_many(["a", "bbb", "bad"])
    with pytest.raises(LookupError):
        await many
    assert await loader.load_many(["a", "bbb"]) == [1, 3]


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([10], r"returned 1 results for 2 keys"),
        ({1: 10}, r"no result for 1 of 2 keys: \[2\]"),
        (None, r"must return a sequence .* or a mapping .*, not NoneType"),
        ("ab", r"not str"),
    ],
)
async def test_a_broken_result_contract_fails_the_whole_batch_and_the_loader_stays_usable(
    results: object, message: str
) -> None:
    answers: list[object] = [results]

    async def batch(keys: list[int]) -> Any:
        return answers.pop(0) if answers else [key * 10 for key in keys]

    loader: DataLoader[int, int] = DataLoader(batch)
    first, second = loader.load(1), loader.load(2)
    for future in (first, second):
        with pytest.raises(BatchError, match=message):
            await future
    assert loader.statistics().cached == 0  # the failure is not cached
    assert loader.statistics().failed_batches == 1
    assert await loader.load_many([1, 2]) == [10, 20]


async def test_a_synchronous_batch_function_fails_with_a_clear_error() -> None:
    def not_async(keys: list[int]) -> list[int]:
        return keys

    loader: DataLoader[int, int] = DataLoader(not_async)  # type: ignore[arg-type]
    with pytest.raises(BatchError, match=r"batch_fn must be an async function.*returned list"):
        await loader.load(1)


async def test_a_per_key_error_fails_that_key_only_and_is_not_cached() -> None:
    backend = Backend(errors={2: KeyError("two")})
    loader = DataLoader(backend)
    one, two = loader.load(1), loader.load(2)
    with pytest.raises(KeyError, match="two"):
        await two
    assert await one == 10
    backend.errors.clear()
    assert await loader.load(2) == 20  # asked again
    assert await loader.load(1) == 10  # cached
    assert backend.calls == [[1, 2], [2]]


async def test_a_batch_function_that_raises_fails_every_load_and_caches_nothing() -> None:
    failures = [ConnectionError("down")]

    async def flaky(keys: list[int]) -> list[int]:
        if failures:
            raise failures.pop()
        return [key * 10 for key in keys]

    loader = DataLoader(flaky)
    futures = [loader.load(1), loader.load(2), loader.load(1)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError] * 3
    assert results[0] is results[1]
    assert await loader.load_many([1, 2]) == [10, 20]


async def test_cache_off_shares_keys_within_a_batch_call_only() -> None:
    backend = Backend()
    loader = DataLoader(backend, cache=False)
    assert list(await asyncio.gather(loader.load(1), loader.load(1))) == [10, 10]
    assert await loader.load(1) == 10
    assert backend.calls == [[1], [1]]
    assert loader.statistics().cached == 0
    with pytest.raises(UsageError, match="cache=False"):
        loader.prime(1, 5)


async def test_prime_clear_and_clear_all_edit_the_cache() -> None:
    backend = Backend()
    loader = DataLoader(backend)
    assert loader.prime(1, 111) is True
    assert loader.prime(1, 222) is False  # never overwrites
    assert await loader.load(1) == 111
    assert loader.clear(1) is True
    assert loader.clear(1) is False
    assert await loader.load(1) == 10
    assert await loader.load(2) == 20
    loader.clear_all()
    assert loader.statistics().cached == 0
    assert await loader.load_many([1, 2]) == [10, 20]
    assert backend.calls == [[1], [2], [1, 2]]
    with pytest.raises(ArgumentTypeError, match="never caches errors"):
        loader.prime(3, ValueError("no"))  # type: ignore[arg-type]


async def test_clearing_a_key_under_way_answers_its_loads_without_caching_it() -> None:
    backend = Backend(delay=1)
    loader = DataLoader(backend)
    pending = loader.load(1)
    await wait_all_tasks_blocked()
    assert loader.clear(1) is True
    assert await pending == 10
    assert loader.statistics().cached == 0


async def test_a_load_of_a_key_under_way_joins_it() -> None:
    backend = Backend(delay=1)
    loader = DataLoader(backend)
    first = loader.load(1)
    await wait_all_tasks_blocked()  # the batch call is running
    second = loader.load(1)
    assert list(await asyncio.gather(first, second)) == [10, 10]
    assert backend.calls == [[1]]


async def test_max_batch_size_splits_the_keys_into_concurrent_calls() -> None:
    backend = Backend(delay=1)
    loader = DataLoader(backend, max_batch_size=2)
    futures = [loader.load(key) for key in range(5)]
    await wait_all_tasks_blocked()
    assert backend.calls == [[0, 1], [2, 3], [4]]
    assert loader.statistics().in_flight == 3  # all started before any finished
    assert "3 batches in flight" in repr(loader)
    assert await asyncio.gather(*futures) == [0, 10, 20, 30, 40]


async def test_a_batch_window_collects_the_loads_of_that_many_seconds(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend()
    loader = DataLoader(backend, batch_window=0.5)
    first = loader.load(1)
    await asyncio.sleep(0.3)
    second = loader.load(2)
    assert list(await asyncio.gather(first, second)) == [10, 20]
    assert virtual_clock.time() == pytest.approx(0.5)
    assert await loader.load(3) == 30
    assert backend.calls == [[1, 2], [3]]


async def test_a_full_window_is_sent_at_once(virtual_clock: VirtualClock) -> None:
    backend = Backend()
    loader = DataLoader(backend, batch_window=10, max_batch_size=2)
    assert await loader.load_many([1, 2]) == [10, 20]
    assert virtual_clock.time() == 0
    assert backend.calls == [[1, 2]]


async def test_a_cancelled_load_leaves_alone_and_the_batch_serves_the_others() -> None:
    backend = Backend(delay=1)
    loader = DataLoader(backend)
    leaving, staying = loader.load(1), loader.load(1)
    other = loader.load(2)
    await wait_all_tasks_blocked()
    leaving.cancel()
    assert list(await asyncio.gather(staying, other)) == [10, 20]
    assert backend.cancelled == 0
    assert loader.statistics().abandoned_batches == 0


async def test_a_batch_call_is_cancelled_when_every_load_waiting_on_it_leaves() -> None:
    backend = Backend(delay=10)
    loader = DataLoader(backend)
    with corral.move_on_after(1):
        await loader.load_many([1, 2])
    await wait_all_tasks_blocked()
    assert backend.cancelled == 1
    statistics = loader.statistics()
    assert (statistics.abandoned_batches, statistics.in_flight, statistics.cached) == (1, 0, 0)
    backend.delay = 0
    assert await loader.load(1) == 10  # asked again
    assert backend.calls == [[1, 2], [1]]


async def test_keys_whose_loads_all_left_before_sending_are_not_sent() -> None:
    backend = Backend()
    loader = DataLoader(backend)
    gone = loader.load(1)
    kept = loader.load(2)
    gone.cancel()
    assert await kept == 20
    assert backend.calls == [[2]]
    assert loader.statistics().cached == 1


async def test_cancelling_load_many_cancels_its_loads_and_their_batch() -> None:
    backend = Backend(delay=10)
    loader = DataLoader(backend)
    many = loader.load_many([1, 2])
    await wait_all_tasks_blocked()
    many.cancel()
    await wait_all_tasks_blocked()
    assert backend.cancelled == 1
    assert loader.statistics().abandoned_batches == 1


async def test_load_many_of_cached_keys_is_done_at_once() -> None:
    loader = DataLoader(Backend())
    assert await loader.load_many([1, 2]) == [10, 20]
    again = loader.load_many([2, 1])
    assert again.done()
    assert again.result() == [20, 10]
    statistics = loader.statistics()
    assert (statistics.loads, statistics.cache_hits, statistics.batches) == (4, 2, 1)
    assert (await loader.load_many([])) == []


async def test_key_fn_maps_unhashable_keys_to_cache_keys() -> None:
    seen: list[list[dict[str, int]]] = []

    async def batch(keys: list[dict[str, int]]) -> list[int]:
        seen.append(keys)
        return [key["id"] for key in keys]

    loader = DataLoader(batch, key_fn=lambda key: key["id"])
    assert list(await asyncio.gather(loader.load({"id": 1}), loader.load({"id": 1}))) == [1, 1]
    assert seen == [[{"id": 1}]]
    assert loader.clear({"id": 1}) is True


async def test_unhashable_keys_are_refused_with_a_hint() -> None:
    loader: DataLoader[Any, int] = DataLoader(Backend())
    with pytest.raises(ArgumentTypeError, match=r"not hashable: pass key_fn="):
        loader.load([1])
    with pytest.raises(ArgumentTypeError, match=r"key \[2\] is not hashable"):
        loader.load_many([1, [2]])
    await asyncio.sleep(0)  # the next batch would go now: key 1 is not sent
    assert loader.statistics().batches == 0
    with pytest.raises(ArgumentTypeError, match="not hashable"):
        loader.clear([1])
    listed: DataLoader[Any, int] = DataLoader(Backend(), key_fn=list)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"key_fn returned \[1\] for key \(1,\)"):
        listed.prime((1,), 1)
    assert loader.statistics().queued == 0


async def test_a_mapping_result_needs_hashable_keys() -> None:
    async def batch(keys: list[list[int]]) -> dict[Any, int]:
        return {}

    loader: DataLoader[list[int], int] = DataLoader(batch, key_fn=tuple)
    with pytest.raises(BatchError, match="not hashable: return a sequence"):
        await loader.load([1])


# -- request scopes --------------------------------------------------------------------

user: contextvars.ContextVar[str] = contextvars.ContextVar("user")


async def test_request_scopes_keep_caches_and_batches_apart() -> None:
    calls: list[tuple[str, list[int]]] = []

    async def visible_to_user(keys: list[int]) -> list[str]:
        calls.append((user.get(), keys))
        await asyncio.sleep(1)
        return [f"{user.get()}:{key}" for key in keys]

    loader = DataLoader(visible_to_user)

    async def request(name: str) -> list[str]:
        user.set(name)
        with corral.request_scope() as scope:
            first = await loader.load_many([1, 2])
            again = await loader.load(1)  # cached within the request
            assert scope.statistics() == RequestScopeStatistics(active=True, owners=1)
        assert scope.statistics() == RequestScopeStatistics(active=False, owners=0)
        return [*first, again]

    async with corral.TaskGroup() as tg:
        alice = tg.create_task(request("alice"))
        bob = tg.create_task(request("bob"))
    assert alice.result() == ["alice:1", "alice:2", "alice:1"]
    assert bob.result() == ["bob:1", "bob:2", "bob:1"]
    assert sorted(calls) == [("alice", [1, 2]), ("bob", [1, 2])]  # never one shared call
    assert loader.statistics().cached == 0  # nothing leaked into the loader's own cache


async def test_scopes_nest_and_tasks_inherit_them() -> None:
    loader = DataLoader(Backend())
    loader.prime(1, 0)
    with corral.request_scope():
        loader.prime(1, 1)
        with corral.request_scope():
            assert await loader.load(1) == 10  # the inner scope starts empty

            async def in_child() -> int:
                return await loader.load(1)

            assert await asyncio.create_task(in_child()) == 10
        assert await loader.load(1) == 1
    assert await loader.load(1) == 0


async def test_a_request_scope_is_entered_once_in_one_context() -> None:
    scope = corral.request_scope()
    assert repr(scope) == "<RequestScope inactive, 0 owners>"
    with scope:
        assert repr(scope) == "<RequestScope active, 0 owners>"
        with pytest.raises(UsageError, match="entered before"):
            scope.__enter__()
    with pytest.raises(UsageError, match="exited without being entered"):
        scope.__exit__(None, None, None)
    other = corral.RequestScope()
    contextvars.copy_context().run(other.__enter__)
    with pytest.raises(UsageError, match="exited in the task"):
        other.__exit__(None, None, None)


# -- loops -----------------------------------------------------------------------------


async def test_a_loader_bound_to_a_running_loop_refuses_another() -> None:
    loader = DataLoader(Backend())
    assert await loader.load(1) == 10
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            asyncio.run(_load(loader, 1))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    assert len(errors) == 1
    assert isinstance(errors[0], UsageError)
    assert "make one loader per event loop" in str(errors[0])


async def _load(loader: DataLoader[int, int], key: int) -> int:
    return await loader.load(key)


def test_a_loader_rebinds_once_its_loop_has_closed_and_starts_empty() -> None:
    backend = Backend()
    loader = DataLoader(backend)
    assert asyncio.run(_load(loader, 1)) == 10
    assert asyncio.run(_load(loader, 1)) == 10
    assert backend.calls == [[1], [1]]


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    uvloop = pytest.importorskip("uvloop")
    return uvloop.new_event_loop  # type: ignore[no-any-return]


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, "uvloop"])
def test_batching_and_cancellation_on_real_loops(
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | str,
) -> None:
    factory = _uvloop_factory() if loop_factory == "uvloop" else loop_factory
    assert callable(factory)
    backend = Backend(delay=0.01)
    loader = DataLoader(backend)

    async def main() -> list[int]:
        leaving = loader.load(3)
        values = loader.load_many([1, 2, 1])
        await asyncio.sleep(0)
        leaving.cancel()
        return await values

    for _ in range(2):  # a second loop in the same thread, once the first has closed
        with asyncio.Runner(loop_factory=factory) as runner:
            assert runner.run(main()) == [10, 20, 10]
    assert backend.calls == [[3, 1, 2], [3, 1, 2]]
    assert backend.cancelled == 0


def test_using_a_loader_outside_a_running_loop_is_a_usage_error() -> None:
    loader = DataLoader(Backend())
    with pytest.raises(UsageError, match="outside a running event loop"):
        loader.load(1)
    with pytest.raises(UsageError, match="outside a running event loop"):
        loader.load_many([1])


# -- events and bad input ----------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, DataLoader):
            self.events.append((name, fields))


async def test_batch_calls_are_reported_to_instruments() -> None:
    answers: list[Any] = [[10], ValueError("boom")]

    async def batch(keys: list[int]) -> list[int]:
        answer: Any = answers.pop(0) if answers else None
        if isinstance(answer, Exception):
            raise answer
        await asyncio.sleep(10)
        return answer  # type: ignore[no-any-return]

    loader = DataLoader(batch)
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        assert await loader.load(1) == 10
        with pytest.raises(ValueError, match="boom"):
            await loader.load(2)
        with corral.move_on_after(1):
            await loader.load(3)
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.events == [
        ("batch_started", {"keys": 1}),
        ("batch_finished", {"keys": 1}),
        ("batch_started", {"keys": 1}),
        ("batch_failed", {"keys": 1, "error": "ValueError('boom')"}),
        ("batch_started", {"keys": 1}),
        ("batch_abandoned", {"keys": 1}),
    ]


async def _batch_fn(keys: list[int]) -> list[int]:
    return keys


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_batch_size": 0}, InvalidArgumentError, "max_batch_size must be at least 1"),
        ({"max_batch_size": -3}, InvalidArgumentError, "max_batch_size"),
        ({"max_batch_size": math.nan}, InvalidArgumentError, "max_batch_size.*NaN"),
        ({"max_batch_size": 2.5}, ArgumentTypeError, "max_batch_size must be an int"),
        ({"max_batch_size": True}, ArgumentTypeError, "max_batch_size must be an int"),
        ({"batch_window": -1}, InvalidArgumentError, "batch_window must not be negative"),
        ({"batch_window": math.nan}, InvalidArgumentError, "batch_window.*NaN"),
        ({"batch_window": "1s"}, ArgumentTypeError, "batch_window must be seconds"),
        ({"cache": "yes"}, ArgumentTypeError, "cache must be a bool"),
        ({"key_fn": 3}, ArgumentTypeError, "key_fn must be a function, not int"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        DataLoader(_batch_fn, **kwargs)


def test_a_coroutine_object_is_refused_as_batch_fn() -> None:
    coroutine = _batch_fn([1])
    with pytest.raises(ArgumentTypeError, match="not a coroutine object"):
        DataLoader(coroutine)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="batch_fn must be a function, not str"):
        DataLoader("batch")  # type: ignore[arg-type]


async def test_load_many_refuses_what_is_not_an_iterable_of_keys() -> None:
    loader = DataLoader(_batch_fn)
    with pytest.raises(ArgumentTypeError, match="keys must be an iterable"):
        loader.load_many("12")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="keys must be an iterable"):
        loader.load_many(12)  # type: ignore[arg-type]


def test_a_zero_window_batches_per_iteration() -> None:
    loader = DataLoader(_batch_fn, batch_window=0)
    assert loader._window is None


# -- every interleaving ------------------------------------------------------------------

plans = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(["stay", "cancel", "leave_later"])),
    max_size=12,
)


async def interleave(
    max_batch_size: int | None, plan: Sequence[tuple[int, str]], failing: frozenset[int]
) -> None:
    backend = Backend(delay=1, errors={key: LookupError(key) for key in failing})
    loader = DataLoader(backend, max_batch_size=max_batch_size)
    futures = [(key, action, loader.load(key)) for key, action in plan]
    for _key, action, future in futures:
        if action == "cancel":
            future.cancel()
    await asyncio.sleep(0.5)
    for _key, action, future in futures:
        if action == "leave_later":
            future.cancel()
    await asyncio.sleep(2)
    for key, action, future in futures:
        assert future.done()
        if action != "stay":
            continue
        if key in failing:
            assert isinstance(future.exception(), LookupError)
        else:
            assert future.result() == key * 10
    for call in backend.calls:
        assert len(call) == len(set(call))
        assert max_batch_size is None or len(call) <= max_batch_size
    staying = {key for key, action, _ in futures if action == "stay"}
    sent = {key for call in backend.calls for key in call}
    assert staying <= sent
    assert sent <= {key for key, action, _ in futures if action != "cancel"}
    statistics = loader.statistics()
    assert (statistics.in_flight, statistics.queued) == (0, 0)
    cached = {key for key in sent - failing if loader.clear(key)}
    assert staying - failing <= cached  # values are cached, errors never are
    assert backend.cancelled == statistics.abandoned_batches


@settings(max_examples=150, deadline=None)
@given(
    max_batch_size=st.one_of(st.none(), st.integers(1, 3)),
    plan=plans,
    failing=st.frozensets(st.integers(0, 5), max_size=2),
)
def test_every_interleaving_of_loads_and_cancellations_keeps_the_contract(
    max_batch_size: int | None, plan: list[tuple[int, str]], failing: frozenset[int]
) -> None:
    corral.testing.run(interleave, max_batch_size, plan, failing)
