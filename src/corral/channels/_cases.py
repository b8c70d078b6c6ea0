"""What ``select`` waits on: the case protocol, and the outcome record it returns.

A *case* is one operation that :func:`corral.select` may perform: receive from a channel,
send to one, wait for a future, an event or a timeout. Every case answers four questions
for the selecting task, all synchronously:

* ``_ready()``: could the operation complete right now, without waiting?
* ``_commit(index)``: complete it now (only called right after ``_ready()`` said yes,
  with no other task running in between) and return the :class:`Selected` record;
* ``_register(waiter, index)``: arrange for ``waiter`` (the select's one future) to be
  resolved with ``(index, raw)`` by whoever makes the case ready first, and return a
  handle for ``_unregister``;
* ``_resolve(index, raw)``: turn the raw value handed to the waiter into the record (or
  raise, for a send on a channel that closed meanwhile).

Whoever resolves the waiter first wins; everybody else checks ``waiter.done()`` before
committing, so exactly one case fires.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ("Registration", "SelectCase", "Selected", "selected")


class Selected(tuple[int, "SelectCase", Any, bool]):
    """Which case of a :func:`corral.select` fired, and what it produced.

    A record (an immutable tuple ``(index, case, value, closed)``; a tuple so that
    building one costs next to nothing on the select fast path).

    Attributes:
        index: the position of the case among the arguments of ``select``.
        case: the case object itself (compare with ``is`` to dispatch).
        value: the item received, the result of a future case, ``None`` for a send,
            timeout, event or default case, and ``None`` when ``closed`` is true.
        closed: ``True`` when a receive case fired because its channel is closed and
            drained (Go's ``v, ok := <-ch`` with ``ok == false``).

    Usable with ``match``: positional patterns bind ``index`` and ``value``::

        match await corral.select(jobs.receive_case(), corral.timeout_case(1)):
            case Selected(0, job, closed=False): ...
            case Selected(case=TimeoutCase()): ...
    """

    __slots__ = ()
    __match_args__ = ("index", "value")

    def __new__(cls, index: int, case: SelectCase, value: Any, closed: bool = False) -> Selected:
        return _new_record(cls, (index, case, value, closed))  # type: ignore[no-any-return]

    @property
    def index(self) -> int:  # type: ignore[override]
        """The position of the case that fired."""
        return self[0]

    @property
    def case(self) -> SelectCase:
        """The case that fired."""
        return self[1]

    @property
    def value(self) -> Any:
        """What the case produced (``None`` for sends, timeouts, events, default)."""
        return self[2]

    @property
    def closed(self) -> bool:
        """Whether a receive case fired because its channel ended."""
        return self[3]

    def __repr__(self) -> str:
        closed = ", closed=True" if self[3] else ""
        return f"Selected(index={self[0]}, case={self[1]!r}, value={self[2]!r}{closed})"


_new_record: Any = tuple.__new__


def selected(index: int, case: SelectCase, value: Any, closed: bool = False) -> Selected:
    """Build a :class:`Selected` without the keyword-friendly ``__new__`` (hot path)."""
    return _new_record(Selected, (index, case, value, closed))  # type: ignore[no-any-return]


class Registration:
    """A blocked select's claim on one channel operation, queued among plain waiters.

    ``waiter`` is the select's single future; resolving it with ``(index, raw)`` commits
    the select to this case. ``item`` is what a send case offers; ``end`` is the channel
    end the case was made from (``None`` for the channel itself).
    """

    __slots__ = ("end", "index", "item", "waiter")

    def __init__(
        self, waiter: asyncio.Future[tuple[int, Any]], index: int, item: Any, end: object
    ) -> None:
        self.waiter = waiter
        self.index = index
        self.item = item
        self.end = end


class SelectCase:
    """Base class of everything :func:`corral.select` accepts.

    Build cases with ``channel.receive_case()``, ``channel.send_case(item)``,
    :func:`corral.receive_case`, :func:`corral.send_case`, :func:`corral.timeout_case`,
    :func:`corral.future_case`, :func:`corral.event_case` and
    :func:`corral.default_case`. A case describes an operation and holds no state of a
    select, so one case object may be reused by many selects (building the cases of a
    loop once is the cheapest way to select in that loop).
    """

    __slots__ = ()

    #: The channel of a receive case made straight from a channel (not from an end),
    #: which ``select`` checks inline; ``None`` for every other case.
    _direct: Any = None

    def _ready(self) -> bool:
        raise NotImplementedError

    def _commit(self, index: int) -> Selected:
        raise NotImplementedError

    def _register(self, waiter: asyncio.Future[tuple[int, Any]], index: int) -> object:
        raise NotImplementedError

    def _unregister(self, handle: object) -> None:
        raise NotImplementedError

    def _resolve(self, index: int, raw: Any) -> Selected:
        return selected(index, self, raw)

    def _undo(self, raw: Any) -> bool:
        """The select was cancelled after this case fired with ``raw``: take back what
        can be taken back. Returns ``True`` if the operation stays done (a send whose
        item a receiver already took), so the select must report it."""
        return False
