"""The registry behind ``corral demo``: sections, each an example shown and then run.

A section is a function registered with :func:`section`. Its body is the example: the
demo prints the body's source, runs the function with its standard output captured, and
prints what it wrote. Examples import what they use inside their body, so the code on
screen is complete and ``import corral.cli`` stays light. A section lists the corral
names it ``requires``; if one is missing from this build the section is reported as
unavailable instead of run.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import textwrap
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from ..errors import InvalidArgumentError, UsageError

__all__ = (
    "SECTIONS",
    "Section",
    "example_source",
    "missing_names",
    "registered",
    "run_demo",
    "run_section",
    "section",
)


@dataclass(frozen=True, slots=True)
class Section:
    """One part of the demo: a titled, explained, runnable example."""

    key: str
    title: str
    blurb: str
    requires: tuple[str, ...]
    example: Callable[[], None]


#: Every registered section, by key, in registration order (see :func:`registered`).
SECTIONS: dict[str, Section] = {}


def registered() -> dict[str, Section]:
    """Every section of the demo, by key, in the order they are shown."""
    from . import _demo_sections  # noqa: F401  (importing it registers the sections)

    return SECTIONS


def section(
    key: str, title: str, blurb: str, *, requires: Iterable[str] = ()
) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register the decorated function as the demo section ``key``.

    Args:
        key: the name used on the command line (``corral demo KEY``).
        title: the heading shown above the section.
        blurb: one or two sentences saying what the example shows.
        requires: dotted names relative to ``corral`` the example uses, such as
            ``"Promise"`` or ``"testing.VirtualClock"``.

    Raises:
        UsageError: ``key`` is already registered.
    """

    def register(example: Callable[[], None]) -> Callable[[], None]:
        if key in SECTIONS:
            raise UsageError(f"demo section {key!r} is already registered")
        SECTIONS[key] = Section(key, title, blurb, tuple(requires), example)
        return example

    return register


def missing_names(names: Iterable[str]) -> list[str]:
    """Those of ``names`` (dotted, relative to ``corral``) that this build does not have."""
    missing = []
    for name in names:
        module_name, _, attribute = f"corral.{name}".rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(name)
            continue
        if not hasattr(module, attribute):
            missing.append(name)
    return missing


def example_source(example: Callable[[], None]) -> str:
    """The body of ``example`` without its ``def`` line and docstring, dedented.

    Raises:
        InvalidArgumentError: ``example`` has no body besides its docstring.
    """
    source = textwrap.dedent(inspect.getsource(example))
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    body = function.body
    if inspect.getdoc(example) is not None:
        body = body[1:]
    if not body:
        raise InvalidArgumentError(f"example {example.__qualname__} has an empty body")
    lines = source.splitlines()[body[0].lineno - 1 :]
    return textwrap.dedent("\n".join(lines)).strip("\n")


def run_section(entry: Section, console: Console) -> bool:
    """Show and run one section; False when it cannot run or its example raised."""
    console.print()
    console.rule(f"[bold]{entry.title}[/bold]", align="left")
    console.print(entry.blurb)
    missing = missing_names(entry.requires)
    if missing:
        names = ", ".join(f"corral.{name}" for name in missing)
        console.print(f"[yellow]unavailable: this build has no {names}[/yellow]")
        return False
    code = Syntax(example_source(entry.example), "python", theme="ansi_dark", word_wrap=True)
    console.print(code)
    captured = io.StringIO()
    failure: Text | None = None
    try:
        with contextlib.redirect_stdout(captured):
            entry.example()
    except Exception:
        failure = Text(traceback.format_exc().rstrip("\n"), style="red")
    output = Text(captured.getvalue().rstrip("\n"))
    if failure is None:
        console.print(Panel(output, title="output", title_align="left", border_style="green"))
        return True
    console.print(
        Panel(Group(output, failure), title="output", title_align="left", border_style="red")
    )
    return False


def run_demo(sections: Iterable[Section], console: Console) -> bool:
    """Show and run ``sections`` in order; True when every one ran cleanly."""
    results = [run_section(entry, console) for entry in sections]
    console.print()
    failed = results.count(False)
    if failed:
        console.print(f"[red]{failed} of {len(results)} sections did not run cleanly[/red]")
    else:
        noun = "section" if len(results) == 1 else "sections"
        console.print(f"[green]{len(results)} {noun} ran cleanly[/green]")
    return not failed
