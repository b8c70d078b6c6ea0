"""``corral events``: look into an event store from the shell.

Only typer is imported here; the store, its engines and rich load when a command runs,
so ``corral --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ("events_app",)

events_app = typer.Typer(
    name="events",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

URL_HELP = (
    "The store: sqlite:///PATH (a relative path; sqlite:////abs/path for an absolute one) "
    "or postgresql://user@host/db. It must exist: nothing is created."
)

Url = Annotated[str, typer.Argument(metavar="URL", help=URL_HELP, show_default=False)]
Schema = Annotated[
    str | None,
    typer.Option(
        "--schema",
        metavar="NAME",
        help="PostgreSQL only: the schema holding the store (default corral).",
        show_default=False,
    ),
]
Json = Annotated[
    bool,
    typer.Option(
        "--json",
        metavar="",
        help="Print one JSON object per event and line, for scripts.",
    ),
]


@events_app.callback()
def _events() -> None:
    """Look into an event store and rebuild its projections.

    URL is what `corral.connect` takes: `sqlite:///app.db` or `postgresql://user@host/db`.
    The commands only read the store (rebuild writes to a read model); a store that
    does not exist is an error, never created.
    Errors print one line on stderr and exit with status 2 (bad input) or 1 (the
    store cannot be used).
    """


@events_app.command("streams")
def streams_command(
    url: Url,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            metavar="P",
            help="Only streams whose name starts with P (order- for order-1, order-2, ...).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, metavar="N", help="At most N streams.", show_default=False),
    ] = None,
    schema: Schema = None,
) -> None:
    """List the streams that have events, by name.

    For each: its version (last event's), how many events a read returns (truncation
    and deletion hide older ones), whether it is deleted, and its last event's global
    position and time.
    """
    from ._app import _console
    from ._events_open import run_command
    from ._events_run import streams

    run_command(streams(_console(), url, schema=schema, prefix=prefix, limit=limit))


@events_app.command("show")
def show_command(
    url: Url,
    stream: Annotated[
        str, typer.Argument(metavar="STREAM", help="The stream's name.", show_default=False)
    ],
    from_version: Annotated[
        int | None,
        typer.Option(
            "--from-version",
            min=0,
            metavar="V",
            help="Start at version V (forward: the first; --backwards: the last).",
            show_default=False,
        ),
    ] = None,
    backwards: Annotated[
        bool, typer.Option("--backwards", metavar="", help="Newest event first.")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, metavar="N", help="At most N events.", show_default=False),
    ] = None,
    as_json: Json = False,
    metadata: Annotated[
        bool, typer.Option("--metadata", metavar="", help="Show each event's metadata too.")
    ] = False,
    schema: Schema = None,
) -> None:
    """Show a stream's events: version, position, type, time and data.

    JSON data is shown indented, text as text, anything else as its size and first
    bytes in hex. Exits with status 1 if the stream has never had an event.
    """
    from ._app import _console
    from ._events_open import fail, run_command
    from ._events_run import show

    found = run_command(
        show(
            _console(),
            url,
            stream,
            schema=schema,
            from_version=from_version,
            backwards=backwards,
            limit=limit,
            as_json=as_json,
            metadata=metadata,
        )
    )
    if not found:
        fail(f"stream {stream!r} has no events in {url}")


@events_app.command("tail")
def tail_command(
    url: Url,
    stream: Annotated[
        str | None,
        typer.Option("--stream", metavar="S", help="Only stream S.", show_default=False),
    ] = None,
    category: Annotated[
        str | None,
        typer.Option(
            "--category",
            metavar="C",
            help="Only the streams of category C (C and C-...).",
            show_default=False,
        ),
    ] = None,
    from_position: Annotated[
        int | None,
        typer.Option(
            "--from-position",
            min=0,
            metavar="P",
            help="Start at global position P (default: the first event).",
            show_default=False,
        ),
    ] = None,
    from_end: Annotated[
        bool,
        typer.Option("--from-end", metavar="", help="Skip the stored events: only new ones."),
    ] = False,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            min=1,
            metavar="N",
            help="Stop after N events (default: follow until Ctrl-C).",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            min=0.01,
            metavar="SECONDS",
            help="How often to look for events appended by other processes "
            "(SQLite also wakes within about 10 ms, PostgreSQL at once, when another "
            "process commits).",
        ),
    ] = 0.5,
    schema: Schema = None,
) -> None:
    """Follow the store's global log: print each event as it commits.

    Prints the stored events from the start (or --from-position, or none with
    --from-end), then each new one, in global order; says on stderr what it follows
    and from where. Ctrl-C stops it (status 0).
    """
    from rich.console import Console

    from ._app import _console
    from ._events_open import run_command
    from ._events_run import tail

    run_command(
        tail(
            _console(),
            Console(stderr=True, highlight=False),
            url,
            schema=schema,
            stream=stream,
            category=category,
            from_position=from_position,
            from_end=from_end,
            count=count,
            as_json=as_json,
            poll_interval=poll_interval,
        ),
        interrupted=0,
    )


ReadModelUrl = Annotated[
    str | None,
    typer.Option(
        "--read-model",
        metavar="URL2",
        help="The read model holding the projections' checkpoints "
        "(sqlite:///views.db, postgresql://...).",
        show_default=False,
    ),
]


@events_app.command("stats")
def stats_command(
    url: Url,
    read_model: ReadModelUrl = None,
    projections: Annotated[
        list[str] | None,
        typer.Option(
            "--projection",
            metavar="NAME",
            help="A projection whose checkpoint to show (repeat for more); needs --read-model.",
            show_default=False,
        ),
    ] = None,
    schema: Schema = None,
) -> None:
    """Show the store's figures: engine, events, streams, head position, file size.

    With `--read-model URL2 --projection NAME ...`, also how far each projection is
    behind: its checkpoint in the read model and how many events follow it in the log.
    """
    from ._app import _console
    from ._events_open import run_command
    from ._events_run import stats

    run_command(
        stats(
            _console(),
            url,
            schema=schema,
            read_model_url=read_model,
            projections=projections or (),
        )
    )


@events_app.command("rebuild")
def rebuild_command(
    url: Url,
    projection: Annotated[
        str,
        typer.Option(
            "--projection",
            metavar="MODULE:ATTRIBUTE",
            help="The Projection to rebuild, or a zero-argument factory of one, as "
            "module:attribute (shop.views:OrderTotals); the current directory is searched "
            "first.",
            show_default=False,
        ),
    ],
    read_model: Annotated[
        str,
        typer.Option(
            "--read-model",
            metavar="URL2",
            help="The read model the projection writes to (sqlite:///views.db, "
            "postgresql://...); a SQLite file is created if missing.",
            show_default=False,
        ),
    ],
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, metavar="N", help="Events applied per transaction."),
    ] = 256,
    schema: Schema = None,
) -> None:
    """Rebuild a projection's read model from the whole log, with a progress bar.

    Empties the projection's state (its `reset`) and sets its checkpoint back to 0 in
    one transaction, then applies every event again, batch by batch, each batch in one
    transaction with the checkpoint. Interrupted, it leaves the batches applied so far:
    the projection's next run resumes from there. Shows events applied of the total,
    the rate and the time left on stderr, and a summary on stdout.
    """
    from rich.console import Console

    from ._app import _console
    from ._events_open import run_command
    from ._events_rebuild import rebuild

    run_command(
        rebuild(
            _console(),
            Console(stderr=True, highlight=False),
            url,
            schema=schema,
            projection_spec=projection,
            read_model_url=read_model,
            batch_size=batch_size,
        )
    )
