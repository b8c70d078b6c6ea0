"""corral.connect and corral.connect_read_model: open what a URL names, importing only
the engine it needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

from ..errors import ArgumentTypeError, InvalidArgumentError

if TYPE_CHECKING:
    from ..eventsourcing._read_model import ReadModel
    from ..eventsourcing._store import EventStore

__all__ = ("Connecting", "connect", "connect_read_model")


class _Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)

SUPPORTED: Final = ("memory://", "postgresql://...", "sqlite:///PATH")


class Connecting(Generic[S]):
    """What :func:`corral.connect` and :func:`corral.connect_read_model` return.

    ``store = await corral.connect(url)`` opens the store (close it yourself);
    ``async with corral.connect(url) as store:`` opens it and closes it on exit. The
    same goes for a read model.
    """

    __slots__ = ("_open", "_store", "_url")

    def __init__(self, url: str, open_store: Callable[[], Awaitable[S]]) -> None:
        self._url = url
        self._open = open_store
        self._store: S | None = None

    def __repr__(self) -> str:
        return f"<Connecting {self._url!r}>"

    def __await__(self) -> Generator[Any, None, S]:
        return self._open().__await__()

    async def __aenter__(self) -> S:
        self._store = await self._open()
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()


def connect(url: str) -> Connecting[EventStore]:
    """Open the event store that ``url`` names.

    Supported URLs:

    - ``memory://``: an in-memory store (tests, examples).
    - ``sqlite:///PATH``: a SQLite file at ``PATH`` (relative to the working directory;
      ``sqlite:////abs/path.db`` for an absolute path), created with its schema if
      missing. One file in WAL mode, every acknowledged append on disk (see
      ``corral.backends.sqlite``). ``sqlite:///:memory:`` is refused: a private
      in-memory database cannot be shared by the writer and readers; use ``memory://``.
    - ``postgresql://user:password@host:port/database`` (or ``postgres://``): PostgreSQL
      through asyncpg (the ``corral[postgres]`` extra), in the schema ``corral``, created
      if missing (see ``corral.backends.postgres``).

    Use ``store = await corral.connect(url)`` and close the store yourself, or
    ``async with corral.connect(url) as store:``. The URL is checked by this call.

    Args:
        url: the store's URL.

    Returns:
        An awaitable, async-context-manager :class:`Connecting` for the store.

    Raises:
        ArgumentTypeError: ``url`` is not a ``str``.
        InvalidArgumentError: the scheme is not supported by this version of corral, or
            the URL is malformed (both name the URL).
        BackendUnavailable: (when awaited) the database cannot be opened.
    """
    if not isinstance(url, str):
        raise ArgumentTypeError(f"url must be a str, not {type(url).__name__} ({url!r})")
    scheme, rest = _scheme(url)
    if scheme == "memory":
        return Connecting(url, _open_memory)
    if scheme == "sqlite":
        path = _sqlite_path(url, rest)

        async def open_sqlite() -> EventStore:
            from .sqlite import SqliteEventStore

            return await SqliteEventStore.open(path)

        return Connecting(url, open_sqlite)
    return Connecting(url, lambda: _open_postgres(url))


def connect_read_model(url: str) -> Connecting[ReadModel[Any]]:
    """Open the read model (where projections keep their state) that ``url`` names.

    Supported URLs, as for :func:`corral.connect`:

    - ``memory://``: a :class:`~corral.backends.memory.MemoryReadModel`.
    - ``sqlite:///PATH``: a :class:`~corral.backends.sqlite.SqliteReadModel` in the
      file at ``PATH`` (the event store's file or another one).
    - ``postgresql://user:password@host:port/database`` (or ``postgres://``): a
      :class:`~corral.backends.postgres.PostgresReadModel` in the schema
      ``corral_read``.

    Use ``read_model = await corral.connect_read_model(url)`` and close it yourself,
    or ``async with corral.connect_read_model(url) as read_model:``. The URL is checked
    by this call. The engine's class tells the type of its transactions, so code that
    is typed for one engine opens it with the engine's own ``open``.

    Raises:
        ArgumentTypeError: ``url`` is not a ``str``.
        InvalidArgumentError: the scheme is not supported or the URL is malformed.
        BackendUnavailable: (when awaited) the database cannot be opened.
    """
    scheme, rest = _scheme(url)
    if scheme == "memory":
        return Connecting(url, _open_memory_read_model)
    if scheme == "sqlite":
        path = _sqlite_path(url, rest)

        async def open_sqlite() -> ReadModel[Any]:
            from .sqlite import SqliteReadModel

            return await SqliteReadModel.open(path)

        return Connecting(url, open_sqlite)

    async def open_postgres() -> ReadModel[Any]:
        from .postgres import PostgresReadModel

        return await PostgresReadModel.open(url)

    return Connecting(url, open_postgres)


def _scheme(url: object) -> tuple[str, str]:
    """``(scheme, rest)`` of a supported URL; ``memory://`` has nothing after it."""
    if not isinstance(url, str):
        raise ArgumentTypeError(f"url must be a str, not {type(url).__name__} ({url!r})")
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise InvalidArgumentError(f"url must look like scheme://..., got {url!r}")
    if scheme == "memory" and rest:
        raise InvalidArgumentError(f"a memory:// url takes nothing after the scheme, got {url!r}")
    if scheme == "postgres":
        scheme = "postgresql"
    if scheme not in ("memory", "sqlite", "postgresql"):
        raise InvalidArgumentError(
            f"url scheme {scheme!r} is not supported by this version of corral, got {url!r}; "
            f"supported: {', '.join(SUPPORTED)}"
        )
    return scheme, rest


async def _open_memory_read_model() -> ReadModel[Any]:
    from .memory import MemoryReadModel

    return MemoryReadModel()


async def _open_memory() -> EventStore:
    from .memory import MemoryEventStore

    return MemoryEventStore()


async def _open_postgres(url: str) -> EventStore:
    from .postgres import PostgresEventStore

    return await PostgresEventStore.open(url)


def _sqlite_path(url: str, rest: str) -> str:
    host, slash, path = rest.partition("/")
    if host or not slash or not path:
        raise InvalidArgumentError(
            f"a sqlite url is sqlite:///PATH (three slashes, then the file), got {url!r}"
        )
    if "?" in path or "#" in path:
        raise InvalidArgumentError(f"a sqlite url takes no query or fragment, got {url!r}")
    if path == ":memory:":
        raise InvalidArgumentError(
            f"{url!r}: a private in-memory SQLite database cannot be shared by the writer "
            "and the readers; use memory:// for an in-memory store"
        )
    return path
