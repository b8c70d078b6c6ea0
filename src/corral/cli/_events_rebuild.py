"""``corral events rebuild`` and the projection lines of ``corral events stats``."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..errors import ArgumentTypeError, InvalidArgumentError
from ._events_open import open_store

if TYPE_CHECKING:
    from ..eventsourcing import EventStore, Projection, ReadModel

__all__ = ("load_projection", "projection_lags", "rebuild", "wanted_events")


def load_projection(spec: str) -> Projection[Any]:
    """Import ``module:attribute``: a :class:`Projection`, or a zero-argument factory of one.

    The current directory is searched first, as ``python -m`` does.

    Raises:
        InvalidArgumentError: ``spec`` is malformed, or the module or attribute cannot
            be found or imported.
        ArgumentTypeError: the attribute is neither a projection nor makes one.
    """
    from ..eventsourcing import Projection

    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise InvalidArgumentError(
            f"--projection must be module:attribute (shop.views:OrderTotals), got {spec!r}"
        )
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgumentError(
            f"--projection {spec!r}: cannot import {module_name!r}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise InvalidArgumentError(
                f"--projection {spec!r}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    if isinstance(found, Projection):
        return found
    if callable(found):
        made = found()
        if isinstance(made, Projection):
            return made
        raise ArgumentTypeError(
            f"--projection {spec!r} made a {type(made).__name__}, not a Projection"
        )
    raise ArgumentTypeError(
        f"--projection {spec!r} is a {type(found).__name__}, not a Projection or a "
        "zero-argument factory of one"
    )


def _wants(categories: Sequence[str], stream: str) -> bool:
    """Whether a projection of ``categories`` applies ``stream``'s events."""
    if not categories:
        return not stream.startswith("$")
    return stream.partition("-")[0] in categories


async def wanted_events(store: EventStore, categories: Sequence[str]) -> int:
    """How many events of the global log a projection of ``categories`` applies.

    A stream's events are versions 1 to its version, all in the global log (deletion
    and truncation hide none of them from it), so this is a sum over the streams.
    """
    total = 0
    async for info in store.list_streams():
        if _wants(categories, info.stream):
            total += info.version
    return total


class _RateColumn(ProgressColumn):
    """Events applied per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s")


async def rebuild(
    console: Console,
    notice: Console,
    url: str,
    *,
    schema: str | None,
    projection_spec: str,
    read_model_url: str,
    batch_size: int,
) -> int:
    """Rebuild the projection in the read model from the whole log; events applied.

    Shows a progress bar on ``notice`` (stderr) and a summary on ``console``.
    """
    from ..backends._connect import connect_read_model
    from ..eventsourcing import Projector

    projection = load_projection(projection_spec)
    connecting = connect_read_model(read_model_url)  # checks the URL before opening
    loop = asyncio.get_running_loop()
    async with await open_store(url, schema=schema) as store, connecting as read_model:
        projector = Projector(store, projection, read_model, batch_size=batch_size)
        total = await wanted_events(store, projection.categories)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        started = loop.time()
        with Progress(*columns, console=notice) as progress:
            bar = progress.add_task(f"rebuilding {projection.name}", total=total)

            def show(applied: int, position: int, head: int) -> None:
                progress.update(bar, completed=applied, total=max(total, applied))

            applied = await projector.rebuild(progress=show)
            progress.update(bar, completed=applied, total=max(total, applied))
        elapsed = loop.time() - started
        position = projector.position
    rate = f" ({applied / elapsed:,.0f} events/s)" if elapsed > 0 and applied else ""
    console.print(
        f"rebuilt {projection.name!r} in {read_model_url}: {applied} events applied in "
        f"{elapsed:.2f} s{rate}; checkpoint at position {position}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return applied


async def _events_after(store: EventStore, position: int) -> int:
    """How many events the global log holds after ``position``."""
    count = 0
    async for _ in store.read_all(from_position=position + 1):
        count += 1
    return count


async def projection_lags(
    store: EventStore, read_model: ReadModel[Any], names: Sequence[str], head: int
) -> Table:
    """A table of each projection's checkpoint and the events the log holds after it."""
    table = Table(title=f"projections (head position {head})", title_justify="left")
    table.add_column("projection")
    table.add_column("checkpoint", justify="right")
    table.add_column("events behind", justify="right")
    for name in names:
        checkpoint = await read_model.checkpoint(name)
        behind = await _events_after(store, checkpoint) if checkpoint < head else 0
        table.add_row(Text(name), str(checkpoint), str(behind))
    return table
