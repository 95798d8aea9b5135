"""In-memory RunStore: the fake used by tests and by ``memory://``.

Owns a process-local, lock-guarded copy of runs, components and events. Every read
and write copies records, so callers can never mutate what is stored. Must not do
any I/O or persist anything; data lives only as long as the object.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import fields as dc_fields
from typing import Any

from rayflow.store.port import ComponentRecord, EventRecord, RunRecord

RUN_FIELDS = frozenset(f.name for f in dc_fields(RunRecord))


def check_run_fields(fields: dict[str, Any]) -> None:
    """Raise ValueError naming any key of ``fields`` that RunRecord cannot be updated with."""
    for name in fields:
        if name not in RUN_FIELDS or name == "run_id":
            allowed = ", ".join(sorted(RUN_FIELDS - {"run_id"}))
            raise ValueError(f"unknown run field {name!r} in update_run; expected one of: {allowed}")


class MemoryStore:
    """A RunStore kept in dicts. Thread-safe; returns copies."""

    url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunRecord] = {}
        self._components: dict[str, dict[str, ComponentRecord]] = {}
        self._events: dict[str, dict[int, EventRecord]] = {}
        self._cache: dict[str, tuple[bytes, float | None]] = {}

    def create_run(self, run: RunRecord, components: list[ComponentRecord]) -> None:
        with self._lock:
            self._runs[run.run_id] = copy.deepcopy(run)
            bucket = self._components.setdefault(run.run_id, {})
            for rec in components:
                bucket[rec.component_id] = copy.deepcopy(rec)
            self._events.setdefault(run.run_id, {})

    def update_run(self, run_id: str, **fields: Any) -> None:
        check_run_fields(fields)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return
            for name, value in fields.items():
                setattr(run, name, copy.deepcopy(value))

    def upsert_components(self, records: list[ComponentRecord]) -> None:
        with self._lock:
            for rec in records:
                bucket = self._components.setdefault(rec.run_id, {})
                bucket[rec.component_id] = copy.deepcopy(rec)

    def append_events(self, events: list[EventRecord]) -> None:
        with self._lock:
            for ev in events:
                bucket = self._events.setdefault(ev.run_id, {})
                if ev.seq not in bucket:
                    bucket[ev.seq] = copy.deepcopy(ev)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            run = self._runs.get(run_id)
            return copy.deepcopy(run) if run is not None else None

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        with self._lock:
            runs = [r for r in self._runs.values() if status is None or r.status == status]
            runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
            return [copy.deepcopy(r) for r in runs[: max(limit, 0)]]

    def get_components(self, run_id: str) -> list[ComponentRecord]:
        """The components of ``run_id`` in ascending component_id order."""
        with self._lock:
            bucket = self._components.get(run_id, {})
            return [copy.deepcopy(bucket[cid]) for cid in sorted(bucket)]

    def get_events(self, run_id: str, after_seq: int = 0, limit: int = 10_000) -> list[EventRecord]:
        """Events with ``seq > after_seq`` in ascending seq order, at most ``limit``."""
        with self._lock:
            bucket = self._events.get(run_id, {})
            seqs = sorted(s for s in bucket if s > after_seq)[: max(limit, 0)]
            return [copy.deepcopy(bucket[s]) for s in seqs]

    def request_cancel(self, run_id: str) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return False
            run.cancel_requested = True
            return True

    def claim_run(self, run_id: str, owner: str, now: float, stale_before: float) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.status == "SUCCEEDED":
                return False
            if run.heartbeat_at is not None and run.heartbeat_at >= stale_before:
                return False
            run.owner, run.heartbeat_at, run.status = owner, now, "RUNNING"
            return True

    def cancel_requested(self, run_id: str) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            return bool(run is not None and run.cancel_requested)

    # -- cache rows ----------------------------------------------------------------------

    def cache_get(self, key: str, now: float) -> bytes | None:
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                return None
            if found[1] is not None and found[1] <= now:
                del self._cache[key]
                return None
            return found[0]

    def cache_put(self, key: str, data: bytes, expires_at: float | None, now: float) -> None:
        with self._lock:
            self._cache[key] = (bytes(data), expires_at)

    def cache_delete(self, key: str) -> None:
        with self._lock:
            self._cache.pop(key, None)

    def cache_clear(self, prefix: str | None = None) -> int:
        with self._lock:
            gone = [k for k in self._cache if prefix is None or k.startswith(prefix)]
            for k in gone:
                del self._cache[k]
            return len(gone)

    def cache_usage(self) -> tuple[int, int]:
        with self._lock:
            return len(self._cache), sum(len(d) for d, _ in self._cache.values())

    def close(self) -> None:
        """Nothing to release; kept for the RunStore contract."""
