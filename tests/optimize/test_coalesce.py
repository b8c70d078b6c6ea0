"""coalesce / Coalescer: shared executions, errors, waiter refcounting, forget, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
from corral import Coalescer, CoalescerStatistics
from corral.errors import ArgumentTypeError
from corral.testing import VirtualClock, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")


class Service:
    """An async function that counts its runs and cancellations, answering ``value * 2``."""

    def __init__(self, delay: float = 1) -> None:
        self.delay = delay
        self.runs = 0
        self.cancelled = 0
        self.error: Exception | None = None

    async def __call__(self, value: int) -> int:
        self.runs += 1
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return value * 2


async def test_concurrent_calls_with_one_key_share_one_execution(
    virtual_clock: VirtualClock,
) -> None:
    service = Service()
    flights = Coalescer()
    calls = [flights.do("a", service, 1) for _ in range(3)] + [flights.do("b", service, 2)]
    tasks = [asyncio.create_task(call) for call in calls]
    await wait_all_tasks_blocked()
    assert repr(flights) == "<Coalescer 2 in flight, 4 waiting>"
    assert list(await asyncio.gather(*tasks)) == [2, 2, 2, 4]
    assert service.runs == 2
    assert virtual_clock.time() == 1
    assert flights.statistics() == CoalescerStatistics(
        calls=4, shared=2, in_flight=0, waiting=0, cancelled=0
    )
    assert await flights.do("a", service, 5) == 10  # a new execution once the last ended
    assert service.runs == 3


async def test_an_error_reaches_every_waiter_and_is_not_remembered() -> None:
    service = Service()
    service.error = ConnectionError("down")
    flights = Coalescer()
    results = await asyncio.gather(
        flights.do("k", service, 1), flights.do("k", service, 1), return_exceptions=True
    )
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    service.error = None
    assert await flights.do("k", service, 1) == 2
    assert service.runs == 2


async def test_one_waiter_leaving_does_not_disturb_the_others() -> None:
    service = Service()
    flights = Coalescer()
    leaving = asyncio.create_task(flights.do("k", service, 1))  # the one that started it
    staying = asyncio.create_task(flights.do("k", service, 1))
    await wait_all_tasks_blocked()
    leaving.cancel()
    assert await staying == 2
    assert leaving.cancelled()
    assert (service.runs, service.cancelled) == (1, 0)
    assert flights.statistics().cancelled == 0


async def test_the_execution_is_cancelled_when_its_last_waiter_leaves() -> None:
    service = Service(delay=10)
    flights = Coalescer()
    first = asyncio.create_task(flights.do("k", service, 1))
    with corral.move_on_after(1):
        await flights.do("k", service, 1)
    assert service.cancelled == 0  # `first` still waits
    first.cancel()
    await wait_all_tasks_blocked()
    assert service.cancelled == 1
    assert flights.statistics() == CoalescerStatistics(
        calls=2, shared=1, in_flight=0, waiting=0, cancelled=1
    )
    service.delay = 0
    assert await flights.do("k", service, 1) == 2  # starts afresh


async def test_forget_lets_the_next_call_start_a_new_execution() -> None:
    service = Service()
    flights = Coalescer()
    old = asyncio.create_task(flights.do("k", service, 1))
    await wait_all_tasks_blocked()
    assert flights.forget("k") is True
    assert flights.forget("k") is False
    new = asyncio.create_task(flights.do("k", service, 2))
    await wait_all_tasks_blocked()
    assert flights.statistics().in_flight == 2
    assert list(await asyncio.gather(old, new)) == [2, 4]
    assert service.runs == 2


async def test_cancelling_the_execution_from_outside_cancels_its_waiters() -> None:
    flights = Coalescer()
    started = asyncio.Event()

    async def stubborn() -> None:
        started.set()
        await asyncio.sleep(10)

    waiter = asyncio.create_task(flights.do("k", stubborn))
    await started.wait()
    (flight,) = flights._running
    assert flight.task is not None
    flight.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_the_execution_runs_in_the_first_callers_context() -> None:
    flights = Coalescer()
    with corral.request_scope() as scope:

        async def which_scope() -> object:
            from corral.optimize._request_scope import CURRENT_REQUEST_SCOPE

            return CURRENT_REQUEST_SCOPE.get()

        assert await flights.do("k", which_scope) is scope


# -- the decorator ---------------------------------------------------------------------


async def test_the_decorator_keys_calls_by_their_arguments() -> None:
    runs: list[tuple[int, int]] = []

    @corral.coalesce
    async def add(a: int, b: int = 0) -> int:
        runs.append((a, b))
        await asyncio.sleep(1)
        return a + b

    results = await asyncio.gather(add(1, b=2), add(1, b=2), add(1, 2), add(2))
    assert list(results) == [3, 3, 3, 2]
    assert runs == [(1, 2), (1, 2), (2, 0)]  # keyword and positional calls differ
    assert add.__name__ == "add"
    assert add.statistics().shared == 1
    assert repr(add).startswith("<coalesced test_the_decorator_keys_calls_by_their_arguments")


async def test_the_decorator_takes_a_key_function_and_forgets_by_arguments() -> None:
    runs: list[str] = []

    @corral.coalesce(key=lambda url, **_: url.lower())
    async def fetch(url: str, *, attempt: int = 0) -> str:
        runs.append(url)
        await asyncio.sleep(1)
        return url

    first = asyncio.create_task(fetch("HTTP://A"))
    await wait_all_tasks_blocked()
    assert fetch.forget("http://a", attempt=3) is True
    second = asyncio.create_task(fetch("http://a"))
    same = asyncio.create_task(fetch("Http://A", attempt=1))
    results = await asyncio.gather(first, second, same)
    assert list(results) == ["HTTP://A", "http://a", "http://a"]
    assert runs == ["HTTP://A", "http://a"]


async def test_a_decorated_method_is_keyed_by_its_instance_too() -> None:
    class Repository:
        def __init__(self) -> None:
            self.runs = 0

        @corral.coalesce
        async def get(self, key: int) -> int:
            self.runs += 1
            await asyncio.sleep(1)
            return key

    one, two = Repository(), Repository()
    first: int = await one.get(1)  # typed like the method: an int
    assert first == 1
    assert list(await asyncio.gather(one.get(1), one.get(1), two.get(1))) == [1, 1, 1]
    assert (one.runs, two.runs) == (2, 1)  # the first call ran alone, before the others
    assert isinstance(Repository.get, corral.Coalesced)


async def test_unhashable_arguments_are_refused_with_a_hint() -> None:
    @corral.coalesce
    async def echo(value: object) -> object:
        return value

    with pytest.raises(ArgumentTypeError, match=r"not hashable.*pass key="):
        await echo([1])
    with pytest.raises(ArgumentTypeError, match="not hashable"):
        Coalescer().forget([1])  # type: ignore[arg-type]


# -- bad input ---------------------------------------------------------------------------


async def _job() -> int:
    return 1


async def test_a_coroutine_object_is_refused_where_a_function_is_expected() -> None:
    coroutine = _job()
    with pytest.raises(ArgumentTypeError, match="fn must be a function, not a coroutine object"):
        await Coalescer().do("k", coroutine)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="not a coroutine object"):
        corral.coalesce(_job())  # type: ignore[call-overload]
    with pytest.raises(ArgumentTypeError, match="key must be a function, not int"):
        corral.coalesce(key=3)  # type: ignore[call-overload]


async def test_a_synchronous_function_fails_every_waiter_with_a_clear_error() -> None:
    def sync() -> int:
        return 1

    flights = Coalescer()
    with pytest.raises(ArgumentTypeError, match=r"fn must be an async function.*returned int"):
        await flights.do("k", sync)  # type: ignore[arg-type]
    assert flights.statistics().in_flight == 0


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, Coalescer):
            self.events.append((name, fields))


async def test_executions_are_reported_to_instruments() -> None:
    service = Service(delay=5)
    flights = Coalescer()
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        await asyncio.gather(flights.do("a", service, 1), flights.do("a", service, 1))
        with corral.move_on_after(1):
            await flights.do("b", service, 1)
        await wait_all_tasks_blocked()
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.events == [
        ("started", {"key": "a"}),
        ("finished", {"key": "a", "waiters": 2}),
        ("started", {"key": "b"}),
        ("cancelled", {"key": "b"}),
    ]


# -- every interleaving ------------------------------------------------------------------


RUN_TIME = 2.5


def expected(patiences: Sequence[float]) -> tuple[int, int, int]:
    """(executions, executions cancelled, callers served) when caller i joins at time i.

    An execution ends after RUN_TIME unless every caller waiting for it left before.
    """
    runs = cancelled = served = 0
    leaves: list[float] = []  # when the callers of the current execution leave
    start = 0.0
    for now, patience in [*enumerate(patiences), (float("inf"), 0.0)]:
        if leaves:
            end, last = start + RUN_TIME, max(leaves)
            if last < min(end, now):
                cancelled += 1
                leaves = []
            elif end < now:
                served += sum(leave > end for leave in leaves)
                leaves = []
        if now == float("inf"):
            break
        if not leaves:
            runs += 1
            start = now
        leaves.append(now + patience)
    return runs, cancelled, served


async def interleave(patiences: Sequence[float]) -> None:
    """Caller i joins key "k" at time i and leaves after its patience unless served."""
    service = Service(delay=RUN_TIME)
    flights = Coalescer()
    outcomes: list[str] = []

    async def caller(start: int, patience: float) -> None:
        await asyncio.sleep(start)
        with corral.move_on_after(patience):
            assert await flights.do("k", service, 1) == 2
            outcomes.append("served")
            return
        outcomes.append("left")

    async with corral.TaskGroup() as tg:
        for start, patience in enumerate(patiences):
            tg.start_soon(caller, start, patience)
    runs, cancelled, served = expected(patiences)
    assert (service.runs, service.cancelled, outcomes.count("served")) == (
        runs,
        cancelled,
        served,
    )
    assert len(outcomes) == len(patiences)
    statistics = flights.statistics()
    assert statistics == CoalescerStatistics(
        calls=len(patiences),
        shared=len(patiences) - runs,
        in_flight=0,
        waiting=0,
        cancelled=cancelled,
    )


def test_the_model_of_interleavings_is_right() -> None:
    assert expected([100.0, 100.0]) == (1, 0, 2)
    assert expected([0.75, 100.0]) == (2, 1, 1)  # caller 0 leaves before caller 1 joins
    assert expected([1.75, 0.75]) == (1, 1, 0)
    assert expected([1.75, 3.25, 3.25]) == (1, 0, 2)  # caller 2 joins the running one
    assert expected([1.75, 3.25, 3.25, 3.25]) == (2, 0, 3)  # caller 3 comes after its end


# Patience values never tie with a join (whole seconds) or an end (x.5 seconds).
@settings(max_examples=150, deadline=None)
@given(patiences=st.lists(st.sampled_from([0.75, 1.75, 3.25, 100.0]), min_size=1, max_size=6))
def test_every_interleaving_of_joins_and_departures_keeps_the_refcount(
    patiences: list[float],
) -> None:
    corral.testing.run(interleave, patiences)
