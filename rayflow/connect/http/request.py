"""One request of an HTTP component, through its host's rate limit and circuit breaker,
with retries.

Owns the retry policy: idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) are retried
after a connection error, a broken connection, a timeout and the statuses 429, 502, 503
and 504; POST and PATCH only after a connection error (the request was never sent) and
the statuses 429 and 503 (the server said it did not process it), unless ``retry_unsafe``
makes them idempotent too. ``Retry-After`` (seconds or an HTTP date) sets the wait after a
429 or 503, capped at ``retry_after_cap_s`` (default ``RAYFLOW_HTTP_RETRY_AFTER_CAP_S``,
60 s); otherwise the wait is ``rayflow.connect.backoff``'s full jitter. Any other status
that is not 2xx fails at once. Every message is one line, through ``Revealed.scrub``.
Never logs headers or bodies. No ray.
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from rayflow.connect.backoff import Backoff
from rayflow.connect.http import breaker as _breaker
from rayflow.connect.http import client
from rayflow.connect.http import ratelimit as _ratelimit
from rayflow.connect.http.breaker import CircuitOpen
from rayflow.connect.http.client import Reply, TransportError
from rayflow.connect.http.errors import HttpConfigError, HttpError
from rayflow.connect.secrets import Revealed
from rayflow.core.redact import redact

log = logging.getLogger("rayflow.connect")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
UNSAFE_RETRY_STATUSES = frozenset({429, 503})       # the server did not process the request
RETRY_AFTER_CAP_VAR = "RAYFLOW_HTTP_RETRY_AFTER_CAP_S"
DEFAULT_RETRY_AFTER_CAP_S = 60.0
BODY_SHOWN = 200


def retry_after_cap_s() -> float:
    try:
        return max(0.0, float(os.environ.get(RETRY_AFTER_CAP_VAR, DEFAULT_RETRY_AFTER_CAP_S)))
    except ValueError:
        return DEFAULT_RETRY_AFTER_CAP_S


@dataclass(frozen=True)
class Policy:
    """How a call's requests are sent: retries, limits, timeouts (from ``http_call``'s arguments)."""

    method: str
    headers: dict[str, str]
    params: dict[str, Any] | None
    backoff: Backoff
    retry_after_cap_s: float
    rate: tuple[float, float | None] | None
    breaker: tuple[int, float, float] | None
    timeout_s: float
    http2: bool
    retry_unsafe: bool

    @property
    def idempotent(self) -> bool:
        return self.retry_unsafe or self.method in IDEMPOTENT


def parse_retry(config: dict | None) -> tuple[Backoff, float]:
    """``{"retries": 5, "base_s": 0.1, "cap_s": 10, "retry_after_cap_s": 60}``."""
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise HttpConfigError(f"retry: expected a mapping like {{retries: 5, base_s: 0.1, cap_s: 10}}, "
                              f"not {config!r}")
    unknown = set(config) - {"retries", "base_s", "cap_s", "retry_after_cap_s"}
    if unknown:
        raise HttpConfigError(f"retry: unknown keys {sorted(unknown)} "
                              "(expected retries, base_s, cap_s, retry_after_cap_s)")
    retries = config.get("retries", 5)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise HttpConfigError(f"retry: retries must be an integer >= 0, not {retries!r}")
    try:
        base_s, cap_s = float(config.get("base_s", 0.1)), float(config.get("cap_s", 10.0))
        cap_after = float(config.get("retry_after_cap_s", retry_after_cap_s()))
    except (TypeError, ValueError):
        raise HttpConfigError("retry: base_s, cap_s and retry_after_cap_s must be numbers of seconds") from None
    if base_s < 0 or cap_s < 0 or cap_after < 0:
        raise HttpConfigError("retry: base_s, cap_s and retry_after_cap_s must be >= 0")
    return Backoff(retries, base_s, cap_s), cap_after


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header's seconds (a number, or an HTTP date); None: absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - now)


def shown_url(url: str, params: dict[str, Any] | None, revealed: Revealed) -> str:
    """``url`` (with ``params``) as an error shows it: passwords, secret parameters and
    every revealed secret as ``***``."""
    if params:
        url = url + ("&" if "?" in url else "?") + urlencode(params, doseq=True)
    return revealed.scrub(redact(url))


def body_excerpt(reply: Reply) -> str:
    text = " ".join(reply.text.split())
    return text[:BODY_SHOWN] + ("..." if len(text) > BODY_SHOWN else "")


def send(url: str, json: Any, has_json: bool, policy: Policy, revealed: Revealed) -> Reply:
    """Send one request with retries; the 2xx answer, or ``HttpError`` (``CircuitOpen``)."""
    host = client.host_key(url)
    bucket = None if policy.rate is None else _ratelimit.for_host(host, *policy.rate)
    brk = None if policy.breaker is None else _breaker.for_host(host, *policy.breaker[:2])
    method = policy.method
    attempt = 0
    while True:
        attempt += 1
        if bucket is not None:
            waited = bucket.acquire()
            if waited:
                client.count(host, rate_limit_wait_s=waited)
        trial = False
        if brk is not None:
            try:
                trial = brk.acquire(policy.breaker[2])
            except CircuitOpen:
                client.count(host, failures=1)
                raise
        reply: Reply | None = None
        try:
            reply = client.send(method, url, headers=policy.headers, params=policy.params, json=json,
                                has_json=has_json, timeout_s=policy.timeout_s, http2=policy.http2)
        except TransportError as e:
            failure: TransportError | None = e
        except BaseException:
            if brk is not None:
                brk.release(trial)
            raise
        else:
            failure = None

        if reply is not None and (reply.status < 500 and reply.status != 429):
            if brk is not None:
                brk.success(trial)
            if 200 <= reply.status < 300:
                return reply
            client.count(host, failures=1)
            raise HttpError(revealed.scrub(
                f"{method} {shown_url(url, policy.params, revealed)}: status {reply.status}: "
                f"{body_excerpt(reply)}"), reply.status)
        if brk is not None:
            brk.failure(trial)

        wait = None
        if failure is not None:
            retryable = failure.kind == "connect" or policy.idempotent
            why = str(failure)
        else:
            statuses = RETRY_STATUSES if policy.idempotent else UNSAFE_RETRY_STATUSES
            retryable = reply.status in statuses
            why = f"status {reply.status}: {body_excerpt(reply)}"
            if reply.status in (429, 503):
                after = retry_after(reply.headers.get("retry-after"))
                if after is not None:
                    wait = min(after, policy.retry_after_cap_s)
        if not retryable or attempt > policy.backoff.retries:
            client.count(host, failures=1)
            tries = f" (after {attempt} attempts)" if attempt > 1 else ""
            raise HttpError(revealed.scrub(
                f"{method} {shown_url(url, policy.params, revealed)}: {why}{tries}"),
                None if reply is None else reply.status)
        if wait is None:
            wait = policy.backoff.delay(attempt)
        client.count(host, retries=1)
        log.info("http %s to %s: attempt %d failed (%s); retrying in %.2fs", method, host, attempt,
                 "no answer" if reply is None else f"status {reply.status}", wait)
        time.sleep(wait)
