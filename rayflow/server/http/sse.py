"""A run's events as a Server-Sent Events stream, gap-free, ending after its terminal event.

Owns the stream's framing (``id: <seq>``, ``event: <kind>``, ``data: <the EventRecord as
JSON>``, a ``: keep-alive`` comment when idle) and its polling: the plane is read in a
worker thread every ``poll_s`` (never a busy loop, never on the event loop), events are
sent in ``seq`` order, strictly +1 from where the client resumed (``Last-Event-ID``), and
a gap is waited out rather than skipped. The stream ends once it has sent the run's
terminal ``run_state`` event, the plane says the run is final and nothing follows it; a
plane error mid-stream ends it too (logged), and the client resumes from its last id.
Must not decide anything about the run; the plane owns the events.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from anyio import to_thread

from rayflow.core.states import TERMINAL_RUN_STATES
from rayflow.store.port import EventRecord

log = logging.getLogger("rayflow.server.http")

POLL_S = 0.2
KEEP_ALIVE_S = 10.0
GAP_GIVE_UP_S = 60.0     # a gap still open this long after the run is final ends the stream (no skip)
BATCH = 1000


def frame(event: EventRecord) -> str:
    data = json.dumps(event.to_dict(), separators=(",", ":"), default=str)
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"


def is_terminal(event: EventRecord) -> bool:
    if event.kind != "run_state" or not isinstance(event.data, dict):
        return False
    state = event.data.get("status", event.data.get("state"))
    return state in TERMINAL_RUN_STATES


@dataclass
class _Cursor:
    after: int
    terminal: bool = False           # the last run_state event sent was terminal
    gap_since: float | None = None   # when the next seq was first found missing


class EventStream:
    """Iterates the SSE text of one run's events, starting after ``after``."""

    def __init__(self, plane: Any, run_id: str, after: int = 0, *, poll_s: float = POLL_S,
                 keep_alive_s: float = KEEP_ALIVE_S) -> None:
        self.plane = plane
        self.run_id = run_id
        self.cursor = _Cursor(after)
        self.poll_s = poll_s
        self.keep_alive_s = keep_alive_s

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._frames():
                yield chunk
        except Exception as exc:  # noqa: BLE001 - headers are sent: end the stream; the client resumes
            log.warning("run %s: the event stream ends after seq %d: %s: %s", self.run_id, self.cursor.after,
                        type(exc).__name__, exc)

    async def _frames(self) -> AsyncIterator[str]:
        last_sent = time.monotonic()
        while True:
            events = await to_thread.run_sync(self.plane.events, self.run_id, self.cursor.after, BATCH)
            chunk = self._take(events)
            if chunk:
                last_sent = time.monotonic()
                yield chunk
                if len(events) >= BATCH:
                    continue                 # more are waiting: no sleep
            if await self._ended():
                return
            if time.monotonic() - last_sent >= self.keep_alive_s:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
            await anyio.sleep(self.poll_s)

    def _take(self, events: list[EventRecord]) -> str:
        """The frames of the events that follow the cursor without a gap (cursor moved on)."""
        out = []
        for event in sorted(events, key=lambda e: e.seq):
            if event.seq <= self.cursor.after:
                continue
            if event.seq != self.cursor.after + 1:
                self._gap(event.seq)
                break
            out.append(frame(event))
            self.cursor.after = event.seq
            self.cursor.gap_since = None
            if event.kind == "run_state":
                self.cursor.terminal = is_terminal(event)
        return "".join(out)

    def _gap(self, seq: int) -> None:
        if self.cursor.gap_since is None:
            self.cursor.gap_since = time.monotonic()
            log.debug("run %s: event %d not there yet (next is %d); waiting", self.run_id,
                      self.cursor.after + 1, seq)

    async def _ended(self) -> bool:
        c = self.cursor
        if c.gap_since is not None:
            stale = time.monotonic() - c.gap_since > GAP_GIVE_UP_S
            if stale and await to_thread.run_sync(self.plane.is_final, self.run_id):
                log.warning("run %s: event %d is missing; the stream ends there", self.run_id, c.after + 1)
                return True
            return False
        if not c.terminal or not await to_thread.run_sync(self.plane.is_final, self.run_id):
            return False
        # final now: end unless something came after the terminal event (a resume or retry)
        return not await to_thread.run_sync(self.plane.events, self.run_id, c.after, 1)
