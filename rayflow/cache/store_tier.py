"""The run-store tier (L3): cache entries as rows of the run store's ``cache_entries`` table.

Owns the CacheTier over any run store that keeps cache rows (SQLite, PostgreSQL, the
memory fake: ``rayflow.store.port.CacheRows``), so one database holds a team's history
and its shared results. Entries are the bytes ``MultiLevelCache`` hands over, with an
expiry; an expired row is a miss and is deleted when read. Calls never raise for an
outage (a miss or a dropped write, counted in ``errors``), except ``clear``. Must not
decode what it stores, nor know SQL (the store adapters own their schema).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rayflow.cache.port import TierCounters, check_ttl
from rayflow.core.errors import CacheUnavailable

log = logging.getLogger("rayflow.cache")


class StoreTier:
    """L3 in a run store. ``store``: a RunStore that also implements ``CacheRows``."""

    def __init__(self, store: Any, *, name: str | None = None) -> None:
        self.store = store
        self.name = name or store.url.split("://", 1)[0]
        self.counters = TierCounters()
        self._warned = False

    def get(self, key: str) -> bytes | None:
        try:
            data = self.store.cache_get(key, time.time())
        except Exception as exc:  # noqa: BLE001 - an outage is a miss
            self._failed("read", exc)
            return None
        if data is None:
            self.counters.add(misses=1)
            return None
        self.counters.add(hits=1, bytes_out=len(data))
        return bytes(data)

    def put(self, key: str, blob: bytes, ttl_s: float | None = None, *, cost_s: float = 0.0) -> None:
        ttl = check_ttl(ttl_s, where=f"cache tier {self.name!r}")
        now = time.time()
        try:
            self.store.cache_put(key, bytes(blob), None if ttl is None else now + ttl, now)
        except Exception as exc:  # noqa: BLE001 - a dropped write
            self._failed("write", exc)
            return
        self.counters.add(puts=1, bytes_in=len(blob))

    def delete(self, key: str) -> None:
        try:
            self.store.cache_delete(key)
            self.counters.add(deletes=1)
        except Exception as exc:  # noqa: BLE001
            self._failed("delete", exc)

    def clear(self, prefix: str | None = None) -> int:
        try:
            return int(self.store.cache_clear(prefix))
        except Exception as exc:  # noqa: BLE001 - a user asked: say it failed
            raise CacheUnavailable(f"cache tier {self.name!r} ({self.store.url}) could not be cleared: "
                                   f"{type(exc).__name__}: {exc}") from None

    def stats(self) -> dict[str, Any]:
        return {**self.counters.snapshot(), "tier": self.name, "url": self.store.url}

    def usage(self) -> dict[str, Any]:
        try:
            entries, size = self.store.cache_usage()
        except Exception:  # noqa: BLE001
            return {"entries": None, "bytes": None}
        return {"entries": entries, "bytes": size}

    def close(self) -> None:
        self.store.close()

    def _failed(self, what: str, exc: Exception) -> None:
        self.counters.add(errors=1)
        if not self._warned:
            self._warned = True
            log.warning("cache tier %r (%s): %s failed, answering misses: %s: %s", self.name, self.store.url,
                        what, type(exc).__name__, exc)
