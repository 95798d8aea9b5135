"""MultiLevelCache: tiers in order (L1 memory, L2 Redis, L3 files), one lookup, one put.

Owns the walk across tiers and the safety rule on the way back:

- ``get(key)`` asks each tier top-down. The first entry that decodes is the answer;
  it is promoted into every tier above the one it came from. An entry that fails to
  decode or verify (``UntrustedData``: a bad signature, a malformed header, or any
  other decode error) is a miss, is deleted from that tier and counted as
  ``rejected``; its payload is never decoded, a pickle never loaded. Every entry is
  signed together with its cache key and header (``rayflow.cache.entry``), so one
  moved to another key, with a changed creation time or TTL, or a swapped payload, is
  such a miss; and one older than its signed ``ttl_s`` times the largest TTL scale is
  a miss (and deleted) whatever its tier's own expiry says.
- ``put(key, value, ttl_s=, cost_s=)`` encodes once (``rayflow.cache.entry``) and
  writes every tier. A memory tier holds an immutable value itself (Arrow tables and
  record batches, numpy arrays as read-only views, str/bytes/numbers and tuples of
  them) or whatever ``hold=`` gives (a Ray ObjectRef), so its hits copy nothing;
  anything else it holds as bytes and decodes on each hit (a fresh copy).
- TTLs: a tier keeps an entry ``ttl_s * scale`` seconds, ``scale`` per tier
  (``ttl_scales``; ``None``: the tier ignores TTLs). Defaults: memory 0.1 when a
  lower tier backs it, else 1; redis 1; files 1, so no tier serves a result older
  than its ``ttl_s`` unless a URL asks for more (``ttl_scale=10``). A promoted copy
  lives ``ttl_s * its scale`` at most, and never past the source tier's expiry.
- ``clear(component=None)``, ``stats()`` (per tier: hits, misses, ratio, bytes,
  evictions, errors, rejected, breaker state), ``usage()``, ``close()``.

Must not compute keys (``rayflow.plan.fingerprints``) nor know any tier's backend.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from rayflow.cache.entry import EntryMeta, pack, unpack
from rayflow.cache.memory import MemoryTier
from rayflow.cache.port import CacheTier, check_ttl
from rayflow.core.errors import CacheUnavailable, ConfigError
from rayflow.plan.fingerprints import component_prefix

log = logging.getLogger("rayflow.cache")

_NOTHING: Any = object()
_SCALARS = (str, bytes, int, float, complex, bool, type(None))


class CacheResult(NamedTuple):
    """``hit, value, tier = cache.get(key)``; ``tier`` is the name that answered."""

    hit: bool
    value: Any
    tier: str | None


def default_ttl_scale(tier: CacheTier, *, last: bool) -> float | None:
    return 1.0 if last or not isinstance(tier, MemoryTier) else 0.1


class MultiLevelCache:
    def __init__(self, tiers: Sequence[CacheTier], ttl_scales: Sequence[float | None] | None = None) -> None:
        self.tiers = list(tiers)
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ConfigError(f"cache tiers must have distinct names, got {names}")
        if ttl_scales is None:
            ttl_scales = [default_ttl_scale(t, last=i == len(tiers) - 1) for i, t in enumerate(self.tiers)]
        if len(ttl_scales) != len(self.tiers):
            raise ConfigError(f"cache: {len(ttl_scales)} ttl_scales for {len(self.tiers)} tiers")
        self.ttl_scales = list(ttl_scales)
        scales = [scale for scale in self.ttl_scales if scale is not None]
        self._max_scale = max(scales) if scales else None
        self._lock = threading.Lock()
        self._served = dict.fromkeys(names, 0)
        self._rejected = dict.fromkeys(names, 0)
        self._misses = 0
        self._unencodable = 0

    def __reduce__(self) -> Any:
        raise TypeError("MultiLevelCache holds connections and threads; open one per process from its URL")

    def __enter__(self) -> MultiLevelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lookups -----------------------------------------------------------------------

    def get(self, key: str) -> CacheResult:
        for level, tier in enumerate(self.tiers):
            found = self._read(tier, key, self.ttl_scales[level])
            if found is None:
                continue
            data, value, meta = found
            if data is not None:
                self._promote(key, level, data, value, meta)
            with self._lock:
                self._served[tier.name] += 1
            return CacheResult(True, value, tier.name)
        with self._lock:
            self._misses += 1
        return CacheResult(False, None, None)

    def _read(self, tier: CacheTier, key: str, scale: float | None) -> tuple[bytes | None, Any, EntryMeta | None] | None:
        """(bytes, value, meta) of a live entry, (None, value, None) for a held value."""
        if isinstance(tier, MemoryTier):
            slot = tier.lookup(key)
            if slot is None:
                return None
            if not slot.is_blob:
                return None, slot.item, None
            data = slot.item
        else:
            data = tier.get(key)
            if data is None:
                return None
        try:
            meta, value = unpack(data, key=key)
        except Exception as exc:       # a bad signature, a malformed or foreign entry
            tier.delete(key)
            with self._lock:
                self._rejected[tier.name] += 1
            log.warning("cache tier %r: entry %r rejected and deleted (%s: %s)", tier.name, key,
                        type(exc).__name__, exc)
            return None
        if _expired(meta, scale, self._max_scale):   # past its signed TTL, whatever the tier's own expiry says
            tier.delete(key)
            return None
        held = _held(value)       # an array comes back read-only: a memory tier may share it
        return data, value if held is _NOTHING else held, meta

    def _promote(self, key: str, level: int, data: bytes, value: Any, meta: EntryMeta) -> None:
        now = time.time()
        source_left = _left(meta, self.ttl_scales[level], now)
        for tier, scale in zip(self.tiers[:level], self.ttl_scales[:level], strict=True):
            ttl = _min_ttl(_scaled(meta.ttl_s, scale), source_left)
            if ttl is not None and ttl <= 0:
                continue
            self._write(tier, key, data, value, _NOTHING, ttl, meta.cost_s)

    # -- writes ------------------------------------------------------------------------

    def put(self, key: str, value: Any, *, ttl_s: float | None = None, cost_s: float = 0.0,
            hold: Any = _NOTHING) -> None:
        """Store ``value`` in every tier. ``cost_s``: what computing it cost (the adaptive
        policy keeps expensive results longer). ``hold``: what a memory tier keeps
        instead of ``value`` (e.g. the ObjectRef it came back as); lower tiers still get
        ``value`` encoded. A value that cannot be encoded goes to memory tiers only."""
        ttl = check_ttl(ttl_s, where=f"cache put of {key!r}")
        data = None
        if not self.tiers:
            return
        if any(not isinstance(t, MemoryTier) for t in self.tiers) or (hold is _NOTHING and _held(value) is _NOTHING):
            data = self._encode(key, value, EntryMeta(time.time(), ttl, float(cost_s)))
        for tier, scale in zip(self.tiers, self.ttl_scales, strict=True):
            self._write(tier, key, data, value, hold, _scaled(ttl, scale), cost_s)

    def put_value(self, key: str, value: Any, *, size_bytes: int, ttl_s: float | None = None,
                  cost_s: float = 0.0) -> None:
        """Memory tiers only: hold ``value`` (e.g. a Ray ObjectRef) as it is, accounted as
        ``size_bytes``. Lower tiers are left alone."""
        ttl = check_ttl(ttl_s, where=f"cache put of {key!r}")
        for tier, scale in zip(self.tiers, self.ttl_scales, strict=True):
            if isinstance(tier, MemoryTier):
                tier.put_value(key, value, size_bytes=size_bytes, ttl_s=_scaled(ttl, scale), cost_s=cost_s)

    def _write(self, tier: CacheTier, key: str, data: bytes | None, value: Any, hold: Any,
               ttl: float | None, cost_s: float) -> None:
        if isinstance(tier, MemoryTier):
            held = hold if hold is not _NOTHING else _held(value)
            if held is not _NOTHING:
                size = len(data) if data is not None else _size_of(value)
                tier.put_value(key, held, size_bytes=size, ttl_s=ttl, cost_s=cost_s)
                return
        if data is not None:
            tier.put(key, data, ttl, cost_s=cost_s)

    def _encode(self, key: str, value: Any, meta: EntryMeta) -> bytes | None:
        try:
            return pack(value, meta, key=key)
        except Exception as exc:
            with self._lock:
                self._unencodable += 1
            log.warning("cache: result for %r not stored beyond memory: a %s cannot be encoded (%s: %s)",
                        key, type(value).__name__, type(exc).__name__, exc)
            return None

    def delete(self, key: str) -> None:
        for tier in self.tiers:
            tier.delete(key)

    def clear(self, component: str | None = None) -> dict[str, int]:
        """Drop every entry (of ``component`` only, when given) from every tier: tier name ->
        entries dropped. CacheUnavailable, after clearing the others, when a tier fails."""
        prefix = None if component is None else component_prefix(component)
        dropped: dict[str, int] = {}
        failed: list[str] = []
        for tier in self.tiers:
            try:
                dropped[tier.name] = tier.clear(prefix)
            except CacheUnavailable as exc:
                failed.append(str(exc))
        if failed:
            done = ", ".join(f"{name}: {n}" for name, n in dropped.items()) or "none"
            raise CacheUnavailable(f"{'; '.join(failed)} (cleared elsewhere: {done})")
        return dropped

    # -- reporting ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            served, rejected = dict(self._served), dict(self._rejected)
            misses, unencodable = self._misses, self._unencodable
        hits = sum(served.values())
        tiers = {}
        for tier, scale in zip(self.tiers, self.ttl_scales, strict=True):
            own = tier.stats()
            own.update(served=served[tier.name], ttl_scale=scale,
                       rejected=own.get("rejected", 0) + rejected[tier.name])
            tiers[tier.name] = own
        return {"hits": hits, "misses": misses, "hit_ratio": hits / (hits + misses) if hits + misses else None,
                "unencodable": unencodable, "tiers": tiers}

    def usage(self) -> dict[str, dict[str, Any]]:
        return {tier.name: tier.usage() for tier in self.tiers}

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()


def _scaled(ttl_s: float | None, scale: float | None) -> float | None:
    return None if ttl_s is None or scale is None else ttl_s * scale


def _expired(meta: EntryMeta, scale: float | None, max_scale: float | None) -> bool:
    """Whether an entry is older than its signed ``ttl_s`` times the largest TTL scale of
    the cache (a promoted copy never outlives its source, so no copy lives longer than
    that). A tier that ignores TTLs (scale None) keeps its entries."""
    if meta.ttl_s is None or scale is None or max_scale is None:
        return False
    return meta.created + meta.ttl_s * max_scale < time.time()


def _left(meta: EntryMeta, scale: float | None, now: float) -> float | None:
    """Seconds the source tier's copy has left at most (None: it does not expire)."""
    ttl = _scaled(meta.ttl_s, scale)
    return None if ttl is None else meta.created + ttl - now


def _min_ttl(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _held(value: Any, depth: int = 0) -> Any:
    """What a memory tier may hold for ``value`` without copying it (``_NOTHING``: it
    must hold bytes, since the value could be changed in place after the put)."""
    if isinstance(value, (pa.Table, pa.RecordBatch)) or type(value) in _SCALARS:
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        view = value.view()
        view.flags.writeable = False
        return view
    if type(value) in (tuple, frozenset) and depth < 4:
        return value if all(_held(v, depth + 1) is v for v in value) else _NOTHING
    return _NOTHING


def _size_of(value: Any) -> int:
    if isinstance(value, (pa.Table, pa.RecordBatch)):
        return value.nbytes
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, frozenset)):
        return sys.getsizeof(value) + sum(_size_of(v) for v in value)
    return sys.getsizeof(value)
