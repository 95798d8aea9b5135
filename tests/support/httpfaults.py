"""A loopback HTTP server with scheduled faults, for tests of HTTP components.

``FaultServer()`` serves HTTP/1.1 (keep-alive) on 127.0.0.1 and a free port from a daemon
thread; as a context manager it stops on exit. Routes (any method on each):

- ``/score``: a JSON list of ``{"id", "x"}`` -> the list of ``{"id", "score": x * 2}``;
  a mapping ``{"items": [...]}`` -> ``{"results": [...]}`` (the batch_key/result_key form);
- ``/item/{id}`` -> ``{"id": id}`` (the segment percent-decoded);
- ``/echo`` -> ``{"method", "path", "query", "headers", "body"}``.

Each route (``"score"``, ``"item"``, ``"echo"``) follows a schedule: behaviours consumed one
per request (``schedule(route, *behaviours)``), then its default (``set_default``, "ok"
unless set). A behaviour is one of

- ``"ok"``: the route's answer;
- ``("status", code)``: that status, a short JSON error body;
- ``("retry_after", seconds)`` / ``("retry_after", seconds, code)``: 429 (or ``code``) with
  that ``Retry-After``;
- ``("stall", seconds)``: sleep, then the route's answer;
- ``"reset"``: the connection shut without an answer;
- ``("short", n)``: the route's answer cut to its first ``n`` results (a wrong batch);
- ``("respond", code, text)``: that status and body;
- ``("fail_until", t)`` / ``("fail_until", t, code)``: 503 (or ``code``) while
  ``time.monotonic() < t``, else the answer (keep it as a default: it is consumed like
  any other entry in a schedule);
- a callable ``f(request) -> behaviour`` (``request`` a ``Seen`` being handled), decided
  per request.

``log`` holds a ``Seen`` per request (arrival and end on ``time.monotonic()``, method, path
as sent, route, query, headers, JSON body, outcome), in arrival order.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Behaviour = Any   # "ok" | ("status", 503) | ... | Callable[[Seen], Behaviour]


@dataclass
class Seen:
    """One request as the server saw it."""

    t: float                   # arrival (time.monotonic())
    method: str
    path: str                  # as sent, still percent-encoded
    route: str
    query: dict[str, list[str]]
    headers: dict[str, str]    # names in lower case
    body: Any                  # the JSON body (None: none, or not JSON)
    outcome: str = ""          # "ok", "503", "429", "stall", "reset", "short", ...
    t_done: float = 0.0        # when the answer was written (or the connection shut)
    extra: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        """How many items the body carried (a list, or a mapping's ``items``)."""
        b = self.body
        if isinstance(b, dict):
            b = b.get("items")
        return len(b) if isinstance(b, list) else 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:   # a client that went away: quiet
        pass


class FaultServer:
    """The server (module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schedules: dict[str, deque] = {}
        self._defaults: dict[str, Behaviour] = {}
        self.log: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner._handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fault-server", daemon=True)
        self._thread.start()

    # --- the schedule -------------------------------------------------------------------------

    def schedule(self, route: str, *behaviours: Behaviour) -> FaultServer:
        with self._lock:
            self._schedules.setdefault(route, deque()).extend(behaviours)
        return self

    def set_default(self, route: str, behaviour: Behaviour) -> FaultServer:
        with self._lock:
            self._defaults[route] = behaviour
        return self

    def requests(self, route: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.log if route is None or s.route == route]

    def clear(self) -> None:
        with self._lock:
            self.log.clear()
            self._schedules.clear()
            self._defaults.clear()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- serving ------------------------------------------------------------------------------

    def _next(self, seen: Seen) -> Behaviour:
        with self._lock:
            queue = self._schedules.get(seen.route)
            b = queue.popleft() if queue else self._defaults.get(seen.route, "ok")
        while callable(b):
            b = b(seen)
        if isinstance(b, tuple) and b[0] == "fail_until":
            b = ("status", b[2] if len(b) > 2 else 503) if time.monotonic() < b[1] else "ok"
        return b

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        t = time.monotonic()
        parts = urlsplit(h.path)
        segments = parts.path.strip("/").split("/")
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        seen = Seen(t, h.command, parts.path, segments[0], parse_qs(parts.query),
                    {k.lower(): v for k, v in h.headers.items()}, body)
        with self._lock:
            self.log.append(seen)
        b = self._next(seen)
        try:
            self._behave(h, seen, b, segments)
        except OSError:            # the client went away (it timed out)
            h.close_connection = True
        seen.t_done = time.monotonic()

    def _behave(self, h: BaseHTTPRequestHandler, seen: Seen, b: Behaviour, segments: list[str]) -> None:
        kind = b if isinstance(b, str) else b[0]
        if kind == "reset":
            seen.outcome = "reset"
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "status":
            seen.outcome = str(b[1])
            return self._send(h, b[1], {"error": f"fault {b[1]}"})
        if kind == "retry_after":
            code = b[2] if len(b) > 2 else 429
            seen.outcome = str(code)
            return self._send(h, code, {"error": "slow down"}, {"Retry-After": _seconds(b[1])})
        if kind == "respond":
            seen.outcome = str(b[1])
            return self._send(h, b[1], b[2])
        if kind == "stall":
            seen.outcome = "stall"
            time.sleep(b[1])
        elif kind == "short":
            seen.outcome = "short"
        elif kind == "ok":
            seen.outcome = "ok"
        else:
            raise ValueError(f"unknown behaviour {b!r}")
        status, answer = _answer(seen, segments)
        if kind == "short":
            if isinstance(answer, dict):
                answer = {"results": answer["results"][:b[1]]}
            elif isinstance(answer, list):
                answer = answer[:b[1]]
        self._send(h, status, answer)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        ctype = "text/plain" if isinstance(payload, str) else "application/json"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        h.wfile.flush()


def _seconds(value: Any) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def _answer(seen: Seen, segments: list[str]) -> tuple[int, Any]:
    if seen.route == "score":
        b = seen.body
        items = b.get("items") if isinstance(b, dict) else b
        if not isinstance(items, list):
            return 400, {"error": "expected a JSON list of {id, x}"}
        scored = [{"id": i.get("id"), "score": i.get("x", 0) * 2} for i in items]
        return 200, ({"results": scored} if isinstance(b, dict) else scored)
    if seen.route == "item" and len(segments) == 2:
        return 200, {"id": unquote(segments[1])}
    if seen.route == "echo":
        return 200, {"method": seen.method, "path": seen.path, "query": seen.query,
                     "headers": seen.headers, "body": seen.body}
    return 404, {"error": f"no route {seen.path}"}


def max_in_window(times: list[float], window_s: float) -> int:
    """The most of ``times`` that fall in any span of ``window_s`` seconds."""
    ts = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ts):
        while t - ts[lo] > window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


