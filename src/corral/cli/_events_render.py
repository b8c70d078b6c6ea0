"""How ``corral events`` shows events and streams: tables, one-line events, JSON lines."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ..eventsourcing import RecordedEvent, StreamInfo

__all__ = (
    "event_json",
    "event_line",
    "events_table",
    "show_data",
    "streams_table",
    "timestamp",
)

#: Bytes of a binary payload shown in hex.
HEX_BYTES: Final = 16

#: Characters of a payload shown on a one-line event.
LINE_DATA: Final = 160


def timestamp(seconds: float) -> str:
    """``seconds`` since the epoch as an ISO 8601 UTC time with milliseconds."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _json_value(data: bytes) -> tuple[bool, Any]:
    """``(True, value)`` when ``data`` is JSON, else ``(False, None)``."""
    try:
        return True, json.loads(data)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return False, None


def _binary(data: bytes, why: str = "") -> str:
    shown = data[:HEX_BYTES].hex(" ")
    more = " ..." if len(data) > HEX_BYTES else ""
    return f"{why}{len(data)} bytes: {shown}{more}" if data else f"{why}0 bytes"


def show_data(data: bytes, content_type: str, *, pretty: bool) -> str:
    """``data`` for a person: JSON (indented when ``pretty``), text, or a hex summary."""
    if _is_json(content_type):
        ok, value = _json_value(data)
        if not ok:
            return _binary(data, "not JSON, ")
        indent = 2 if pretty else None
        separators = None if pretty else (", ", ": ")
        return json.dumps(value, indent=indent, separators=separators, ensure_ascii=False)
    if content_type.lower().startswith("text/"):
        return data.decode("utf-8", errors="replace")
    return _binary(data)


def _metadata(metadata: bytes) -> str:
    if not metadata:
        return ""
    return show_data(metadata, "application/json", pretty=False)


def events_table(title: str, events: Sequence[RecordedEvent], *, metadata: bool = False) -> Table:
    """The events of one stream: version, position, type, time, data (and metadata)."""
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("version", justify="right")
    table.add_column("position", justify="right")
    table.add_column("type")
    table.add_column("recorded at (UTC)")
    table.add_column("data", overflow="fold")
    if metadata:
        table.add_column("metadata", overflow="fold")
    for event in events:
        cells = [
            Text(str(event.version)),
            Text(str(event.position)),
            Text(event.type),
            Text(timestamp(event.recorded_at)),
            Text(show_data(event.data, event.content_type, pretty=True)),
        ]
        if metadata:
            cells.append(Text(_metadata(event.metadata)))
        table.add_row(*cells)
    return table


def event_line(event: RecordedEvent) -> Text:
    """One event on one line: time, position, stream and version, type, data."""
    data = show_data(event.data, event.content_type, pretty=False).replace("\n", " ")
    if len(data) > LINE_DATA:
        data = data[: LINE_DATA - 3] + "..."
    return Text.assemble(
        (timestamp(event.recorded_at), "dim"),
        f"  {event.position}  ",
        (f"{event.stream}@{event.version}", "bold"),
        "  ",
        (event.type, "cyan"),
        f"  {data}",
    )


def _payload(prefix: str, data: bytes, json_first: bool) -> dict[str, Any]:
    if json_first:
        ok, value = _json_value(data)
        if ok:
            return {prefix: value}
    return {f"{prefix}_base64": base64.b64encode(data).decode("ascii")}


def event_json(event: RecordedEvent) -> str:
    """The event as one line of JSON, for scripts.

    ``data`` holds the decoded value when the content type is JSON and the bytes parse,
    else ``data_base64`` the bytes; ``metadata`` likewise (``null`` when empty).
    """
    record: dict[str, Any] = {
        "stream": event.stream,
        "version": event.version,
        "position": event.position,
        "id": str(event.id),
        "type": event.type,
        "content_type": event.content_type,
        "recorded_at": timestamp(event.recorded_at),
    }
    record.update(_payload("data", event.data, _is_json(event.content_type)))
    if event.metadata:
        record.update(_payload("metadata", event.metadata, True))
    else:
        record["metadata"] = None
    return json.dumps(record, ensure_ascii=False)


def streams_table(streams: Sequence[StreamInfo], title: str) -> Table:
    """Streams: version, readable events, deleted, last position and time."""
    table = Table(title=title, title_justify="left")
    table.add_column("stream")
    table.add_column("version", justify="right")
    table.add_column("events", justify="right")
    table.add_column("deleted")
    table.add_column("last position", justify="right")
    table.add_column("last recorded (UTC)")
    for info in streams:
        table.add_row(
            Text(info.stream),
            str(info.version),
            str(info.events),
            "deleted" if info.deleted else "",
            str(info.last_position),
            timestamp(info.last_recorded_at),
        )
    return table
