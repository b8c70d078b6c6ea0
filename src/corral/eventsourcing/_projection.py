"""Projection: what a read model makes of the events, one event at a time."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

from ..errors import ArgumentTypeError, InvalidArgumentError
from ._types import RecordedEvent

__all__ = ("Projection", "categories_arg", "name_arg")

T = TypeVar("T")


class Projection(abc.ABC, Generic[T]):
    """Turns events into the state of a read model; run it with a :class:`Projector`.

    ``T`` is the transaction handle of the read model it writes to: a
    :class:`~corral.backends.memory.MemoryTransaction`, a
    :class:`~corral.backends.sqlite.SqliteTransaction`, or an asyncpg connection inside
    a transaction (:class:`~corral.backends.postgres.PostgresReadModel`). Every write a
    projection makes goes through the ``tx`` it is given: the projector commits it
    together with the projection's checkpoint, so each event takes effect exactly once,
    also across crashes.

    Attributes:
        name: the projection's name (a class or instance attribute, not empty); the
            read model keeps the projection's checkpoint under it.
        categories: the stream categories it wants (a stream's category is its name up
            to the first ``"-"``); empty, the default, means every stream except the
            system streams, whose names start with ``"$"``. Events of other streams
            are not passed to :meth:`apply`, but the checkpoint moves past them.

    ``apply`` must not touch anything outside ``tx`` (no appends, no messages): a batch
    that fails or is interrupted is rolled back and applied again. It must not keep
    ``tx`` after it returns.
    """

    name: str
    categories: ClassVar[tuple[str, ...]] = ()

    async def setup(self, tx: T) -> None:
        """Prepare the read model (create tables): runs once per projector start.

        It runs in the transaction that also loads the checkpoint, and again after
        :meth:`reset` during a rebuild, so it must be idempotent
        (``CREATE TABLE IF NOT EXISTS``). The default does nothing.
        """

    async def reset(self, tx: T) -> None:
        """Drop the read model's state (delete rows or drop tables): used by rebuilds.

        Runs in the same transaction that sets the checkpoint back to 0, followed by
        :meth:`setup`. The default does nothing.
        """

    @abc.abstractmethod
    async def apply(self, event: RecordedEvent, tx: T) -> None:
        """Apply ``event`` to the read model, writing through ``tx`` only.

        An exception rolls the whole batch back; the projector raises
        :class:`~corral.errors.ProjectionError` with it as the cause.
        """

    async def apply_batch(self, events: Sequence[RecordedEvent], tx: T) -> None:
        """Apply a batch's events, in order, writing through ``tx`` only.

        The projector calls it once per batch with the batch's events of the
        projection's categories (never with none). The default calls :meth:`apply` for
        each. Override it to write a batch with fewer statements, say one
        ``executemany`` instead of a statement per event: each statement on a SQLite
        read model is a round trip to its thread, on PostgreSQL one to the server.

        An exception rolls the whole batch back; the projector raises
        :class:`~corral.errors.ProjectionError` with it as the cause, naming the
        batch's first event and its number of events (with the default, the event
        whose :meth:`apply` raised).
        """
        for event in events:
            await self.apply(event, tx)


def name_arg(owner: object) -> str:
    """The checked ``name`` of a projection or a process manager.

    Raises:
        ArgumentTypeError: ``name`` is missing or not a ``str``.
        InvalidArgumentError: ``name`` is empty.
    """
    name = getattr(owner, "name", None)
    if not isinstance(name, str):
        raise ArgumentTypeError(
            f"{type(owner).__name__}.name must be a str naming it, "
            f"not {type(name).__name__} ({name!r})"
        )
    if not name:
        raise InvalidArgumentError(f"{type(owner).__name__}.name must not be empty")
    return name


def categories_arg(owner: object) -> tuple[str, ...]:
    """The checked ``categories`` of a projection or a process manager.

    Raises:
        ArgumentTypeError: ``categories`` is not a tuple of ``str``.
        InvalidArgumentError: a category is empty or holds ``"-"``.
    """
    categories = getattr(owner, "categories", ())
    kind = type(owner).__name__
    if not isinstance(categories, tuple):
        raise ArgumentTypeError(
            f"{kind}.categories must be a tuple of str, not {type(categories).__name__} "
            f"({categories!r})"
        )
    for category in categories:
        if not isinstance(category, str):
            raise ArgumentTypeError(
                f"{kind}.categories must hold str, not {type(category).__name__} ({category!r})"
            )
        if not category or "-" in category:
            raise InvalidArgumentError(
                f"{kind}.categories: a category is a stream name up to its first '-', "
                f"so it is not empty and holds no '-', got {category!r}"
            )
    return categories
