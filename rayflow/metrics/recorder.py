"""The run recorder: turns RunState transitions into store records, off the hot path.

Owns the mapping NodeStatus -> ComponentRecord (timings, queue wait, attempts, node,
used CPU and peak memory), the event log (run states and each notable component outcome),
and live counts for progress. Writes go through a StoreWriter, so
the control loop never waits on the database. Must not import ray.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rayflow.execute.state import TERMINAL as FINAL_STATES
from rayflow.execute.state import RunState
from rayflow.plan import Plan
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord
from rayflow.store.writer import StoreWriter


def _clone(rec: ComponentRecord) -> ComponentRecord:
    """A shallow copy, several times cheaper than copy.copy for a dataclass (a hot path)."""
    new = object.__new__(ComponentRecord)
    new.__dict__.update(rec.__dict__)
    return new


# The event log keeps run state changes and every component outcome a user would look
# for (a failure, timeout, cancellation, skip, cache hit, or success after a retry); a
# plain first-try success is already told by the component's row.
NOTABLE_STATES = FINAL_STATES - {"SUCCEEDED"}


class RunRecorder:
    """Records one run. ``on_change`` is the control loop's hook; the store writer drains
    the changed components when its next write is due (``drain``), so the loop only marks
    them: a component that changes several times between writes is written once."""

    def __init__(self, run: RunRecord, plan: Plan, writer: StoreWriter) -> None:
        self.run = run
        self.plan = plan
        self.source_key = run.run_id
        self._writer = writer
        self._seq = 0
        self._lock = threading.Lock()
        self._state: RunState | None = None
        described: dict[int, dict[str, Any]] = {}   # one dict per distinct options (shared, never mutated)
        self._records: dict[str, ComponentRecord] = {}
        for cid, task in plan.tasks.items():
            resources = described.get(id(task.options))
            if resources is None:
                resources = described[id(task.options)] = task.options.describe()
            self._records[cid] = ComponentRecord(run.run_id, cid, resources=resources, upstream=list(task.deps))
        self._last = dict.fromkeys(self._records, "PENDING")   # state last counted, per component
        self._counts: dict[str, int] = {"PENDING": len(plan.tasks)}
        self._dirty: set[str] = set(self._records)   # every row is written once, PENDING or later
        self._stale: set[str] = set()                # records behind their component's state

    def start(self) -> None:
        """Queue the first write of every component's row."""
        self._writer.changed(self)

    def on_change(self, state: RunState, changed: list[str]) -> None:
        events = []
        with self._lock:
            self._state = state
            self._dirty.update(changed)
            self._stale.update(changed)
            nodes, last, counts = state.nodes, self._last, self._counts
            for cid in changed:
                status = nodes[cid]
                new, old = status.state, last[cid]
                if new == old:
                    continue
                last[cid] = new
                counts[old] -= 1
                counts[new] = counts.get(new, 0) + 1
                if new in NOTABLE_STATES or (new == "SUCCEEDED" and status.attempts > 1):
                    self._seq += 1
                    events.append(EventRecord(self.run.run_id, self._seq, time.time(), "component_state", cid,
                                              {"state": new, "attempts": status.attempts}))
            if events:
                self._writer.records([], events)
        self._writer.changed(self)

    def drain(self) -> list[ComponentRecord]:
        """The rows changed since the last drain, as of now (called by the writer thread)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            self._refresh(dirty)
            return [_clone(self._records[cid]) for cid in dirty]

    def run_event(self, status: str, **data: Any) -> None:
        with self._lock:
            self._seq += 1
            self._writer.event(EventRecord(self.run.run_id, self._seq, time.time(), "run_state", None,
                                           {"state": status, **data}))

    def _update(self, state: RunState, cid: str) -> ComponentRecord:
        status = state.nodes[cid]
        rec = self._records[cid]
        rec.state = status.state
        rec.attempts = status.attempts
        rec.submitted_at = status.submitted_at
        rec.started_at = status.started_at
        rec.ended_at = status.ended_at
        rec.node_id = status.node_id
        rec.worker_id = status.worker_id
        rec.error = status.error
        rec.cached = status.cached
        rec.cpu_s = status.cpu_s
        rec.peak_rss_bytes = status.peak_rss_bytes
        if status.started_at is not None and status.ended_at is not None:
            rec.duration_s = max(0.0, status.ended_at - status.started_at)
        if status.started_at is not None:
            rec.queued_s = self._queued(state, cid, status.started_at)
        return rec

    def _queued(self, state: RunState, cid: str, started: float) -> float:
        """From ready (submitted, and every upstream ended) to started."""
        ready = state.nodes[cid].submitted_at or started
        for dep in self.plan.dag.deps(cid):
            ended = state.nodes[dep].ended_at
            if ended is not None and ended > ready:
                ready = ended
        return max(0.0, started - ready)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in self._counts.items() if v}

    def records(self) -> list[ComponentRecord]:
        """Every component's record as of now."""
        with self._lock:
            self._refresh(self._stale)
            return [_clone(r) for r in self._records.values()]

    def _refresh(self, ids: set[str]) -> None:
        """Bring the records of ``ids`` up to their components' state (under the lock)."""
        if self._state is None:
            return
        todo = self._stale.intersection(ids)
        for cid in todo:
            self._update(self._state, cid)
        self._stale -= todo
