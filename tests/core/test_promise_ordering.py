"""Reactions run in registration order, once each, never inside the registering call.

Hypothesis generates programs that interleave registrations (``then``, ``catch``,
``finally_``, and reactions that register more reactions when they run), settlements and
loop turns over a few promises; every program must keep each promise's reactions in the
order they were registered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from corral._core._promise import Promise

PROMISES = 3

register_ops = st.tuples(
    st.sampled_from(["then", "catch", "finally", "nested"]), st.integers(0, PROMISES - 1)
)
settle_ops = st.tuples(st.sampled_from(["resolve", "reject"]), st.integers(0, PROMISES - 1))
turn_ops = st.tuples(st.just("turn"), st.just(0))
programs = st.lists(st.one_of(register_ops, settle_ops, turn_ops), max_size=40)


class Failure(Exception):
    pass


@dataclass
class Log:
    """What the program registered and what ran, per promise."""

    registered: list[list[int]] = field(default_factory=lambda: [[] for _ in range(PROMISES)])
    ran: list[list[int]] = field(default_factory=lambda: [[] for _ in range(PROMISES)])
    catches: set[int] = field(default_factory=set)
    registering: bool = False
    ran_inside_registration: list[int] = field(default_factory=list)
    next_id: int = 0

    def new_id(self, index: int, *, catch: bool = False) -> int:
        reaction = self.next_id
        self.next_id += 1
        self.registered[index].append(reaction)
        if catch:
            self.catches.add(reaction)
        return reaction

    def recorder(self, index: int, reaction: int) -> Callable[..., None]:
        def record(*_: object) -> None:
            if self.registering:
                self.ran_inside_registration.append(reaction)
            self.ran[index].append(reaction)

        return record


def register(log: Log, promises: list[Promise[Any]], kind: str, index: int) -> None:
    promise = promises[index]
    log.registering = True
    try:
        if kind == "then":
            record = log.recorder(index, log.new_id(index))
            promise.then(record, record)
        elif kind == "catch":
            promise.catch(log.recorder(index, log.new_id(index, catch=True)), on=Failure)
        elif kind == "finally":
            # It passes a rejection on: handle that, so no unhandled rejection is reported.
            promise.finally_(log.recorder(index, log.new_id(index))).catch(
                lambda _: None, on=Failure
            )
        else:
            record = log.recorder(index, log.new_id(index))

            def register_more(*args: object) -> None:
                record(*args)
                register(log, promises, "then", index)

            promise.then(register_more, register_more)
    finally:
        log.registering = False


@settings(max_examples=150, deadline=None)
@given(programs)
async def test_reactions_keep_registration_order(program: list[tuple[str, int]]) -> None:
    promises: list[Promise[Any]] = [Promise() for _ in range(PROMISES)]
    log = Log()
    for op, index in program:
        if op == "resolve":
            promises[index].resolve(index)
        elif op == "reject":
            promises[index].reject(Failure(index))
        elif op == "turn":
            await asyncio.sleep(0)
        else:
            register(log, promises, op, index)
    for promise in promises:
        promise.resolve(None)
    # Reactions registered by reactions run in the same drain, so one flush is enough.
    await Promise.resolved(None).then(lambda _: None)

    assert log.ran_inside_registration == []
    for index, promise in enumerate(promises):
        rejected = promise.exception() is not None
        expected = [
            reaction
            for reaction in log.registered[index]
            if rejected or reaction not in log.catches
        ]
        assert log.ran[index] == expected
