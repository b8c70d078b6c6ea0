"""Stream: the sequential operators, fused and staged alike, iteration, repr, bad input."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import math
import operator
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral import Stream, StreamIterator, StreamStatistics
from corral.errors import ArgumentTypeError, InvalidArgumentError
from corral.optimize._stream_base import AsyncSource
from corral.optimize._stream_ops import Steps
from corral.testing import run


async def agen(items: Iterable[Any]) -> AsyncIterator[Any]:
    """The items, from an async generator that yields to the loop between them."""
    for item in items:
        await asyncio.sleep(0)
        yield item


def double(x: int) -> int:
    return x * 2


async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def odd(x: int) -> bool:
    return x % 2 == 1


async def aodd(x: int) -> bool:
    return x % 2 == 1


def reference(items: list[int], take: int, skip: int, size: int) -> list[Any]:
    """The pipeline of the property test below, written with plain iterators."""
    totals = itertools.accumulate(map(double, filter(odd, items)), operator.add, initial=0)
    pairs = itertools.islice(enumerate(itertools.islice(totals, skip, None), 1), take)
    kept = itertools.takewhile(lambda pair: pair[1] < 10_000, pairs)
    flat = [part for index, total in kept for part in (index, total)]
    return [flat[i : i + size] for i in range(0, len(flat), size)]


@given(
    items=st.lists(st.integers(-100, 100), max_size=40),
    take=st.integers(0, 30),
    skip=st.integers(0, 5),
    size=st.integers(1, 7),
    async_source=st.booleans(),
    async_fns=st.booleans(),
)
def test_every_sequential_operator_agrees_with_plain_iterators(
    items: list[int], take: int, skip: int, size: int, async_source: bool, async_fns: bool
) -> None:
    # Sync source and sync functions run fused; any async part runs as stages.
    async def pair(index: int, total: int) -> list[int]:
        return [index, total]

    source: Any = agen(items) if async_source else items
    stream = (
        Stream(source)
        .filter(aodd if async_fns else odd)
        .map(adouble if async_fns else double)
        .scan(operator.add, 0)
        .skip(skip)
        .enumerate(1)
        .take(take)
        .take_while(lambda pair: pair[1] < 10_000)
        .flat_map(lambda pair: pair if not async_fns else agen(pair))
        .chunk(size)
    )
    assert run(stream.list) == reference(items, take, skip, size)


async def test_a_fused_stream_runs_builtin_iterators_without_awaiting() -> None:
    stream = Stream(range(10)).map(double).filter(lambda x: x % 3).chunk(3)
    iterator = stream.iterate()
    assert iterator._top is None  # no stage: one chain of builtin iterators
    assert await stream.list() == [[2, 4, 8], [10, 14, 16]]
    # an async function ends the fused part: the rest runs as stages
    mixed = Stream(range(4)).map(double).map(adouble)
    assert mixed.iterate()._top is not None
    # after an async stage, consecutive sync maps and filters share one stage
    steps = Stream(agen([1])).map(double).filter(odd).map(str).iterate()._top
    assert isinstance(steps, Steps)
    assert steps._steps == ((double, False), (odd, True), (str, False))
    assert isinstance(steps.upstream, AsyncSource)
    assert await Stream(range(4)).map(double).map(adouble).list() == [0, 4, 8, 12]


async def test_a_stream_over_a_reiterable_source_runs_again_and_never_changes() -> None:
    base = Stream([1, 2, 3])
    doubled = base.map(double)
    assert await doubled.list() == [2, 4, 6]
    assert await doubled.list() == [2, 4, 6]
    assert await base.list() == [1, 2, 3]  # operators return new streams
    assert await Stream(doubled).take(1).list() == [2]  # a Stream is a source too


async def test_an_async_generator_source_is_read_once() -> None:
    stream = Stream(agen([1, 2]))
    assert await stream.list() == [1, 2]
    assert await stream.list() == []


async def test_async_callables_of_every_shape_are_awaited() -> None:
    class Tripler:
        async def __call__(self, x: int) -> int:
            return x * 3

    class Adder:
        def __init__(self, n: int) -> None:
            self.n = n

        async def add(self, x: int) -> int:
            return x + self.n

    async def add(x: int, y: int) -> int:
        return x + y

    items = [1, 2]
    assert await Stream(items).map(Tripler()).list() == [3, 6]
    assert await Stream(items).map(Adder(10).add).list() == [11, 12]
    assert await Stream(items).map(functools.partial(add, 100)).list() == [101, 102]
    assert await Stream(items).map(str).list() == ["1", "2"]  # a class: a sync callable


async def test_flat_map_takes_iterables_async_iterables_and_streams() -> None:
    async def inner(x: int) -> Stream[int]:
        return Stream(range(x)).map(lambda y: x * 10 + y)

    assert await Stream([1, 2]).flat_map(inner).list() == [10, 20, 21]
    assert await Stream([1, 2]).flat_map(lambda x: agen([x, x])).list() == [1, 1, 2, 2]
    assert await Stream(agen([[1], [], [2, 3]])).flat_map(lambda x: x).list() == [1, 2, 3]
    with pytest.raises(ArgumentTypeError, match="the result of flat_map's fn must be an itera"):
        await Stream([1]).flat_map(lambda x: x).list()  # type: ignore[arg-type, return-value]


async def test_scan_emits_the_initial_value_first() -> None:
    async def add(total: int, x: int) -> int:
        return total + x

    assert await Stream([1, 2, 3]).scan(operator.add, 0).list() == [0, 1, 3, 6]
    assert await Stream(agen([1, 2, 3])).scan(add, 10).list() == [10, 11, 13, 16]
    assert await Stream([]).scan(operator.add, 0).list() == [0]


async def test_take_zero_never_reads_the_source() -> None:
    started = False

    async def source() -> AsyncIterator[int]:
        nonlocal started
        started = True
        yield 1

    assert await Stream(source()).take(0).list() == []
    assert not started


async def test_zip_stops_with_the_shortest_input() -> None:
    zipped = Stream(agen([1, 2, 3])).zip("ab", Stream(range(10)).map(double))
    assert await zipped.list() == [(1, "a", 0), (2, "b", 2)]
    assert await Stream([1, 2]).zip().list() == [(1,), (2,)]


def test_repr_shows_the_source_and_the_chain() -> None:
    async def ticks() -> AsyncGenerator[int]:
        yield 1

    source = ticks()
    stream: Stream[Any] = (
        Stream(source)
        .map(double)
        .filter(odd)
        .chunk(100)
        .buffer(4)
        .take(5)
        .skip(1)
        .enumerate(3)
        .merge([], [])
        .zip([3])
    )
    assert repr(stream) == (
        "<Stream ticks() | map | filter"
        " | chunk(100) | buffer(4) | take(5) | skip(1) | enumerate(3) | merge(2) | zip(1)>"
    )
    assert repr(Stream(range(3))) == "<Stream range>"
    timed = Stream([1]).chunk(10, timeout=0.5).throttle(5, per=timedelta(seconds=2))
    assert repr(timed.debounce(0.25).timeout(3)) == (
        "<Stream list | chunk(10, timeout=0.5) | throttle(5/2s) | debounce(0.25) | timeout(3)>"
    )
    source.aclose().close()  # never started: nothing to run


async def test_an_iterator_counts_what_it_emitted() -> None:
    iterator = Stream(agen("abc")).map(str.upper).iterate()
    assert repr(iterator) == "<StreamIterator agen() | map: 0 emitted, 0 tasks running>"
    async with iterator:
        assert await anext(iterator) == "A"
        assert iterator.statistics() == StreamStatistics(emitted=1, tasks=0, closed=False)
    assert iterator.statistics() == StreamStatistics(emitted=1, tasks=0, closed=True)
    assert repr(iterator) == "<StreamIterator agen() | map: 1 emitted, closed>"
    assert [item async for item in iterator] == []  # closed: exhausted
    assert isinstance(aiter(Stream([])), StreamIterator)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, StreamIterator):
            self.events.append((name, dict(fields)))


async def test_closing_is_reported_to_instruments_with_its_reason() -> None:
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        await Stream(agen([1, 2])).list()
        await Stream([1, 2]).list()
        with pytest.raises(ZeroDivisionError):
            await Stream([0]).map(lambda x: 1 / x).list()
        async with Stream(agen([1])).iterate() as items:
            await anext(items)
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.events == [
        ("closed", {"reason": "exhausted", "emitted": 2}),
        ("closed", {"reason": "exhausted", "emitted": 2}),  # list() drains a fused chain
        ("closed", {"reason": "failed", "emitted": 0}),
        ("closed", {"reason": "closed", "emitted": 1}),
    ]


# ---------------------------------------------------------------------- bad input


async def test_a_coroutine_object_instead_of_a_function_is_refused_and_closed() -> None:
    coroutine = adouble(1)
    with pytest.raises(ArgumentTypeError, match="fn must be a function, not a coroutine obj"):
        Stream([1]).map(coroutine)  # type: ignore[call-overload]
    assert inspect.getcoroutinestate(coroutine) == "CORO_CLOSED"  # no "never awaited"
    with pytest.raises(ArgumentTypeError, match="predicate must be a function, not a corou"):
        Stream([1]).filter(aodd(1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("operator_name", "args"),
    [
        ("map", (1,)),
        ("filter", ("x",)),
        ("flat_map", (None,)),
        ("take_while", (3.0,)),
        ("scan", (0, 0)),
    ],
)
def test_a_function_argument_must_be_callable(operator_name: str, args: tuple[Any, ...]) -> None:
    with pytest.raises(ArgumentTypeError, match="must be callable, not"):
        getattr(Stream([1]), operator_name)(*args)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.chunk(0), InvalidArgumentError, "size must be at least 1, got 0"),
        (lambda s: s.chunk(-3), InvalidArgumentError, "size must be at least 1, got -3"),
        (lambda s: s.chunk(math.nan), InvalidArgumentError, "size must be a whole number"),
        (lambda s: s.chunk(2.5), ArgumentTypeError, r"size must be an int, not float \(2.5\)"),
        (lambda s: s.chunk(True), ArgumentTypeError, "size must be an int, not bool"),
        (lambda s: s.chunk(2, timeout=0), InvalidArgumentError, "timeout must be a positive"),
        (lambda s: s.chunk(2, timeout=-1), InvalidArgumentError, "timeout must not be negati"),
        (lambda s: s.chunk(2, timeout=math.nan), InvalidArgumentError, "timeout must be a nu"),
        (lambda s: s.chunk(2, timeout="1"), ArgumentTypeError, "timeout must be seconds"),
        (lambda s: s.buffer(0), InvalidArgumentError, "size must be at least 1, got 0"),
        (lambda s: s.take(-1), InvalidArgumentError, "count must be at least 0, got -1"),
        (lambda s: s.take(None), ArgumentTypeError, "count must be an int, not NoneType"),
        (lambda s: s.skip(-2), InvalidArgumentError, "count must be at least 0, got -2"),
        (lambda s: s.enumerate(1.0), ArgumentTypeError, "start must be an int, not float"),
        (lambda s: s.throttle(0), InvalidArgumentError, "rate"),
        (lambda s: s.throttle(-1), InvalidArgumentError, "rate"),
        (lambda s: s.throttle(math.nan), InvalidArgumentError, "rate"),
        (lambda s: s.throttle("5"), ArgumentTypeError, "rate"),
        (lambda s: s.throttle(5, per=0), InvalidArgumentError, "per must be a positive"),
        (lambda s: s.throttle(5, per=-1), InvalidArgumentError, "per must not be negative"),
        (lambda s: s.debounce(0), InvalidArgumentError, "seconds must be a positive durat"),
        (lambda s: s.debounce(math.nan), InvalidArgumentError, "seconds must be a number"),
        (lambda s: s.debounce(None), ArgumentTypeError, "seconds must be seconds as a float"),
        (lambda s: s.timeout(0), InvalidArgumentError, "seconds must be a positive duration"),
        (lambda s: s.timeout(-0.5), InvalidArgumentError, "seconds must not be negative"),
        (lambda s: s.timeout(timedelta(0)), InvalidArgumentError, "seconds must be a positiv"),
        (lambda s: s.merge([1], 5), ArgumentTypeError, r"others\[1\] must be an iterable"),
        (lambda s: s.zip(None), ArgumentTypeError, r"others\[0\] must be an iterable or"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call(Stream([1]))


async def test_a_source_must_be_an_iterable() -> None:
    with pytest.raises(
        ArgumentTypeError, match=r"source must be an iterable or async iterable, not int \(3\)"
    ):
        Stream(3)  # type: ignore[arg-type]
    with pytest.raises(
        ArgumentTypeError, match="source must be an iterable or async iterable, not a corou"
    ):
        Stream(adouble(2))  # type: ignore[arg-type]
