"""Server-Sent Events, as RunPod's log streams send them: `id:`/`data:` fields read as they arrive,
and the log line inside each event's JSON payload. The HTTP side (opening, deadlines) is client.py's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import urllib3


def events(raw: urllib3.response.BaseHTTPResponse) -> Iterator[tuple[str | None, str]]:
    """(last `id:` seen, `data:` value) of a Server-Sent Events stream, as they arrive."""
    event_id = None
    for field_name, value in fields(raw):
        if field_name == "id":
            event_id = value
        elif field_name == "data":
            yield event_id, value


def fields(raw: urllib3.response.BaseHTTPResponse) -> Iterator[tuple[str, str]]:
    """The `id:`/`data:` fields of a Server-Sent Events stream, as they arrive.

    `read1` returns whatever bytes are available, so events surface without waiting for a
    full buffer. Each RunPod event is one JSON `data:` line, so lines are yielded one by one
    rather than waiting for the blank line that ends an event.
    """
    buffer = b""
    while chunk := raw.read1(8192, decode_content=True):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            text = line.rstrip(b"\r").decode("utf-8", "replace")
            for name in ("id", "data"):
                if text.startswith(name + ":"):
                    value = text[len(name) + 1:]
                    yield name, value[1:] if value.startswith(" ") else value


def log_line(data: str) -> str:
    """The `line` of a `{"ts","source","line"}` payload; other data is kept as text."""
    try:
        payload = json.loads(data)
    except ValueError:
        return data
    if isinstance(payload, dict) and "line" in payload:
        return str(payload["line"])
    return data
