"""What the ``corral events`` commands do, once their options are parsed."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from ..errors import InvalidArgumentError
from ..eventsourcing._subscription import subscription_filter
from ._events_open import open_read_model, open_store
from ._events_rebuild import projection_lags
from ._events_render import event_json, event_line, events_table, streams_table, timestamp

if TYPE_CHECKING:
    from ..eventsourcing import EventStore

__all__ = ("StoreFigures", "show", "stats", "store_figures", "streams", "tail")


async def streams(
    console: Console, url: str, *, schema: str | None, prefix: str | None, limit: int | None
) -> None:
    """Print the streams of the store as a table."""
    async with await open_store(url, schema=schema) as store:
        listed = [info async for info in store.list_streams(prefix=prefix, limit=limit)]
    what = "streams" if len(listed) != 1 else "stream"
    if prefix:
        what += f" named {prefix}..."
    if not listed:
        console.print(f"no {what}", markup=False)
        return
    title = f"{len(listed)} {what}" if limit is None else f"first {len(listed)} {what}"
    console.print(streams_table(listed, title))


async def show(
    console: Console,
    url: str,
    stream: str,
    *,
    schema: str | None,
    from_version: int | None,
    backwards: bool,
    limit: int | None,
    as_json: bool,
    metadata: bool,
) -> bool:
    """Print a stream's events; False when the stream has never had an event."""
    async with await open_store(url, schema=schema) as store:
        reader = store.read_stream(
            stream, from_version=from_version, backwards=backwards, limit=limit
        )
        if as_json:
            printed = 0
            async for event in reader:
                console.out(event_json(event), highlight=False)
                printed += 1
            if printed:
                return True
            return (await store.get_stream_metadata(stream)).version > 0
        events = await reader.collect()
        state = await store.get_stream_metadata(stream)
    if state.version == 0:
        return False
    deleted = ", deleted" if state.deleted else ""
    shown = "1 event" if len(events) == 1 else f"{len(events)} events"
    title = f"stream {stream!r}: version {state.version}{deleted}, {shown} shown"
    if events:
        console.print(events_table(title, events, metadata=metadata))
    else:
        console.print(title)
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class StoreFigures:
    """What ``corral events stats`` counts in a store.

    Attributes:
        events: events in the global log (read or not: truncation and deletion hide
            events from stream reads, never from the log).
        streams: streams with at least one event.
        deleted_streams: of those, soft-deleted ones.
        head_position: the last position in the global log (0 when empty).
        last_recorded_at: when the last event was recorded (``None`` when empty).
    """

    events: int
    streams: int
    deleted_streams: int
    head_position: int
    last_recorded_at: float | None


async def store_figures(store: EventStore) -> StoreFigures:
    """Count the store's events and streams from its list of streams.

    A stream's events are versions 1 to its version, all in the global log, so the
    log holds the sum of the versions, and its head is the largest last position.
    """
    events = streams_count = deleted = head = 0
    last: float | None = None
    async for info in store.list_streams():
        events += info.version
        streams_count += 1
        deleted += info.deleted
        head = max(head, info.last_position)
        last = info.last_recorded_at if last is None else max(last, info.last_recorded_at)
    return StoreFigures(events, streams_count, deleted, head, last)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _bytes(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    scaled = size / 1024
    for unit in ("KiB", "MiB"):
        if scaled < 1024:
            return f"{scaled:.1f} {unit}"
        scaled /= 1024
    return f"{scaled:.1f} GiB"


async def stats(
    console: Console,
    url: str,
    *,
    schema: str | None,
    read_model_url: str | None = None,
    projections: Sequence[str] = (),
) -> None:
    """Print the store's figures: events, streams, head position, engine, file size.

    With ``read_model_url`` and ``projections``, also each projection's checkpoint in
    that read model and how many events of the log come after it.
    """
    from ..backends.sqlite import SqliteEventStore

    if bool(read_model_url) != bool(projections):
        raise InvalidArgumentError("give --read-model and --projection together")
    lags = None
    async with await open_store(url, schema=schema) as store:
        figures = await store_figures(store)
        if read_model_url is not None:
            async with await open_read_model(read_model_url) as read_model:
                lags = await projection_lags(store, read_model, projections, figures.head_position)
    table = Table(show_header=False, title=f"event store {url}", title_justify="left")
    table.add_column("what")
    table.add_column("value")
    table.add_row("engine", store.engine)
    table.add_row("events", str(figures.events))
    streams_cell = str(figures.streams)
    if figures.deleted_streams:
        streams_cell += f" ({figures.deleted_streams} deleted)"
    table.add_row("streams", streams_cell)
    table.add_row("head position", str(figures.head_position))
    last = "-" if figures.last_recorded_at is None else timestamp(figures.last_recorded_at)
    table.add_row("last recorded (UTC)", last)
    if isinstance(store, SqliteEventStore):
        table.add_row("file", store.path)
        table.add_row("file size", _bytes(_size(store.path)))
        table.add_row("WAL size", _bytes(_size(store.path + "-wal")))
    console.print(table)
    if lags is not None:
        console.print(lags)


async def tail(
    console: Console,
    notice: Console,
    url: str,
    *,
    schema: str | None,
    stream: str | None,
    category: str | None,
    from_position: int | None,
    from_end: bool,
    count: int | None,
    as_json: bool,
    poll_interval: float,
) -> int:
    """Print events as they commit, until ``count`` of them (or forever); how many.

    ``notice`` (stderr) says what is followed once the start position is known.
    """
    if from_position is not None and from_end:
        raise InvalidArgumentError("give --from-position or --from-end, not both")
    shown = 0
    async with await open_store(url, schema=schema) as store:
        start = from_position or 0
        if from_end:
            start = await store.head_position() + 1
        subscription = store.subscribe(
            stream=stream, category=category, from_position=start, poll_interval=poll_interval
        )
        what = subscription_filter(stream, category)[1]
        notice.print(
            f"following {what} of {url} from position {start or 1} (Ctrl-C to stop)",
            markup=False,
        )
        async with subscription:
            async for event in subscription:
                if as_json:
                    console.out(event_json(event), highlight=False)
                else:
                    console.print(event_line(event), soft_wrap=True)
                console.file.flush()
                shown += 1
                if count is not None and shown >= count:
                    break
    return shown
