"""The typer application behind the ``corral`` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .._version import __version__
from ._events import events_app

__all__ = ("app", "main")

app = typer.Typer(
    name="corral",
    help="corral: promises, structured concurrency, cancellation and virtual time for asyncio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


#: Width used when output goes to a file or a CI log rather than a terminal.
_LOG_WIDTH = 120


def _console() -> Console:
    """A console for command output: the terminal's width, or a wide log if piped."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _LOG_WIDTH
    return console


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"corral {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            metavar="",
            help="Print corral's version and exit.",
        ),
    ] = False,
) -> None:
    """corral: promises, structured concurrency, cancellation and virtual time for asyncio.

    Run `corral demo` for a tour with real output, `corral bench` for the benchmarks,
    `corral events` to look into an event store.
    """


@app.command()
def demo(
    sections: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SECTION",
            help="Sections to show (default: all). See --list for their names.",
            show_default=False,
        ),
    ] = None,
    list_sections: Annotated[
        bool, typer.Option("--list", metavar="", help="List the sections and exit.")
    ] = False,
) -> None:
    """Show each capability of corral: the example's code, then its real output.

    Exits with status 1 if an example raised or a section cannot run in this build.
    """
    from ._demo import registered, run_demo

    known = registered()
    console = _console()
    if list_sections:
        for section in known.values():
            console.print(f"[bold]{section.key:<24}[/bold] {section.title}")
        return
    unknown = [name for name in sections or () if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"unknown section {', '.join(map(repr, unknown))}; known sections: {', '.join(known)}",
            param_hint="SECTION",
        )
    chosen = [known[name] for name in sections] if sections else list(known.values())
    if not run_demo(chosen, console):
        raise typer.Exit(1)


@app.command()
def bench(
    workloads: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="WORKLOAD",
            help="Workloads to run (default: all), e.g. taskgroup promise-chain.",
            show_default=False,
        ),
    ] = None,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            metavar="",
            help="Tiny sizes and one run per case: checks that every case works.",
        ),
    ] = False,
    repeat: Annotated[
        int | None,
        typer.Option(
            "--repeat",
            min=1,
            metavar="N",
            help="Runs per case; the best is kept (default 5, or 1 with --smoke).",
            show_default=False,
        ),
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Also write the full report as JSON here."),
    ] = None,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown",
            metavar="",
            help="Print the results as the Markdown table of docs/benchmarks.md.",
        ),
    ] = False,
) -> None:
    """Run the benchmarks: corral side by side with asyncio, anyio and other peers.

    Every case of a workload runs in the same process, interleaved, best of N, each
    async case in a fresh event loop. Prints each case's time and its ratio to the
    workload's baseline, and whether each performance floor holds. Exits with status 1
    if a case raised or (outside --smoke) a floor failed. Needs a corral source checkout
    (the benchmarks/ directory).
    """
    from ._bench import run_bench

    console = _console()
    if not run_bench(
        console,
        workloads or [],
        smoke=smoke,
        repeat=repeat,
        json_file=json_file,
        markdown=markdown,
    ):
        raise typer.Exit(1)


app.add_typer(events_app, name="events")


def main() -> None:
    """Entry point of the ``corral`` console script and ``python -m corral``."""
    app()
