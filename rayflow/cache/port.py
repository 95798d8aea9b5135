"""The CacheTier port: what every result-cache tier (memory, Redis, files) fulfils.

Owns the tier protocol, the counters every tier keeps, and the rule for names that
cross it: a tier stores opaque ``bytes`` under ``str`` keys; it never decodes what it
stores (decoding, and refusing what does not verify, is ``MultiLevelCache``'s job).
Keys made by ``rayflow.plan.fingerprints.entry_key`` start with ``"<component>:"`` (the
component id percent-encoded, so it holds no ``:``), which is how
``clear(prefix=component_prefix(c))`` drops one component's entries.

tests/contracts/test_cache_tiers.py runs one suite against every tier. Must not import
any tier's client library (redis, pyarrow.fs) nor the codec.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

from rayflow.core.errors import ConfigError


@runtime_checkable
class CacheTier(Protocol):
    """One level of the cache. Calls never raise for a transient outage of the tier's
    backend: a read that cannot be answered is a miss (``None``) and a write that cannot
    be done is dropped, both counted in ``stats()["errors"]``. Only ``clear`` raises
    (``CacheUnavailable``), since a user asked for it and must hear that it failed."""

    name: str

    def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``; ``None`` when absent, expired or unreachable."""

    def put(self, key: str, blob: bytes, ttl_s: float | None = None, *, cost_s: float = 0.0) -> None:
        """Store ``blob`` for ``ttl_s`` seconds (``None``: no expiry). ``cost_s`` is what it
        would cost to recompute (eviction policies may weigh it; others ignore it)."""

    def delete(self, key: str) -> None:
        """Drop ``key`` if present."""

    def clear(self, prefix: str | None = None) -> int:
        """Drop every entry whose key starts with ``prefix`` (all when ``None``) that this
        tier can see; return how many were dropped (or an estimate where the backend
        cannot count). Raises ``CacheUnavailable`` when the backend cannot be reached."""

    def stats(self) -> dict[str, Any]:
        """Counters since the tier was opened (``TierCounters.snapshot``), plus the tier's
        own fields (policy, breaker state, ...). Cheap: never scans the backend."""

    def usage(self) -> dict[str, Any]:
        """``{"entries": int | None, "bytes": int | None}`` held now; may scan the backend
        (a directory walk, a Redis SCAN): for ``rayflow cache stats``, not the hot path."""

    def close(self) -> None:
        """Release connections, threads and held memory; idempotent. After it, a tier that
        needs a connection answers misses and no-ops (memory and files just keep working)."""


@dataclass
class TierCounters:
    """What every tier counts. Thread-safe through ``add``; ``snapshot`` adds the ratio."""

    hits: int = 0
    misses: int = 0
    puts: int = 0
    deletes: int = 0
    evictions: int = 0      # dropped to make room (memory tier)
    expired: int = 0        # found past their TTL and dropped
    rejected: int = 0       # stored bytes that failed to decode or verify (dropped)
    errors: int = 0         # backend failures and timeouts (answered as misses/no-ops)
    bytes_in: int = 0       # bytes written by put
    bytes_out: int = 0      # bytes returned by get

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        lookups = out["hits"] + out["misses"]
        out["hit_ratio"] = out["hits"] / lookups if lookups else None
        return out


def check_ttl(ttl_s: float | None, *, where: str) -> float | None:
    """``ttl_s`` as a float, ``None`` for no expiry; ConfigError for NaN or a negative."""
    if ttl_s is None:
        return None
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or math.isnan(ttl_s) or ttl_s < 0:
        raise ConfigError(f"{where}: ttl_s must be a number of seconds >= 0 or None, got {ttl_s!r}")
    return float(ttl_s)
