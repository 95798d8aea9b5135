"""The cache as a run uses it: look a component up before it is submitted, keep its
result after it succeeds.

Owns the mapping between a run's components (their cache keys, policies and the
metadata a call hands back) and ``MultiLevelCache``. The driver never pulls a result
to cache it: an output of at most 64 KiB comes back with the call's metadata (as a
codec blob, the same bytes a checkpoint keeps) and is decoded here; the memory tier
holds the output's object reference, so a later hit in this process copies nothing.
A larger output is held by the memory tier as its object reference, and written to the
shared tiers (Redis, files, the store) by a task on the cluster that reads it from the
object store (``CacheSink``), so it never passes through the driver either. Lookups and
writes never fail a run: a tier that is down answers misses. Must not import ray.
"""

from __future__ import annotations

import logging
from typing import Any

from rayflow.cache.tiers import MultiLevelCache
from rayflow.data import codec

log = logging.getLogger("rayflow.cache")
LARGE_OUTPUT_BYTES = 64 * 1024   # what a larger output counts as in the memory tier's byte bound


class CacheSink:
    """Writes one large output to the shared tiers, where the output is (picklable: it
    travels to a task on the cluster, which opens the tiers from their URLs)."""

    def __init__(self, urls: list[str], key: str, ttl_s: float | None, cost_s: float) -> None:
        self.urls, self.key, self.ttl_s, self.cost_s = urls, key, ttl_s, cost_s

    def save(self, component_id: str, value: Any) -> None:
        from rayflow.cache.urls import open_cache

        cache = open_cache(self.urls)
        try:
            cache.put(self.key, value, ttl_s=self.ttl_s, cost_s=self.cost_s)
        finally:
            cache.close()


class RunCache:
    """``lookup`` before submitting a task with a cache key; ``keep`` after it succeeds.
    ``shared_urls``: the tiers other processes see (not in-process memory), which large
    outputs are written to by a ``CacheSink``."""

    def __init__(self, cache: MultiLevelCache, shared_urls: list[str] | None = None) -> None:
        self.cache = cache
        self.shared_urls = list(shared_urls or [])
        self.hits: dict[str, int] = {}   # tier name -> hits in this run
        self.misses = 0
        self.kept = 0
        self._found: dict[str, Any] = {}   # cache key -> what ``holds_all`` found (its lookup's answer)
        self.complete = False              # ``holds_all`` found every output: nothing of the run runs

    def counts(self) -> dict[str, Any]:
        """This run's lookups: what the run summary keeps (``rayflow cache stats`` sums them)."""
        hits = sum(self.hits.values())
        total = hits + self.misses
        return {"hits": hits, "misses": self.misses, "hit_ratio": hits / total if total else None,
                "hits_by_tier": dict(self.hits), "kept": self.kept}

    def holds_all(self, tasks: Any) -> bool:
        """Whether the cache holds the output of every one of ``tasks`` (each with a cache
        key; the answer is also ``complete``), looked up now and kept: their ``lookup``
        answers with what was found here, so a run planned on this answer runs none of
        them. Stops at the first miss."""
        for task in tasks:
            try:
                found = self.cache.get(task.cache_key)
            except Exception as exc:  # noqa: BLE001 - a broken tier is a miss
                log.warning("cache lookup of %r failed (treated as a miss): %s", task.id, exc)
                return False
            if not found.hit:
                return False
            self._found[task.cache_key] = found
        self.complete = True
        return True

    def lookup(self, task: Any) -> tuple[bool, Any]:
        found = self._found.pop(task.cache_key, None)
        try:
            found = found or self.cache.get(task.cache_key)
        except Exception as exc:  # noqa: BLE001 - a broken tier is a miss, never a failed run
            log.warning("cache lookup of %r failed (treated as a miss): %s", task.id, exc)
            found = None
        if found is None or not found.hit:
            self.misses += 1
            return False, None
        self.hits[found.tier or "?"] = self.hits.get(found.tier or "?", 0) + 1
        return True, found.value

    def keep(self, task: Any, meta: dict[str, Any], handle: Any) -> CacheSink | None:
        """Keep the result; for a large one, also the sink to run where it is (or None)."""
        policy = task.options.cache
        cost = max(0.0, (meta.get("ended_at") or 0.0) - (meta.get("started_at") or 0.0))
        blob = meta.get("checkpoint")
        try:
            if blob:
                self.cache.put(task.cache_key, codec.unblob(blob), ttl_s=policy.ttl_s, cost_s=cost, hold=handle)
            elif handle is not None:
                self.cache.put_value(task.cache_key, handle, size_bytes=LARGE_OUTPUT_BYTES,
                                     ttl_s=policy.ttl_s, cost_s=cost)
                self.kept += 1
                return CacheSink(self.shared_urls, task.cache_key, policy.ttl_s, cost) if self.shared_urls else None
            else:
                return None
            self.kept += 1
        except Exception as exc:  # noqa: BLE001 - not cached; the run goes on
            log.warning("result of %r was not cached: %s", task.id, exc)
        return None
