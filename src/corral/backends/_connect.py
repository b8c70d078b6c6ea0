"""corral.connect: open the event store a URL names, importing only the engine it needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from ..errors import ArgumentTypeError, InvalidArgumentError

if TYPE_CHECKING:
    from ..eventsourcing._store import EventStore

__all__ = ("Connecting", "connect")

SUPPORTED: Final = ("memory://", "postgresql://...", "sqlite:///PATH")


class Connecting:
    """What :func:`corral.connect` returns: await it, or use it with ``async with``.

    ``store = await corral.connect(url)`` opens the store (close it yourself);
    ``async with corral.connect(url) as store:`` opens it and closes it on exit.
    """

    __slots__ = ("_open", "_store", "_url")

    def __init__(self, url: str, open_store: Callable[[], Awaitable[EventStore]]) -> None:
        self._url = url
        self._open = open_store
        self._store: EventStore | None = None

    def __repr__(self) -> str:
        return f"<Connecting {self._url!r}>"

    def __await__(self) -> Generator[Any, None, EventStore]:
        return self._open().__await__()

    async def __aenter__(self) -> EventStore:
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


def connect(url: str) -> Connecting:
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
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise InvalidArgumentError(f"url must look like scheme://..., got {url!r}")
    if scheme == "memory":
        if rest:
            raise InvalidArgumentError(
                f"a memory:// url takes nothing after the scheme, got {url!r}"
            )
        return Connecting(url, _open_memory)
    if scheme == "sqlite":
        return Connecting(url, _sqlite_opener(url, rest))
    if scheme in ("postgresql", "postgres"):
        return Connecting(url, lambda: _open_postgres(url))
    raise InvalidArgumentError(
        f"url scheme {scheme!r} is not supported by this version of corral, got {url!r}; "
        f"supported: {', '.join(SUPPORTED)}"
    )


async def _open_memory() -> EventStore:
    from .memory import MemoryEventStore

    return MemoryEventStore()


async def _open_postgres(url: str) -> EventStore:
    from .postgres import PostgresEventStore

    return await PostgresEventStore.open(url)


def _sqlite_opener(url: str, rest: str) -> Callable[[], Awaitable[EventStore]]:
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

    async def open_sqlite() -> EventStore:
        from .sqlite import SqliteEventStore

        return await SqliteEventStore.open(path)

    return open_sqlite
