"""HTTP clients of HTTP components, pooled per host per process: the one module importing httpx.

Owns the pool (one ``httpx.Client`` per (scheme, host, port, http2) in the process, made
on first use and reused by every call after it, Ray reusing a worker process for the
tasks it runs; at most ``RAYFLOW_HTTP_MAX_CONNECTIONS`` (default 20) connections each),
sending one request (``send``: the whole answer read, or a ``TransportError`` that says
whether the request may have reached the server), and the per-host counters of
``stats()``: requests, retries, failures, rate-limit waits, clients created, and the
state of the host's circuit breaker. Never logs URLs, headers or bodies, and keeps httpx
and httpcore from logging them for a component's requests (``_Quiet``). No ray.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from rayflow.connect.http import breaker as _breaker
from rayflow.connect.http import ratelimit as _ratelimit
from rayflow.connect.http.errors import HttpConfigError, HttpError

MAX_CONNECTIONS_VAR = "RAYFLOW_HTTP_MAX_CONNECTIONS"
DEFAULT_MAX_CONNECTIONS = 20
_PORTS = {"http": 80, "https": 443}


class _Quiet(logging.Filter):
    """Drops httpx's and httpcore's own log records (each request's URL, query included,
    and the response's headers) emitted while a thread sends a component's request: a URL
    may carry a revealed secret, and this module logs no URL, header or body."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "sending", False)


_QUIET = _Quiet()
for _name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy"):
    logging.getLogger(_name).addFilter(_QUIET)


def max_connections() -> int:
    try:
        return max(1, int(os.environ.get(MAX_CONNECTIONS_VAR, DEFAULT_MAX_CONNECTIONS)))
    except ValueError:
        return DEFAULT_MAX_CONNECTIONS


class TransportError(HttpError):
    """No HTTP answer. ``kind``: ``connect`` (no connection: the request was not sent),
    ``timeout`` (no answer in time) or ``reset`` (the connection broke, or the server
    closed it without answering); ``sent``: whether the server may have seen the request."""

    def __init__(self, kind: str, sent: bool, detail: str) -> None:
        self.kind, self.sent = kind, sent
        super().__init__(detail)


@dataclass(frozen=True)
class Reply:
    """A whole HTTP answer: status, headers (names in lower case), body."""

    status: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL, the port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _PORTS or not parts.hostname:
        raise HttpConfigError(f"url: expected an absolute http:// or https:// URL, not {parts.scheme or '?'}://...")
    try:
        port = parts.port or _PORTS[scheme]
    except ValueError:
        raise HttpConfigError("url: the port is not a number") from None
    return scheme, parts.hostname.lower(), port


def host_key(url: str) -> str:
    """The key of ``url``'s host in the pool, the breakers and the rate limits: ``scheme://host:port``."""
    scheme, host, port = origin(url)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


@dataclass
class _Counts:
    requests: int = 0
    retries: int = 0
    failures: int = 0
    rate_limit_wait_s: float = 0.0
    clients_created: int = 0


_CLIENTS: dict[tuple[str, str, int, bool], httpx.Client] = {}
_COUNTS: dict[str, _Counts] = {}
_LOCK = threading.Lock()


def _counts(host: str) -> _Counts:
    c = _COUNTS.get(host)
    if c is None:
        c = _COUNTS[host] = _Counts()
    return c


def count(host: str, *, retries: int = 0, failures: int = 0, rate_limit_wait_s: float = 0.0) -> None:
    """Add to ``host``'s counters (the engine's retries, failed calls, rate-limit waits)."""
    with _LOCK:
        c = _counts(host)
        c.retries += retries
        c.failures += failures
        c.rate_limit_wait_s += rate_limit_wait_s


def _check_http2() -> None:
    if importlib.util.find_spec("h2") is None:
        raise HttpConfigError("http2: the h2 package is not installed where the component runs; "
                          "pip install 'httpx[http2]'")


def client_for(url: str, http2: bool = False) -> httpx.Client:
    """The process's client for ``url``'s (scheme, host, port, http2), made on first use."""
    scheme, host, port = origin(url)
    key = (scheme, host, port, bool(http2))
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is not None:
            return client
    if http2:
        _check_http2()
    n = max_connections()
    made = httpx.Client(http2=bool(http2), follow_redirects=False,
                        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = made
            _counts(host_key(url)).clients_created += 1
            made = None
    if made is not None:    # another thread made one first
        made.close()
    return client


def send(method: str, url: str, *, headers: dict[str, str] | None = None,
         params: dict[str, Any] | None = None, json: Any = None, has_json: bool = False,
         timeout_s: float = 30.0, http2: bool = False) -> Reply:
    """Send one request and read the whole answer. ``json`` is the body when ``has_json``.
    Raises ``TransportError`` when there is no answer, ``HttpConfigError`` for a request that
    can never be sent (a bad URL or header)."""
    client = client_for(url, http2)
    with _LOCK:
        _counts(host_key(url)).requests += 1
    kwargs: dict[str, Any] = {"headers": headers, "params": params,
                              "timeout": httpx.Timeout(timeout_s)}
    if has_json:
        kwargs["json"] = json
    _QUIET.local.sending = True
    try:
        r = client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
        raise TransportError("connect", False, f"cannot connect: {_detail(e)}") from None
    except httpx.TimeoutException as e:
        raise TransportError("timeout", True, f"no answer in {timeout_s:g}s ({_detail(e)})") from None
    except (httpx.NetworkError, httpx.RemoteProtocolError) as e:
        raise TransportError("reset", True, f"connection broken: {_detail(e)}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise HttpConfigError(f"cannot send the request: {_detail(e)}") from None
    finally:
        _QUIET.local.sending = False
    return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)


def _detail(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def stats() -> dict[str, dict[str, Any]]:
    """Per host (``scheme://host:port``): requests sent, retries, failed calls, seconds
    waited for the rate limit, clients created, and the circuit breaker's state."""
    with _LOCK:
        counts = {h: dict(vars(c)) for h, c in _COUNTS.items()}
    breakers = _breaker.stats()
    buckets = _ratelimit.stats()
    out: dict[str, dict[str, Any]] = {}
    for host in sorted(set(counts) | set(breakers) | set(buckets)):
        row: dict[str, Any] = dict(counts.get(host) or vars(_Counts()))
        row["rate_limit_wait_s"] = round(row["rate_limit_wait_s"], 6)
        b = breakers.get(host)
        row["breaker"] = b["state"] if b else None
        row["breaker_opened"] = b["opened"] if b else 0
        out[host] = row
    return out


def reset() -> None:
    """Close every client and forget the counters, breakers and rate limits (tests)."""
    with _LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
        _COUNTS.clear()
    for c in clients:
        c.close()
    _breaker.reset()
    _ratelimit.reset()


def _close_all() -> None:
    with _LOCK:
        clients = list(_CLIENTS.values())
    for c in clients:
        try:
            c.close()
        except Exception:   # noqa: BLE001 - the process is exiting
            pass


atexit.register(_close_all)
