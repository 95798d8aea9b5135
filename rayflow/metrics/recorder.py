"""The run recorder: turns RunState transitions into store records, off the hot path.

Owns the mapping NodeStatus -> ComponentRecord (timings, queue wait, attempts, node,
used CPU and peak memory), the event log (run states and each component's final state),
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


class RunRecorder:
    """Records one run. ``on_change`` is the control loop's hook."""

    def __init__(self, run: RunRecord, plan: Plan, writer: StoreWriter) -> None:
        self.run = run
        self.plan = plan
        self._writer = writer
        self._seq = 0
        self._lock = threading.Lock()
        self._records: dict[str, ComponentRecord] = {
            cid: ComponentRecord(run.run_id, cid, resources=task.options.describe(), upstream=list(task.deps))
            for cid, task in plan.tasks.items()
        }
        self._counts: dict[str, int] = {"PENDING": len(plan.tasks)}

    def initial_records(self) -> list[ComponentRecord]:
        return [_clone(r) for r in self._records.values()]

    def on_change(self, state: RunState, changed: list[str]) -> None:
        now = time.time()
        records, events = [], []
        with self._lock:
            for cid in changed:
                rec = self._update(state, cid)
                records.append(_clone(rec))
                if rec.state in FINAL_STATES:  # the event log keeps each component's outcome
                    self._seq += 1
                    events.append(EventRecord(self.run.run_id, self._seq, now, "component_state", cid,
                                              {"state": rec.state, "attempts": rec.attempts}))
            self._writer.records(records, events)

    def run_event(self, status: str, **data: Any) -> None:
        with self._lock:
            self._seq += 1
            self._writer.event(EventRecord(self.run.run_id, self._seq, time.time(), "run_state", None,
                                           {"state": status, **data}))

    def _update(self, state: RunState, cid: str) -> ComponentRecord:
        status = state.nodes[cid]
        rec = self._records[cid]
        if rec.state != status.state:
            self._counts[rec.state] = self._counts.get(rec.state, 1) - 1
            self._counts[status.state] = self._counts.get(status.state, 0) + 1
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
        with self._lock:
            return [_clone(r) for r in self._records.values()]
