"""The in-process tier (L1): entries in a dict, bounded by bytes, evicted by a policy.

Owns the entries of this process, their byte accounting, per-entry TTLs (on a
monotonic clock) and the choice of eviction policy (``rayflow.cache.eviction``). An
entry holds either bytes (``put``/``get``: the CacheTier port) or a Python object
itself (``put_value``/``get_value``): an Arrow table, a read-only array or a Ray
ObjectRef already in memory is handed back as the very same object, with no copy
and no decode; its ``size_bytes`` is whatever the caller says it costs (for an
ObjectRef, the size of the object it pins in Ray's object store). The caller must
treat such a value as read-only: a hit returns the object that was put.

Expired entries are dropped when a lookup or a put meets them (a heap of expiry times,
so no scan and no background thread). Thread-safe (one lock). Must not do I/O,
decode, or import Ray.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from rayflow.cache.eviction import make_policy
from rayflow.cache.port import TierCounters, check_ttl
from rayflow.core.errors import ConfigError

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_POLICY = "adaptive"


class Slot(NamedTuple):
    """What ``lookup`` found: the stored item and whether it is bytes put by ``put``."""

    item: Any
    is_blob: bool


@dataclass(eq=False)
class _Entry:
    item: Any
    is_blob: bool
    size: int
    expires_at: float | None


class MemoryTier:
    """L1: bounded by ``max_bytes``; ``policy`` is "lru", "lfu" or "adaptive"."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, policy: str = DEFAULT_POLICY, *,
                 name: str = "memory", clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigError(f"memory cache tier: max_bytes must be a positive integer, got {max_bytes!r}")
        try:
            self._policy = make_policy(policy)
        except ValueError as exc:
            raise ConfigError(f"memory cache tier: {exc}") from None
        self.name = name
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._expiries: list[tuple[float, int, str, _Entry]] = []
        self._bytes = 0
        self._too_large = 0
        self._lock = threading.Lock()
        self.counters = TierCounters()

    # -- the port ----------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        slot = self.lookup(key, kind="blob")
        return None if slot is None else slot.item

    def put(self, key: str, blob: bytes, ttl_s: float | None = None, *, cost_s: float = 0.0) -> None:
        self._store(key, bytes(blob), True, len(blob), ttl_s, cost_s)
        self.counters.add(bytes_in=len(blob))

    def delete(self, key: str) -> None:
        with self._lock:
            if self._drop(key) is not None:
                self._policy.remove(key)
                self.counters.add(deletes=1)

    def clear(self, prefix: str | None = None) -> int:
        with self._lock:
            doomed = [k for k in self._entries if prefix is None or k.startswith(prefix)]
            for key in doomed:
                self._drop(key)
                self._policy.remove(key)
        self.counters.add(deletes=len(doomed))
        return len(doomed)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            own = {"tier": "memory", "policy": self._policy.name, "max_bytes": self.max_bytes,
                   "entries": len(self._entries), "bytes": self._bytes, "too_large": self._too_large}
        return {**self.counters.snapshot(), **own}

    def usage(self) -> dict[str, Any]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes}

    def close(self) -> None:
        self.clear()

    # -- objects, not bytes ------------------------------------------------------------

    def get_value(self, key: str) -> tuple[bool, Any]:
        """``(True, obj)`` for an entry put by ``put_value``, else ``(False, None)``."""
        slot = self.lookup(key, kind="value")
        return (False, None) if slot is None else (True, slot.item)

    def put_value(self, key: str, value: Any, *, size_bytes: int, ttl_s: float | None = None,
                  cost_s: float = 0.0) -> None:
        """Hold ``value`` itself, accounted as ``size_bytes`` against ``max_bytes``."""
        self._store(key, value, False, max(int(size_bytes), 0), ttl_s, cost_s)

    def lookup(self, key: str, kind: str = "any") -> Slot | None:
        """The entry under ``key`` if live and of ``kind`` ("blob", "value" or "any")."""
        with self._lock:
            self._expire(self._clock())
            entry = self._entries.get(key)
            if entry is None or (kind != "any" and entry.is_blob != (kind == "blob")):
                self.counters.add(misses=1)
                return None
            self._policy.touch(key)
        self.counters.add(hits=1, bytes_out=entry.size if entry.is_blob else 0)
        return Slot(entry.item, entry.is_blob)

    # -- internals (called with the lock held, except _store) --------------------------

    def _store(self, key: str, item: Any, is_blob: bool, size: int, ttl_s: float | None, cost_s: float) -> None:
        ttl = check_ttl(ttl_s, where=f"memory cache tier, key {key!r}")
        with self._lock:
            now = self._clock()
            self._expire(now)
            if self._drop(key) is not None:
                self._policy.remove(key)
            if ttl == 0:
                return
            if size > self.max_bytes:
                self._too_large += 1
                return
            self._make_room(size)
            entry = _Entry(item, is_blob, size, None if ttl is None else now + ttl)
            self._entries[key] = entry
            self._bytes += size
            self._policy.admit(key, size=size, cost_s=cost_s)
            if entry.expires_at is not None:
                heapq.heappush(self._expiries, (entry.expires_at, id(entry), key, entry))
                if len(self._expiries) > 2 * len(self._entries) + 64:   # drop replaced entries
                    self._expiries = [e for e in self._expiries if self._entries.get(e[2]) is e[3]]
                    heapq.heapify(self._expiries)
        self.counters.add(puts=1)

    def _make_room(self, size: int) -> None:
        evicted = 0
        while self._bytes + size > self.max_bytes and self._entries:
            self._drop(self._policy.pop_victim())
            evicted += 1
        if evicted:
            self.counters.add(evictions=evicted)

    def _expire(self, now: float) -> None:
        expired = 0
        while self._expiries and self._expiries[0][0] <= now:
            _, _, key, entry = heapq.heappop(self._expiries)
            if self._entries.get(key) is entry:
                self._drop(key)
                self._policy.remove(key)
                expired += 1
        if expired:
            self.counters.add(expired=expired)

    def _drop(self, key: str) -> _Entry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
        return entry
