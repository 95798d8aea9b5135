"""What one caller may send: request body size, request rate, spec size.

Owns ``Limits`` (the knobs), ``BodyLimitMiddleware`` (pure ASGI: 413 for a body over
``max_body_bytes``, by its Content-Length or by counting a streamed body before the app
reads it) and ``RateLimitMiddleware`` (pure ASGI: a token bucket per caller, keyed by the
bearer token's hash, or the client host without a token; 429 with Retry-After). The
spec-size check (``check_spec_size``) is called by the routes that take a spec. Must not
read the store or the plane: limits are decided from the request alone.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rayflow.core import config
from rayflow.server import tokens
from rayflow.server.http.errors import ApiError, body

EXEMPT = frozenset({"/healthz", "/readyz"})   # probes are never rate limited
MAX_BUCKETS = 50_000


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_048_576
    max_spec_components: int = field(default_factory=config.max_components)   # $RAYFLOW_MAX_COMPONENTS
    rate_per_s: float = 200.0        # requests per second per caller; 0 turns the limiter off
    burst: int = 400


def check_spec_size(spec: Any, limits: Limits, field: str = "body.spec.components") -> None:
    """413 when a spec holds more components than ``limits.max_spec_components``."""
    components = spec.get("components") if isinstance(spec, dict) else None
    if isinstance(components, list) and len(components) > limits.max_spec_components:
        raise ApiError(413, "spec_too_large", f"the spec has {len(components)} components; this server takes "
                       f"at most {limits.max_spec_components} per spec", field=field)


async def _refuse(send: Callable, status: int, code: str, message: str,
                  headers: dict[str, str] | None = None, field: str | None = None) -> None:
    payload = json.dumps(body(code, message, field)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


class BodyLimitMiddleware:
    """Refuses a request body over ``max_bytes`` with 413 before the app sees any of it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not self._has_body(scope):
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":      # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    @staticmethod
    def _has_body(scope: dict) -> bool:
        return (scope["method"] in ("POST", "PUT", "PATCH") or _header(scope, b"content-length") is not None
                or _header(scope, b"transfer-encoding") is not None)

    async def _too_large(self, send: Callable) -> None:
        await _refuse(send, 413, "body_too_large", f"the request body is over {self.max_bytes} bytes, "
                      "the most this server takes", field="body")


def _replay(data: bytes, receive: Callable) -> Callable:
    """A receive that yields the buffered body once, then waits on the real one (disconnect)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await receive()

    return replay


class TokenBuckets:
    """A token bucket per key: ``rate`` per second, at most ``burst`` saved. Thread-safe."""

    def __init__(self, rate: float, burst: int, max_keys: int = MAX_BUCKETS) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()   # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when a request may go now, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            level, at = self._buckets.pop(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - at) * self.rate)
            wait = 0.0 if level >= 1.0 else (1.0 - level) / self.rate
            self._buckets[key] = (level - 1.0 if wait == 0.0 else level, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)       # the longest idle caller starts afresh
            return wait


class RateLimitMiddleware:
    """429 with Retry-After for a caller over its rate (``Limits.rate_per_s``, ``burst``)."""

    def __init__(self, app: Any, limits: Limits, *, by_token: bool) -> None:
        self.app = app
        self.by_token = by_token
        self.buckets = TokenBuckets(limits.rate_per_s, limits.burst) if limits.rate_per_s > 0 else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if self.buckets is None or scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(self._key(scope))
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            await _refuse(send, 429, "rate_limited", f"over {self.buckets.rate:g} requests/s for this caller; "
                          f"retry after {retry} s", headers={"Retry-After": retry})
            return
        await self.app(scope, receive, send)

    def _key(self, scope: dict) -> str:
        if self.by_token:
            value = (_header(scope, b"authorization") or b"").decode("latin-1")
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return "t:" + tokens.hash_token(token.strip())
        client = scope.get("client")
        return "h:" + (client[0] if client else "unknown")
