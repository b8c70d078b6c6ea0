"""ReadModel: the port a projection writes through, with its checkpoints in the same place."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from .._core._scope import wait_protected
from ..errors import ClosedResourceError
from ._tracking import checkpoint_name_arg

__all__ = ("ReadModel", "ReadModelStatistics", "settle")

T = TypeVar("T")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True, slots=True)
class ReadModelStatistics:
    """A snapshot of a :class:`ReadModel`'s activity since it was opened."""

    #: The engine's name (``"memory"``, ``"sqlite"``, ``"postgres"``).
    engine: str
    #: Whether :meth:`ReadModel.close` has been called.
    closed: bool
    #: Transactions committed.
    commits: int
    #: Transactions rolled back (an exception or a cancellation left the block).
    rollbacks: int
    #: Transactions open right now.
    active: int


class ReadModel(abc.ABC, Generic[T]):
    """Where a :class:`Projection` keeps its state, together with its checkpoint.

    ``T`` is the handle a transaction gives the projection. The engines are
    :class:`~corral.backends.memory.MemoryReadModel`,
    :class:`~corral.backends.sqlite.SqliteReadModel` and
    :class:`~corral.backends.postgres.PostgresReadModel`; open one by URL with
    :func:`corral.connect_read_model`. Close it with :meth:`close` or ``async with``.

    Exactly once: a projector applies each batch of events and moves the projection's
    checkpoint in ONE transaction of the read model (:meth:`transaction`), so after a
    crash at any point the state and the checkpoint agree, and no event takes effect
    twice or not at all. The checkpoint is written only if it still holds the value
    the projector read, so two projectors running the same projection by mistake do
    not apply a batch twice either: the second one's transaction is rolled back.

    Thread-safety: use a read model from the tasks of one event loop.
    """

    #: The engine's name, as in :attr:`ReadModelStatistics.engine`.
    engine: ClassVar[str]

    def __init__(self) -> None:
        self._closed = False
        self._commits = 0
        self._rollbacks = 0
        self._active = 0

    # -- what an engine implements ---------------------------------------------------

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractAsyncContextManager[T]:
        """Begin a transaction; commit on a clean exit, roll back on an exception.

        Commit and rollback must complete even when the task is cancelled meanwhile
        (:func:`settle` helps), so a cancelled block's outcome is known.
        """

    @abc.abstractmethod
    async def _load_checkpoint(self, tx: T, name: str) -> int:
        """The checkpoint stored under ``name`` in ``tx`` (0 if none)."""

    @abc.abstractmethod
    async def _store_checkpoint(
        self, tx: T, name: str, position: int, expected: int | None
    ) -> bool:
        """Store ``position`` under ``name`` in ``tx`` if it holds ``expected`` (any if
        ``None``; no checkpoint counts as 0); whether it was stored."""

    async def _lock_projection(self, tx: T, name: str) -> None:
        """Hold off other transactions that lock ``name`` until ``tx`` ends.

        The projector calls it before ``setup`` and ``reset``, so projectors of one
        projection starting together do not run them at once. Engines whose
        transactions run one at a time need nothing here (the default).
        """

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release every resource."""

    def _describe(self) -> str:
        """What the read model is, for ``repr`` (a path, a URL)."""
        return self.engine

    # -- the public interface --------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError(f"{self!r} is closed")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[T]:
        """``async with read_model.transaction() as tx:``, committed when the block ends.

        An exception (or a cancellation) leaving the block rolls everything written
        through ``tx`` back and propagates. The commit or rollback runs to its end even
        if the task is cancelled meanwhile, so when ``CancelledError`` arrives the
        transaction has been either committed or rolled back, as the block decided.
        Do not use ``tx`` after the block.

        Raises:
            ClosedResourceError: the read model is closed.
            BackendUnavailable: the database cannot be used (also from the commit).
        """
        self._check_open()
        self._active += 1
        try:
            async with self._transaction() as tx:
                try:
                    yield tx
                except BaseException:
                    self._rollbacks += 1
                    raise
            self._commits += 1
        finally:
            self._active -= 1

    async def checkpoint(self, name: str) -> int:
        """The last position the projection ``name`` has applied here, 0 if none.

        Raises:
            ArgumentTypeError, InvalidArgumentError: bad ``name``.
            ClosedResourceError: the read model is closed.
            BackendUnavailable: the database cannot be used.
        """
        name = checkpoint_name_arg(name)
        async with self.transaction() as tx:
            return await self._load_checkpoint(tx, name)

    async def close(self) -> None:
        """Release the database. Idempotent.

        Later calls to anything but :meth:`close`, :meth:`statistics` and ``repr``
        raise ``ClosedResourceError``.
        """
        if self._closed:
            return
        self._closed = True
        await self._close()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def statistics(self) -> ReadModelStatistics:
        """A snapshot of the read model's activity since it was opened."""
        return ReadModelStatistics(
            engine=self.engine,
            closed=self._closed,
            commits=self._commits,
            rollbacks=self._rollbacks,
            active=self._active,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} {self._describe()} {state}, {self._commits} commits, "
            f"{self._rollbacks} rollbacks, {self._active} active>"
        )


async def settle(work: Awaitable[R]) -> R:
    """Run ``work`` to its end even if the caller is cancelled meanwhile.

    A cancelled caller still waits for ``work`` (a commit, a rollback) and then raises
    ``CancelledError``; what ``work`` raised then is dropped in its favour.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            task.add_done_callback(lambda _: _wake(done))
            await wait_protected(done)
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation wins
        raise


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
