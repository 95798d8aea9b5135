"""The response cache of finished runs: ``GET /v1/runs/{id}`` of a final run, kept as bytes.

A finished run changes again only when it is resumed or retried; polling clients and
dashboards ask for the same finished runs over and over, and each answer costs two store
reads and a JSON encoding. This keeps the encoded answer of a final run for ``ttl_s``
(1 s: what another process's view of a run may lag anyway) and forgets it at once when
this server cancels, resumes or retries the run; a run changed through another server
shows within ``ttl_s``. Bounded (least recently stored dropped first). Live runs are never
cached. Must not decide what a response holds (the route does).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

TTL_S = 1.0
MAX_ENTRIES = 10_000


VARIANTS = ("full", "summary")   # the answers of GET /v1/runs/{id}: metrics with or without each component


class FinalRuns:
    """(run_id, variant) -> (expiry, encoded response) for runs in a final state."""

    def __init__(self, *, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, run_id: str, variant: str = "full") -> bytes | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get((run_id, variant))
            if entry is None or entry[0] < now:
                self.misses += 1
                return None
            self.hits += 1
            return entry[1]

    def put(self, run_id: str, body: bytes, variant: str = "full") -> None:
        with self._lock:
            self._entries.pop((run_id, variant), None)
            self._entries[(run_id, variant)] = (time.monotonic() + self.ttl_s, body)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, run_id: str) -> None:
        with self._lock:
            for variant in VARIANTS:
                self._entries.pop((run_id, variant), None)
