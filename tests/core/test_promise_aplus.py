"""Promises/A+ 1.1, clauses 2.1 to 2.3, re-derived as pytest cases.

The cases only use the three functions of the usual adapter (``resolved``, ``rejected``,
``deferred``) plus ``then``. Each runs on every event loop of the test plugin. Where the
specification waits "a while", these cases wait for the microtask queue to drain
(``flush``), which is deterministic: reactions run in one loop callback, so when a
reaction queued last has run, so have all the others.

Python has no ``undefined`` and no ``this``: clause 2.2.5 (callbacks called as plain
functions) has no counterpart, and for 2.2.1 ``None`` is the absent callback while any
other non-callable is refused with ``ArgumentTypeError`` (corral's rule for bad input)
instead of being ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from corral._core._promise import Promise, Resolvers
from corral.errors import ArgumentTypeError

# --------------------------------------------------------------------------- adapter


def resolved(value: Any) -> Promise[Any]:
    return Promise.resolved(value)


def rejected(reason: BaseException) -> Promise[Any]:
    return Promise.rejected(reason)


def deferred() -> Resolvers[Any]:
    return Promise.with_resolvers()


# --------------------------------------------------------------------------- helpers


class Sentinel:
    """A plain value with an identity (no ``then``, not awaitable)."""


class Reason(Exception):
    """A rejection reason with an identity."""


async def flush() -> None:
    """Wait until every queued microtask, and every one they queue, has run."""
    await resolved(None).then(lambda _: None)


def through(value: object) -> Promise[object]:
    """A derived promise whose callback returns ``value``: [[Resolve]](promise2, value)."""
    return resolved(1).then(lambda _: value)


def later(fn: Callable[..., object], *args: object) -> None:
    """Call ``fn(*args)`` from a later loop callback (the specification's "after a delay")."""
    asyncio.get_running_loop().call_soon(fn, *args)


#: How a promise reaches its outcome: already settled, settled right after ``then``
#: callbacks could be attached, or settled from a later loop callback.
HOW = ("already", "immediately", "eventually")


def fulfilled_with(value: object, how: str) -> Promise[Any]:
    if how == "already":
        return resolved(value)
    promise, resolve, _ = deferred()
    if how == "immediately":
        resolve(value)
    else:
        later(resolve, value)
    return promise


def rejected_with(reason: BaseException, how: str) -> Promise[Any]:
    if how == "already":
        return rejected(reason)
    promise, _, reject = deferred()
    if how == "immediately":
        reject(reason)
    else:
        later(reject, reason)
    return promise


async def outcome(promise: Promise[Any]) -> tuple[str, object]:
    """``("fulfilled", value)`` or ``("rejected", error)`` once ``promise`` settles."""
    try:
        return ("fulfilled", await promise)
    except BaseException as error:
        return ("rejected", error)


# ------------------------------------------------------------- 2.1 promise states


async def test_2_1_2_fulfilled_promise_never_changes_state() -> None:
    value = Sentinel()
    calls: list[object] = []
    promise, resolve, reject = deferred()
    promise.then(calls.append, lambda error: calls.append(("rejected", error)))
    assert resolve(value)
    assert not reject(Reason())
    assert not resolve(Sentinel())
    await flush()
    assert calls == [value]
    assert promise.result() is value


async def test_2_1_2_fulfilled_later_then_rejected_stays_fulfilled() -> None:
    value = Sentinel()
    calls: list[object] = []
    promise, resolve, reject = deferred()
    promise.then(calls.append, lambda error: calls.append(("rejected", error)))
    later(resolve, value)
    later(reject, Reason())
    await flush()
    await flush()
    assert calls == [value]


async def test_2_1_3_rejected_promise_never_changes_state() -> None:
    reason = Reason()
    calls: list[object] = []
    promise, resolve, reject = deferred()
    promise.then(lambda value: calls.append(("fulfilled", value)), calls.append)
    assert reject(reason)
    assert not resolve(Sentinel())
    assert not reject(Reason())
    await flush()
    assert calls == [reason]
    assert promise.exception() is reason


# ------------------------------------------------------------------ 2.2 then


async def test_2_2_1_absent_callbacks_pass_the_outcome_through() -> None:
    value, reason = Sentinel(), Reason()
    assert await resolved(value).then() is value
    assert await resolved(value).then(None, None) is value
    assert await outcome(rejected(reason).then()) == ("rejected", reason)
    assert await outcome(rejected(reason).then(lambda v: v)) == ("rejected", reason)


@pytest.mark.parametrize("bad", [5, "callback", Sentinel(), False])
async def test_2_2_1_non_callable_callbacks_are_refused(bad: Any) -> None:
    promise = resolved(1)
    with pytest.raises(ArgumentTypeError, match="on_fulfilled must be callable"):
        promise.then(bad)
    with pytest.raises(ArgumentTypeError, match="on_rejected must be callable"):
        promise.then(None, bad)
    assert promise.statistics().reactions == 0


@pytest.mark.parametrize("how", HOW)
async def test_2_2_2_1_on_fulfilled_gets_the_value(how: str) -> None:
    value = Sentinel()
    calls: list[object] = []
    await fulfilled_with(value, how).then(calls.append)
    assert calls == [value]


async def test_2_2_2_2_on_fulfilled_not_called_before_fulfillment() -> None:
    calls: list[object] = []
    promise, resolve, _ = deferred()
    promise.then(calls.append)
    await flush()
    assert calls == []
    resolve(Sentinel())
    await flush()
    assert len(calls) == 1


async def test_2_2_2_2_on_fulfilled_never_called_for_a_rejection() -> None:
    calls: list[object] = []
    await outcome(rejected_with(Reason(), "eventually").then(calls.append))
    assert calls == []


@pytest.mark.parametrize("how", HOW)
async def test_2_2_2_3_on_fulfilled_called_once(how: str) -> None:
    calls: list[object] = []
    promise = fulfilled_with(1, how)
    promise.then(calls.append)
    await promise
    assert not promise.resolve(2)
    assert not promise.reject(Reason())
    later(promise.resolve, 3)
    await flush()
    await flush()
    assert calls == [1]


@pytest.mark.parametrize("how", HOW)
async def test_2_2_3_1_on_rejected_gets_the_reason(how: str) -> None:
    reason = Reason()
    calls: list[object] = []
    await rejected_with(reason, how).then(None, calls.append)
    assert calls == [reason]


async def test_2_2_3_2_on_rejected_not_called_before_rejection() -> None:
    calls: list[BaseException] = []
    promise, _, reject = deferred()
    promise.then(None, calls.append)
    await flush()
    assert calls == []
    reject(Reason())
    await flush()
    assert len(calls) == 1


async def test_2_2_3_2_on_rejected_never_called_for_a_fulfillment() -> None:
    calls: list[BaseException] = []
    await fulfilled_with(1, "eventually").then(None, calls.append)
    assert calls == []


@pytest.mark.parametrize("how", HOW)
async def test_2_2_3_3_on_rejected_called_once(how: str) -> None:
    reason = Reason()
    calls: list[object] = []
    promise = rejected_with(reason, how)
    promise.then(None, calls.append)
    await outcome(promise)
    assert not promise.reject(Reason())
    assert not promise.resolve(1)
    later(promise.reject, Reason())
    await flush()
    await flush()
    assert calls == [reason]


@pytest.mark.parametrize("how", HOW)
async def test_2_2_4_then_returns_before_on_fulfilled_runs(how: str) -> None:
    events: list[str] = []
    promise = fulfilled_with(1, how)
    derived = promise.then(lambda _: events.append("callback"))
    events.append("then returned")
    await derived
    assert events == ["then returned", "callback"]


@pytest.mark.parametrize("how", HOW)
async def test_2_2_4_then_returns_before_on_rejected_runs(how: str) -> None:
    events: list[str] = []
    promise = rejected_with(Reason(), how)
    derived = promise.then(None, lambda _: events.append("callback"))
    events.append("then returned")
    await derived
    assert events == ["then returned", "callback"]


async def test_2_2_4_settling_never_runs_callbacks_synchronously() -> None:
    events: list[str] = []
    fulfilled, resolve, _ = deferred()
    failed, _, reject = deferred()
    fulfilled.then(lambda _: events.append("fulfilled"))
    failed.then(None, lambda _: events.append("rejected"))
    resolve(1)
    reject(Reason())
    events.append("settled")
    await flush()
    assert events == ["settled", "fulfilled", "rejected"]


async def test_2_2_4_callback_added_inside_a_callback_runs_after_it() -> None:
    events: list[str] = []
    promise = resolved(1)

    def outer(_: object) -> None:
        promise.then(lambda _: events.append("inner"))
        events.append("outer done")

    promise.then(outer)
    await flush()
    assert events == ["outer done", "inner"]


@pytest.mark.parametrize("how", HOW)
async def test_2_2_6_1_fulfillment_callbacks_run_in_then_order(how: str) -> None:
    events: list[object] = []
    promise = fulfilled_with("v", how)
    promise.then(lambda v: events.append((1, v)))
    promise.then(lambda v: events.append((2, v)))
    promise.then(None, lambda e: events.append(("never", e)))
    promise.then(lambda v: events.append((3, v)))
    await flush()
    assert events == [(1, "v"), (2, "v"), (3, "v")]


@pytest.mark.parametrize("how", HOW)
async def test_2_2_6_1_one_throwing_callback_does_not_stop_the_others(how: str) -> None:
    events: list[int] = []
    promise = fulfilled_with(1, how)

    def boom(_: object) -> None:
        events.append(2)
        raise Reason()

    promise.then(lambda _: events.append(1))
    derived = promise.then(boom)
    promise.then(lambda _: events.append(3))
    assert (await outcome(derived))[0] == "rejected"
    await flush()
    assert events == [1, 2, 3]


@pytest.mark.parametrize("how", HOW)
async def test_2_2_6_1_each_derived_promise_gets_its_own_result(how: str) -> None:
    promise = fulfilled_with(10, how)
    first = promise.then(lambda v: v + 1)
    second = promise.then(lambda v: v * 2)
    assert (await first, await second) == (11, 20)


@pytest.mark.parametrize("how", HOW)
async def test_2_2_6_2_rejection_callbacks_run_in_then_order(how: str) -> None:
    reason = Reason()
    events: list[tuple[object, object]] = []
    promise = rejected_with(reason, how)
    promise.then(None, lambda e: events.append((1, e)))
    passed_on = promise.then(lambda v: events.append(("never", v)))
    promise.then(None, lambda e: events.append((2, e)))
    assert await outcome(passed_on) == ("rejected", reason)
    await flush()
    assert events == [(1, reason), (2, reason)]


async def test_2_2_6_callbacks_registered_while_others_run_come_last() -> None:
    events: list[str] = []
    promise, resolve, _ = deferred()

    def first(_: object) -> None:
        events.append("first")
        promise.then(lambda _: events.append("added by first"))

    promise.then(first)
    promise.then(lambda _: events.append("second"))
    resolve(1)
    await flush()
    assert events == ["first", "second", "added by first"]


async def test_2_2_7_then_returns_a_new_promise() -> None:
    promise = resolved(1)
    derived = promise.then()
    assert isinstance(derived, Promise)
    assert derived is not promise
    await derived


@pytest.mark.parametrize("how", HOW)
async def test_2_2_7_1_returned_value_fulfills_the_derived_promise(how: str) -> None:
    value = Sentinel()
    assert await fulfilled_with(1, how).then(lambda _: value) is value
    assert await rejected_with(Reason(), how).then(None, lambda _: value) is value


@pytest.mark.parametrize("how", HOW)
async def test_2_2_7_2_raised_error_rejects_the_derived_promise(how: str) -> None:
    reason = Reason()

    def boom(_: object) -> None:
        raise reason

    assert await outcome(fulfilled_with(1, how).then(boom)) == ("rejected", reason)
    assert await outcome(rejected_with(Reason(), how).then(None, boom)) == ("rejected", reason)


@pytest.mark.parametrize("how", HOW)
async def test_2_2_7_3_missing_on_fulfilled_passes_the_value(how: str) -> None:
    value = Sentinel()
    assert await fulfilled_with(value, how).then(None, lambda _: "wrong") is value


@pytest.mark.parametrize("how", HOW)
async def test_2_2_7_4_missing_on_rejected_passes_the_reason(how: str) -> None:
    reason = Reason()
    derived = rejected_with(reason, how).then(lambda _: "wrong")
    assert await outcome(derived) == ("rejected", reason)


# ---------------------------------------------------- 2.3 the resolution procedure


async def test_2_3_1_resolving_with_itself_rejects_with_type_error() -> None:
    derived: list[Promise[Any]] = []
    derived.append(resolved(1).then(lambda _: derived[0]))
    state, error = await outcome(derived[0])
    assert state == "rejected"
    assert isinstance(error, TypeError)
    assert "itself" in str(error)


async def test_2_3_1_rejection_handler_returning_its_promise_rejects_too() -> None:
    derived: list[Promise[Any]] = []
    derived.append(rejected(Reason()).then(None, lambda _: derived[0]))
    state, error = await outcome(derived[0])
    assert state == "rejected"
    assert isinstance(error, TypeError)


async def test_2_3_1_resolve_with_itself_rejects_with_type_error() -> None:
    promise, resolve, _ = deferred()
    assert resolve(promise)
    assert isinstance(promise.exception(), TypeError)


async def test_2_3_2_1_adopting_a_pending_promise_stays_pending() -> None:
    inner, resolve_inner, _ = deferred()
    derived = through(inner)
    await flush()
    assert not derived.done()
    value = Sentinel()
    resolve_inner(value)
    assert await derived is value


@pytest.mark.parametrize("how", HOW)
async def test_2_3_2_2_adopting_a_fulfilled_promise_takes_its_value(how: str) -> None:
    value = Sentinel()
    derived = through(fulfilled_with(value, how))
    assert await derived is value


@pytest.mark.parametrize("how", HOW)
async def test_2_3_2_3_adopting_a_rejected_promise_takes_its_reason(how: str) -> None:
    reason = Reason()
    derived = through(rejected_with(reason, how))
    assert await outcome(derived) == ("rejected", reason)


async def test_2_3_2_adopting_marks_the_inner_rejection_handled() -> None:
    inner = rejected(Reason())
    derived = through(inner)
    await outcome(derived)
    assert inner._handled is True


class Thenable:
    """An object with a ``then`` that behaves as told."""

    def __init__(self, then: Callable[[Callable[..., None], Callable[..., None]], object]):
        self._then = then
        self.calls = 0

    def then(self, resolve: Callable[..., None], reject: Callable[..., None]) -> object:
        self.calls += 1
        return self._then(resolve, reject)


async def test_2_3_3_1_then_is_read_exactly_once() -> None:
    reads = 0

    class CountingThenable:
        @property
        def then(self) -> Callable[..., None]:
            nonlocal reads
            reads += 1
            return lambda resolve, reject: resolve("value")

    assert await through(CountingThenable()) == "value"
    assert reads == 1


async def test_2_3_3_2_then_that_cannot_be_read_rejects() -> None:
    reason = Reason()

    class BrokenThenable:
        @property
        def then(self) -> object:
            raise reason

    derived = through(BrokenThenable())
    assert await outcome(derived) == ("rejected", reason)


async def test_2_3_3_3_then_is_called_with_the_thenable_bound() -> None:
    seen: list[object] = []

    class SelfAware:
        def then(self, resolve: Callable[..., None], reject: Callable[..., None]) -> None:
            seen.append(self)
            resolve(None)

    thenable = SelfAware()
    await through(thenable)
    assert seen == [thenable]


async def test_2_3_3_3_then_is_called_later_not_inside_the_resolution() -> None:
    events: list[str] = []

    def then(resolve: Callable[..., None], reject: Callable[..., None]) -> None:
        events.append("then called")
        resolve(1)

    thenable = Thenable(then)
    promise, resolve, _ = deferred()
    resolve(thenable)
    events.append("resolve returned")
    assert await promise == 1
    assert events == ["resolve returned", "then called"]


@pytest.mark.parametrize("when", ["synchronously", "later"])
@pytest.mark.parametrize("value", [None, 0, "text", Sentinel(), [1, 2], {"key": "value"}], ids=repr)
async def test_2_3_3_3_1_resolve_promise_fulfills_with_a_plain_value(
    when: str, value: object
) -> None:
    def then(resolve: Callable[..., None], reject: Callable[..., None]) -> None:
        if when == "synchronously":
            resolve(value)
        else:
            later(resolve, value)

    assert await through(Thenable(then)) is value


@pytest.mark.parametrize("how", HOW)
async def test_2_3_3_3_1_resolve_promise_with_a_promise_adopts_it(how: str) -> None:
    value, reason = Sentinel(), Reason()
    good = Thenable(lambda resolve, reject: resolve(fulfilled_with(value, how)))
    bad = Thenable(lambda resolve, reject: resolve(rejected_with(reason, how)))
    assert await through(good) is value
    assert await outcome(through(bad)) == ("rejected", reason)


@pytest.mark.parametrize("depth", [1, 2, 5])
async def test_2_3_3_3_1_nested_thenables_resolve_recursively(depth: int) -> None:
    value = Sentinel()

    def nest(level: int) -> object:
        if level == 0:
            return value
        return Thenable(lambda resolve, reject: later(resolve, nest(level - 1)))

    assert await through(nest(depth)) is value


async def test_2_3_3_3_1_thenable_resolving_with_a_rejecting_thenable_rejects() -> None:
    reason = Reason()
    inner = Thenable(lambda resolve, reject: reject(reason))
    outer = Thenable(lambda resolve, reject: resolve(inner))
    assert await outcome(through(outer)) == ("rejected", reason)


async def test_2_3_3_3_1_thenable_resolving_with_its_own_promise_rejects() -> None:
    derived: list[Promise[Any]] = []
    thenable = Thenable(lambda resolve, reject: resolve(derived[0]))
    derived.append(through(thenable))
    state, error = await outcome(derived[0])
    assert state == "rejected"
    assert isinstance(error, TypeError)


@pytest.mark.parametrize("when", ["synchronously", "later"])
async def test_2_3_3_3_2_reject_promise_rejects(when: str) -> None:
    reason = Reason()

    def then(resolve: Callable[..., None], reject: Callable[..., None]) -> None:
        if when == "synchronously":
            reject(reason)
        else:
            later(reject, reason)

    assert await outcome(through(Thenable(then))) == ("rejected", reason)


async def test_2_3_3_3_2_reject_promise_with_a_non_exception_rejects_with_type_error() -> None:
    thenable = Thenable(lambda resolve, reject: reject("not an exception"))
    state, error = await outcome(through(thenable))
    assert state == "rejected"
    assert isinstance(error, ArgumentTypeError)
    assert "'not an exception'" in str(error)


def _calls_back_twice(first: str, second: str, when: str) -> Thenable:
    """A thenable calling resolve/reject twice: ``first`` then ``second``."""

    def call(resolve: Callable[..., None], reject: Callable[..., None], which: str) -> None:
        if which == "resolve":
            resolve("first" if which == first else "second")
        else:
            reject(Reason("first" if which == first else "second"))

    def then(resolve: Callable[..., None], reject: Callable[..., None]) -> None:
        if when == "synchronously":
            call(resolve, reject, first)
            call(resolve, reject, second)
        elif when == "later":
            later(call, resolve, reject, first)
            later(call, resolve, reject, second)
        else:  # the first synchronously, the second later
            call(resolve, reject, first)
            later(call, resolve, reject, second)

    return Thenable(then)


@pytest.mark.parametrize("when", ["synchronously", "later", "mixed"])
@pytest.mark.parametrize(
    ("first", "second"),
    [("resolve", "resolve"), ("resolve", "reject"), ("reject", "resolve"), ("reject", "reject")],
)
async def test_2_3_3_3_3_thenable_calling_back_twice_first_call_wins(
    first: str, second: str, when: str
) -> None:
    thenable = _calls_back_twice(first, second, when)
    derived = through(thenable)
    state, result = await outcome(derived)
    await flush()  # the second call has happened by now, and changed nothing
    assert state == ("fulfilled" if first == "resolve" else "rejected")
    assert str(result) == "first"
    assert (await outcome(derived)) == (state, result)
    assert thenable.calls == 1


async def test_2_3_3_3_3_resolving_with_a_pending_thenable_then_rejecting_is_ignored() -> None:
    inner, resolve_inner, _ = deferred()

    def then(resolve: Callable[..., None], reject: Callable[..., None]) -> None:
        resolve(inner)
        reject(Reason("ignored"))

    derived = through(Thenable(then))
    await flush()
    assert not derived.done()
    resolve_inner("adopted")
    assert await derived == "adopted"


@pytest.mark.parametrize("settle", ["resolve", "reject"])
async def test_2_3_3_3_4_1_throw_after_settling_is_ignored(settle: str) -> None:
    reason = Reason("settled")

    def then(resolve: Callable[..., None], reject: Callable[..., None]) -> None:
        if settle == "resolve":
            resolve("value")
        else:
            reject(reason)
        raise Reason("thrown after settling")

    expected = ("fulfilled", "value") if settle == "resolve" else ("rejected", reason)
    assert await outcome(through(Thenable(then))) == expected


async def test_2_3_3_3_4_1_throw_after_a_later_resolve_is_ignored() -> None:
    def then(resolve: Callable[..., None], reject: Callable[..., None]) -> None:
        resolve(Thenable(lambda res, rej: later(res, "value")))
        raise Reason("thrown after resolving")

    assert await through(Thenable(then)) == "value"


async def test_2_3_3_3_4_2_throw_before_settling_rejects() -> None:
    reason = Reason()

    def then(resolve: Callable[..., None], reject: Callable[..., None]) -> None:
        raise reason

    assert await outcome(through(Thenable(then))) == ("rejected", reason)


@pytest.mark.parametrize("then_value", [5, "text", None, Sentinel()], ids=repr)
async def test_2_3_3_4_non_callable_then_fulfills_with_the_object(then_value: object) -> None:
    class NotThenable:
        then = then_value

    value = NotThenable()
    assert await through(value) is value


@pytest.mark.parametrize(
    "value", [None, True, 0, 3.5, "text", b"bytes", (1,), [1], {"a": 1}], ids=repr
)
async def test_2_3_4_plain_values_fulfill(value: object) -> None:
    assert await through(value) is value
    assert await rejected(Reason()).then(None, lambda _: value) is value


# ------------------------------------------- Python's awaitables in the procedure


async def test_awaitables_returned_by_callbacks_are_assimilated() -> None:
    loop = asyncio.get_running_loop()

    async def coroutine(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    future: asyncio.Future[str] = loop.create_future()
    later(future.set_result, "from a future")
    task = asyncio.ensure_future(coroutine(5))

    class Awaitable_:
        def __await__(self) -> Any:
            return coroutine(21).__await__()

    assert await resolved(1).then(coroutine) == 2
    assert await through(future) == "from a future"
    assert await through(task) == 10
    assert await through(Awaitable_()) == 42


async def test_failing_awaitables_reject_the_derived_promise() -> None:
    reason = Reason()

    async def failing(_: object) -> None:
        raise reason

    assert await outcome(resolved(1).then(failing)) == ("rejected", reason)


async def test_async_rejection_handler_recovers() -> None:
    async def recover(error: BaseException) -> str:
        await asyncio.sleep(0)
        return f"recovered from {error}"

    assert await rejected(Reason("boom")).then(None, recover) == "recovered from boom"
