"""Rate limits of HTTP components: one token bucket per host per process.

Owns the bucket (``TokenBucket``: ``per_second`` tokens a second, at most ``burst`` kept,
``acquire()`` blocks until one is free and returns the seconds it waited) and the
process's registry of buckets, one per host (``for_host``), shared by every call to that
host in the process. A waiter reserves its token before it sleeps, so waiters are served
in arrival order and the bucket never grants more than ``burst + per_second * t`` tokens
in any span of ``t`` seconds. Thread-safe; the clock and the sleep are parameters so that
tests run on a fake clock. No I/O, no ray.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rayflow.connect.http.errors import HttpConfigError
from rayflow.connect.http.hosts import PerHost

Clock = Callable[[], float]


class TokenBucket:
    """``per_second`` tokens a second, up to ``burst`` (default ``per_second``) saved up."""

    def __init__(self, per_second: float, burst: float | None = None, *,
                 clock: Clock = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.waited_s = 0.0          # seconds spent in acquire() by every caller together
        self.waits = 0               # acquire() calls that had to wait
        self.per_second, self.burst = _checked(per_second, burst)
        self._tokens = self.burst    # may go below 0: tokens reserved by waiters
        self._at = clock()

    def configure(self, per_second: float, burst: float | None = None) -> None:
        """Change the rate (the tokens saved so far are kept, up to the new burst)."""
        per_second, burst = _checked(per_second, burst)
        with self._lock:
            self._refill()
            self.per_second, self.burst = per_second, burst
            self._tokens = min(self._tokens, burst)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now

    def reserve(self) -> float:
        """Take a token now; the seconds until it may be used (0: at once)."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.per_second

    def acquire(self) -> float:
        """Block until a token is free; the seconds waited."""
        delay = self.reserve()
        if delay <= 0:
            return 0.0
        self._sleep(delay)
        with self._lock:
            self.waited_s += delay
            self.waits += 1
        return delay

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"per_second": self.per_second, "burst": self.burst,
                    "waits": self.waits, "waited_s": round(self.waited_s, 6)}


def _checked(per_second: Any, burst: Any) -> tuple[float, float]:
    try:
        rate = float(per_second)
        size = rate if burst is None else float(burst)
    except (TypeError, ValueError):
        raise HttpConfigError(f"rate_limit: per_second and burst must be numbers, "
                          f"not {per_second!r} and {burst!r}") from None
    if not rate > 0 or not size >= 1:
        raise HttpConfigError(f"rate_limit: per_second must be > 0 and burst >= 1 "
                          f"(got per_second={per_second!r}, burst={burst!r})")
    return rate, size


def parse(config: dict | None) -> tuple[float, float | None] | None:
    """``{"per_second": 50, "burst": 50}`` as (per_second, burst); None: no limit."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise HttpConfigError(f"rate_limit: expected a mapping like {{per_second: 50, burst: 50}}, not {config!r}")
    unknown = set(config) - {"per_second", "burst"}
    if unknown:
        raise HttpConfigError(f"rate_limit: unknown keys {sorted(unknown)} (expected per_second, burst)")
    if "per_second" not in config:
        raise HttpConfigError("rate_limit: per_second is required")
    rate, size = _checked(config["per_second"], config.get("burst"))
    return rate, size


_BUCKETS: PerHost[TokenBucket] = PerHost()


def for_host(host: str, per_second: float, burst: float | None = None) -> TokenBucket:
    """The bucket of ``host`` in this process, created on first use; a call that asks for
    another rate changes the host's rate for every call after it."""
    bucket = _BUCKETS.get(host, lambda: TokenBucket(per_second, burst))
    if (bucket.per_second, bucket.burst) != _checked(per_second, burst):
        bucket.configure(per_second, burst)
    return bucket


def stats() -> dict[str, dict[str, Any]]:
    return _BUCKETS.stats()


def reset() -> None:
    """Forget every bucket (tests)."""
    _BUCKETS.reset()
