"""In-memory RunStore: the fake used by tests and by ``memory://``.

Owns a process-local, lock-guarded copy of runs, components and events, and of the
server's records (tokens, idempotency keys, workflows, live servers). Every read
and write copies records, so callers can never mutate what is stored. Must not do
any I/O or persist anything; data lives only as long as the object.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import threading
import time
from dataclasses import fields as dc_fields
from typing import Any

from rayflow.core.errors import RunExists
from rayflow.core.states import TERMINAL_RUN_STATES
from rayflow.store.port import (
    ComponentRecord,
    EventRecord,
    Lease,
    RunRecord,
    ServerRecord,
    TokenRecord,
    WorkflowRecord,
)

RUN_FIELDS = frozenset(f.name for f in dc_fields(RunRecord))


def check_run_fields(fields: dict[str, Any]) -> None:
    """Raise ValueError naming any key of ``fields`` that RunRecord cannot be updated with."""
    for name in fields:
        if name not in RUN_FIELDS or name == "run_id":
            allowed = ", ".join(sorted(RUN_FIELDS - {"run_id"}))
            raise ValueError(f"unknown run field {name!r} in update_run; expected one of: {allowed}")


CLAIMABLE_STATES = ("PENDING", "RUNNING")
MAIN_PREFIX = "__main__:"   # a target only the process that defined it can import


def replannable(run: RunRecord) -> bool:
    """Whether any process can plan ``run`` again: from its spec, or an importable target."""
    return bool(run.spec) or bool(run.target and not run.target.startswith(MAIN_PREFIX))


class MemoryStore:
    """A RunStore kept in dicts. Thread-safe; returns copies."""

    url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.RLock()   # reentrant: a fenced write_batch holds it across its writes
        self._runs: dict[str, RunRecord] = {}
        self._components: dict[str, dict[str, ComponentRecord]] = {}
        self._events: dict[str, dict[int, EventRecord]] = {}
        self._cache: dict[str, tuple[bytes, float | None]] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._requests: dict[str, tuple[str, str, float]] = {}   # key -> (run_id, body_hash, at)
        self._workflows: dict[str, WorkflowRecord] = {}
        self._servers: dict[str, ServerRecord] = {}
        self._models: dict[str, tuple[bytes, float]] = {}   # name -> (blob, saved_at)

    def create_run(self, run: RunRecord, components: list[ComponentRecord]) -> None:
        """Insert ``run`` and its components; RunExists (nothing changed) when the id is taken."""
        with self._lock:
            if run.run_id in self._runs:
                raise RunExists(f"run {run.run_id} already exists", run_id=run.run_id)
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

    def cancel_requested(self, run_id: str) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            return bool(run is not None and run.cancel_requested)

    # -- leases (fenced) -----------------------------------------------------------------

    def db_now(self) -> float:
        return time.time()

    def insert_run(self, run: RunRecord) -> bool:
        with self._lock:
            if run.run_id in self._runs:
                return False
            self._runs[run.run_id] = copy.deepcopy(run)
            self._components.setdefault(run.run_id, {})
            self._events.setdefault(run.run_id, {})
            return True

    def _take(self, run: RunRecord, owner: str, now: float) -> Lease:
        run.owner, run.heartbeat_at, run.status = owner, now, "RUNNING"
        run.lease_epoch += 1
        return Lease(run.run_id, owner, run.lease_epoch)

    def claim_run(self, run_id: str, owner: str, lease_s: float, *, force: bool = False) -> Lease | None:
        with self._lock:
            now = self.db_now()
            run = self._runs.get(run_id)
            if run is None or run.status == "SUCCEEDED":
                return None
            if not force and run.heartbeat_at is not None and run.heartbeat_at >= now - lease_s:
                return None
            return self._take(run, owner, now)

    def claim_next(self, owner: str, lease_s: float, limit: int) -> list[Lease]:
        with self._lock:
            now = self.db_now()
            free = [r for r in self._runs.values()
                    if r.status in CLAIMABLE_STATES and replannable(r)
                    and (r.heartbeat_at is None or r.heartbeat_at < now - lease_s)]
            free.sort(key=lambda r: (r.created_at, r.run_id))
            return [self._take(r, owner, now) for r in free[: max(limit, 0)]]

    def _holds(self, lease: Lease) -> RunRecord | None:
        run = self._runs.get(lease.run_id)
        if run is None or run.owner != lease.owner or run.lease_epoch != lease.epoch:
            return None
        return run

    def renew_lease(self, lease: Lease) -> bool:
        with self._lock:
            run = self._holds(lease)
            if run is None or run.heartbeat_at is None:   # never revives a lease the run's end released
                return False
            run.heartbeat_at = self.db_now()
            return True

    def release_lease(self, lease: Lease, *, status: str | None = None) -> bool:
        with self._lock:
            run = self._holds(lease)
            if run is None:
                return False
            run.owner, run.heartbeat_at = "", None
            if status is not None:
                run.status = status
            return True

    def write_batch(self, components: list[ComponentRecord], events: list[EventRecord],
                    runs: dict[str, dict[str, Any]], fences: dict[str, int] | None = None) -> set[str]:
        """Components, events, then run updates, through ``upsert_components``,
        ``append_events`` and ``update_run`` (a subclass that records those sees a cycle's
        writes); a fenced run's records only while its epoch is the fence, the check and
        the writes under the store's lock (see RunStore.write_batch)."""
        for fields in runs.values():
            check_run_fields(fields)
        fences = fences or {}
        with self._lock if fences else contextlib.nullcontext():   # reentrant: the writes take it again
            now = self.db_now()
            dropped = {run_id for run_id, epoch in fences.items()
                       if run_id not in self._runs or self._runs[run_id].lease_epoch != epoch}
            kept = [c for c in components if c.run_id not in dropped]
            if kept:
                self.upsert_components(kept)
            sent = [e for e in events if e.run_id not in dropped]
            if sent:
                self.append_events(sent)
            for run_id, fields in runs.items():
                if run_id in dropped:
                    continue
                if run_id in fences and fields.get("heartbeat_at") is not None:
                    fields = {**fields, "heartbeat_at": now}
                self.update_run(run_id, **fields)
            return dropped

    # -- the server's records -------------------------------------------------------------

    def list_runs_page(self, *, status: str | None = None, name: str | None = None, limit: int = 100,
                       before: tuple[float, str] | None = None, since: float | None = None) -> list[RunRecord]:
        with self._lock:
            runs = [r for r in self._runs.values()
                    if (status is None or r.status == status) and _kept(r, name, since)
                    and (before is None or (r.created_at, r.run_id) < tuple(before))]
            runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
            return [copy.deepcopy(r) for r in runs[: max(limit, 0)]]

    def count_runs(self, *, name: str | None = None, since: float | None = None) -> dict[str, int]:
        with self._lock:
            return dict(collections.Counter(r.status for r in self._runs.values() if _kept(r, name, since)))

    def create_token(self, token: TokenRecord) -> None:
        with self._lock:
            if token.token_id in self._tokens:
                raise ValueError(f"token {token.token_id!r} exists")
            self._tokens[token.token_id] = copy.deepcopy(token)

    def get_token(self, token_hash: str) -> TokenRecord | None:
        with self._lock:
            found = next((t for t in self._tokens.values() if t.token_hash == token_hash), None)
            return copy.deepcopy(found)

    def list_tokens(self) -> list[TokenRecord]:
        with self._lock:
            tokens = sorted(self._tokens.values(), key=lambda t: (t.created_at, t.token_id), reverse=True)
            return copy.deepcopy(tokens)

    def revoke_token(self, token_id: str, now: float) -> bool:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or token.revoked_at is not None:
                return False
            token.revoked_at = now
            return True

    def delete_runs(self, run_ids: list[str]) -> int:
        with self._lock:
            gone = {r for r in run_ids if r in self._runs and self._runs[r].status in TERMINAL_RUN_STATES}
            for run_id in gone:
                del self._runs[run_id]
                self._components.pop(run_id, None)
                self._events.pop(run_id, None)
            for key in [k for k, (run_id, _, _) in self._requests.items() if run_id in gone]:
                del self._requests[key]
            return len(gone)

    def insert_run_once(self, run: RunRecord, key: str, body_hash: str, now: float) -> tuple[str, str, bool]:
        with self._lock:
            kept = self._requests.get(key)
            if kept is not None:
                return kept[0], kept[1], False
            self._requests[key] = (run.run_id, body_hash, now)
            return run.run_id, body_hash, self.insert_run(run)

    def put_workflow(self, workflow: WorkflowRecord) -> None:
        with self._lock:
            rec = copy.deepcopy(workflow)
            old = self._workflows.get(rec.name)
            if old is not None:
                rec.created_at = old.created_at
            self._workflows[rec.name] = rec

    def get_workflow(self, name: str) -> WorkflowRecord | None:
        with self._lock:
            return copy.deepcopy(self._workflows.get(name))

    def list_workflows(self) -> list[WorkflowRecord]:
        with self._lock:
            return [copy.deepcopy(self._workflows[n]) for n in sorted(self._workflows)]

    def beat_server(self, server: ServerRecord) -> float:
        with self._lock:
            rec = copy.deepcopy(server)
            rec.heartbeat_at = now = self.db_now()
            self._servers[rec.server_id] = rec
            return now

    def list_servers(self) -> list[ServerRecord]:
        with self._lock:
            return [copy.deepcopy(self._servers[k]) for k in sorted(self._servers)]

    def remove_server(self, server_id: str) -> None:
        with self._lock:
            self._servers.pop(server_id, None)

    # -- learned models ------------------------------------------------------------------

    def save_model(self, name: str, blob: bytes) -> None:
        with self._lock:
            before = self._models.get(name)
            now = self.db_now() if before is None else max(self.db_now(), before[1] + 1e-6)
            self._models[name] = (bytes(blob), now)

    def load_model(self, name: str) -> tuple[bytes, float] | None:
        with self._lock:
            return self._models.get(name)

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


def _kept(run: RunRecord, name: str | None, since: float | None) -> bool:
    return (name is None or run.name == name) and (since is None or run.created_at >= since)
