"""Opening the store a ``corral events`` command names, and failing in one line."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from ..errors import (
    ArgumentTypeError,
    BackendUnavailable,
    CorralError,
    InvalidArgumentError,
    UsageError,
)

if TYPE_CHECKING:
    from ..eventsourcing import EventStore, ReadModel

__all__ = ("fail", "open_read_model", "open_store", "run_command")

T = TypeVar("T")

#: Exit status for bad input: a bad URL, option or argument (as click uses).
USAGE = 2

#: Exit status for a store that cannot be used: a missing file, a dead database.
UNAVAILABLE = 1

#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


def fail(message: str, code: int = UNAVAILABLE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_command(work: Coroutine[Any, Any, T], *, interrupted: int = INTERRUPTED) -> T:
    """Run ``work`` in a new event loop; a corral error becomes one line on stderr.

    Bad input (``InvalidArgumentError``, ``ArgumentTypeError``, ``UsageError``) exits
    with status 2, any other corral error (``BackendUnavailable``, ...) with status 1,
    its cause appended when the message does not tell it. Ctrl-C cancels ``work``
    (its cleanup runs) and exits with status ``interrupted``, saying so on stderr
    unless that status is 0.
    """
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        if interrupted:
            typer.echo("interrupted", err=True)
        raise typer.Exit(interrupted) from None
    except (InvalidArgumentError, ArgumentTypeError, UsageError) as exc:
        fail(str(exc), USAGE)
    except CorralError as exc:
        message, cause = str(exc), exc.__cause__
        if cause is not None and str(cause) not in message:
            message += f" ({type(cause).__name__}: {cause})"
        fail(message, UNAVAILABLE)


async def open_store(url: str, *, schema: str | None = None) -> EventStore:
    """Open the existing event store ``url`` names; never create one.

    ``url`` is what :func:`corral.connect` takes. ``memory://`` is refused (a command
    would open a new, empty store), a SQLite file must exist and hold a corral store,
    and a PostgreSQL schema (``schema``, default ``corral``) must hold one.

    Raises:
        InvalidArgumentError: a bad or unsupported URL, ``memory://``, or ``schema``
            with a URL that is not PostgreSQL's.
        BackendUnavailable: the store does not exist or cannot be opened.
    """
    from ..backends._connect import connect

    connect(url)  # checks the URL without opening anything
    scheme, _, rest = url.partition("://")
    if scheme != "postgresql" and scheme != "postgres" and schema is not None:
        raise InvalidArgumentError(f"--schema applies to postgresql:// URLs only, got {url!r}")
    if scheme == "memory":
        raise InvalidArgumentError(
            "memory:// would open a new, empty store in this process; "
            "give sqlite:///PATH or postgresql://..."
        )
    if scheme == "sqlite":
        from ..backends.sqlite import SqliteEventStore

        return await SqliteEventStore.open(rest.partition("/")[2], create=False)
    try:
        from ..backends.postgres import PostgresEventStore
    except ImportError as exc:  # pragma: no cover - asyncpg is installed for the tests
        raise BackendUnavailable(
            f"PostgreSQL needs asyncpg: pip install 'corral[postgres]' ({exc})"
        ) from exc
    return await PostgresEventStore.open(url, schema=schema or "corral", create=False)


async def open_read_model(url: str) -> ReadModel[Any]:
    """Open the existing read model ``url`` names (what ``corral.connect_read_model`` takes).

    A SQLite file must exist (it is not created); ``memory://`` is refused.

    Raises:
        InvalidArgumentError: a bad or unsupported URL, or ``memory://``.
        BackendUnavailable: the read model does not exist or cannot be opened.
    """
    from ..backends._connect import connect_read_model

    connecting = connect_read_model(url)  # checks the URL without opening anything
    scheme, _, rest = url.partition("://")
    if scheme == "memory":
        raise InvalidArgumentError(
            "a memory:// read model would be new and empty; give sqlite:///PATH or postgresql://..."
        )
    if scheme == "sqlite":
        _check_file(rest.partition("/")[2], "SQLite read model")
    return await connecting


def _check_file(path: str, what: str) -> None:
    """Raise ``BackendUnavailable`` unless ``path`` is a file."""
    if not os.path.isfile(path):
        what_is = "is not a file" if os.path.exists(path) else "does not exist"
        raise BackendUnavailable(f"{what} {path!r} {what_is}")
