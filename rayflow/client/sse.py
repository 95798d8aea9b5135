"""Server-Sent Events, read: the lines of a ``text/event-stream`` into messages.

Owns the framing rules of the WHATWG EventSource spec that a client needs: ``field: value``
lines (one leading space dropped), ``data`` lines joined with newlines, ``:`` comments
(the server's keep-alives) ignored, a blank line dispatching the message, ``id`` kept
for ``Last-Event-ID``, ``retry`` (milliseconds) for the reconnection delay. Pure: no I/O,
no httpx; ``rayflow.client.http`` feeds it the lines of a response.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Message:
    """One dispatched event; ``id`` is the last id the stream set (None before any)."""

    data: str
    event: str = "message"
    id: str | None = None

    def decoded(self) -> dict[str, Any]:
        """The data as a dict (a rayflow event record); text that is not a JSON object is
        kept under ``data`` with the message's id and kind."""
        try:
            value = json.loads(self.data)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        seq = int(self.id) if self.id is not None and self.id.isdigit() else None
        return {"seq": seq, "kind": self.event, "data": self.data if value is None else value}


class Decoder:
    """Feed it lines (without their line break); it answers a ``Message`` at each blank line
    that ends one, else None. One decoder per stream: ``reset()`` when its connection drops
    drops the message cut off with it and keeps the last id, as the spec says. ``retry_ms``:
    the last ``retry`` the server asked for (None before any)."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self.retry_ms: int | None = None

    def reset(self) -> None:
        self._data, self._event = [], ""

    def feed(self, line: str) -> Message | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Message | None:
        data, event, self._data, self._event = self._data, self._event, [], ""
        if not data:
            return None
        return Message("\n".join(data), event or "message", self._id)
