"""The run recorder: turns RunState transitions into store records, off the hot path.

Owns the mapping NodeStatus -> ComponentRecord (timings, queue wait, attempts, node,
used CPU and peak memory), the event log (run states and each notable component outcome),
and live counts for progress. Writes go through a StoreWriter, so
the control loop never waits on the database. Must not import ray.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from rayflow.core.states import FINAL_COMPONENT_STATES as FINAL_STATES
from rayflow.core.states import OWN_FAILURE_STATES, shown_state
from rayflow.execute.state import RunState
from rayflow.plan import Plan
from rayflow.predict.features import function_features, numeric_config
from rayflow.store.checkpoints import CheckpointStore
from rayflow.store.logs import AttemptLog, LogStore
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord
from rayflow.store.writer import StoreWriter

log = logging.getLogger("rayflow")

# The event log keeps run state changes and every component outcome a user would look
# for (a failure, timeout, cancellation, skip, cache hit, or success after a retry); a
# plain first-try success is already told by the component's row.
NOTABLE_STATES = FINAL_STATES - {"SUCCEEDED"}


_TROUBLE = ("retries", "failures", "breaker_opened")


def connector_trouble(outcome: dict[str, Any] | None) -> dict[str, Any] | None:
    """A connector component's call that retried, failed requests or opened a circuit, as an
    event's data (its figures and each host's breaker state); None for a quiet call."""
    figures = outcome.get("connector") if isinstance(outcome, dict) else None
    if not isinstance(figures, dict):
        return None
    data: dict[str, Any] = {}
    for kind, section in figures.items():
        if not isinstance(section, dict):
            continue
        counts = {k: section[k] for k in _TROUBLE if isinstance(section.get(k), (int, float)) and section[k] > 0}
        if counts:
            data[kind] = {**counts, **({"breaker": section["breaker"]} if "breaker" in section else {})}
    return data or None


class RunRecorder:
    """Records one run. ``on_change`` is the control loop's hook; the store writer drains
    the changed components when its next write is due (``drain``), so the loop only marks
    them: a component that changes several times between writes is written once.

    Records are made when they are asked for, from the run state (the state is the one
    copy of what is known): a live component has no second object kept alive, which also
    keeps Python's cyclic collector from walking them. A component's record in a final
    state is kept once made, until the state tells of a change again or the run settles:
    the row the writer writes and the run's metrics at its end share it (for 10,000 fused
    members, building every record twice cost a tenth of the run).
    """

    def __init__(self, run: RunRecord, plan: Plan, writer: StoreWriter, *,
                 checkpoints: CheckpointStore | None = None, first_seq: int = 0,
                 logs: LogStore | None = None) -> None:
        self.run = run
        self.plan = plan
        self.source_key = run.run_id
        self._writer = writer
        self._checkpoints = checkpoints   # small outputs are saved here when rows are written
        self._logs = logs                 # ... and small logs here
        self._seq = first_seq             # a resumed run's events follow the earlier ones
        self._lock = threading.Lock()
        self._state: RunState | None = None
        self._described: dict[int, dict[str, Any]] = {}   # one dict per distinct options (shared, never mutated)
        self._function: dict[int, dict[str, str]] = {}    # per function: its name and code fingerprint
        self._upstream: dict[str, list[str]] = {}         # per component, one list (shared, never mutated):
                                                          # the store encodes it once, by identity
        self._last = dict.fromkeys(plan.tasks, "PENDING")   # state last counted, per component
        self._counts: dict[str, int] = {"PENDING": len(plan.tasks)}
        self._dirty: set[str] = set(plan.tasks)   # every row is written once, PENDING or later
        self._final: dict[str, ComponentRecord] = {}   # records of components in a final state, as made
        self._unsaved: dict[str, bytes] = {}      # small outputs drained, saved once their rows land
        self._unsaved_logs: list[AttemptLog] = []   # likewise, small logs

    def start(self) -> None:
        """Queue the first write of every component's row."""
        self._writer.changed(self)

    def on_change(self, state: RunState, changed: list[str]) -> None:
        events = []
        with self._lock:
            self._state = state
            self._dirty.update(changed)
            final = self._final
            if final:
                for cid in changed:
                    final.pop(cid, None)
            nodes, last, counts = state.nodes, self._last, self._counts
            for cid in changed:
                status = nodes[cid]
                new, old = shown_state(status.state, status.started_at), last[cid]
                if new == old:
                    continue
                last[cid] = new
                counts[old] -= 1
                counts[new] = counts.get(new, 0) + 1
                if new in NOTABLE_STATES or (new == "SUCCEEDED" and status.attempts > 1):
                    self._seq += 1
                    data: dict[str, Any] = {"state": new, "attempts": status.attempts}
                    if new in OWN_FAILURE_STATES:
                        data.update(error=status.error, traceback=status.traceback)
                    events.append(EventRecord(self.run.run_id, self._seq, time.time(), "component_state", cid, data))
                trouble = connector_trouble(status.outcome) if new in FINAL_STATES else None
                if trouble:
                    self._seq += 1
                    events.append(EventRecord(self.run.run_id, self._seq, time.time(), "connector", cid, trouble))
            if events:
                self._writer.records([], events)
        self._writer.changed(self)

    def drain(self) -> list[ComponentRecord]:
        """The rows changed since the last drain, as of now (called by the writer thread)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            records = [self._current(cid) for cid in dirty]
            self._unsaved.update(self._take_outputs(dirty))
            self._unsaved_logs.extend(self._take_logs(dirty))
        return records

    def settled(self) -> None:
        """The run ended and its rows were written: the final records kept go (a handle held
        after the run keeps no copy of every row; a later record is made from the state)."""
        with self._lock:
            self._final = {}

    def written(self, *, lost: bool) -> None:
        """The drained rows landed: checkpoint their small outputs now, so a checkpoint is
        committed only under the lease that the store just checked. ``lost``: the store
        refused the rows (another owner drives the run); the outputs are dropped."""
        with self._lock:
            outputs, self._unsaved = self._unsaved, {}
            logs, self._unsaved_logs = self._unsaved_logs, []
        if outputs and not lost:
            self._save_outputs(outputs)
        if logs and not lost:
            self._save_logs(logs)

    def _take_outputs(self, ids: set[str]) -> dict[str, bytes]:
        """The small outputs that came back with the calls of ``ids`` (handed over once)."""
        if self._state is None or self._checkpoints is None:
            return {}
        out = {}
        nodes = self._state.nodes
        for cid in ids:
            status = nodes[cid]
            if status.checkpoint is not None:
                out[cid], status.checkpoint = status.checkpoint, None
        return out

    def _take_logs(self, ids: set[str]) -> list[AttemptLog]:
        """The logs that came back with the calls of ``ids`` and that the workers did not
        save (handed over once; a failure's text stays for its error's tail)."""
        if self._state is None or self._logs is None:
            return []
        out = []
        nodes = self._state.nodes
        for cid in ids:
            status = nodes[cid]
            if status.log is not None:
                attempt, text, saved = status.log
                if not saved:
                    out.append(AttemptLog(cid, attempt, text))
                status.log = (attempt, text, True) if status.state in OWN_FAILURE_STATES else None
        return out

    def _save_logs(self, logs: list[AttemptLog]) -> None:
        try:
            self._logs.write_batch(self.run.run_id, logs)   # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - a lost log never fails the run
            log.warning("run %s: the logs of %d attempt(s) were not kept: %s", self.run.run_id, len(logs), exc)

    def _save_outputs(self, outputs: dict[str, bytes]) -> None:
        try:
            self._checkpoints.write_inline(self.run.run_id, outputs)   # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - a lost checkpoint costs a rerun on resume, not the run
            log.warning("run %s: %d outputs were not checkpointed (they run again if the run is resumed): %s",
                        self.run.run_id, len(outputs), exc)

    def run_event(self, status: str, **data: Any) -> None:
        self.event("run_state", state=status, **data)

    def event(self, kind: str, **data: Any) -> None:
        """One run-level event (no component) in the run's sequence."""
        with self._lock:
            self._seq += 1
            self._writer.event(EventRecord(self.run.run_id, self._seq, time.time(), kind, None, data))

    def _current(self, cid: str) -> ComponentRecord:
        """The component's record with its features: the one kept for a final state, or a
        new one (kept when final). Under the lock."""
        rec = self._final.get(cid)
        if rec is None:
            rec = self._record(cid)
            if rec.state in FINAL_STATES:
                self._final[cid] = rec
        return rec

    def _record(self, cid: str, with_features: bool = True) -> ComponentRecord:
        """The component's record as of now (under the lock)."""
        rerun = self._state.reruns.get(cid) if self._state is not None else None
        task = rerun if rerun is not None else self.plan.tasks[cid]   # an OOM rerun records its new request
        resources = self._described.get(id(task.options))
        if resources is None:
            resources = self._described[id(task.options)] = task.options.describe()
        upstream = self._upstream.get(cid)
        if upstream is None:
            upstream = self._upstream[cid] = list(task.deps)
        state = self._state
        if state is None:   # the first row: features come with the row of an attempt
            return ComponentRecord(self.run.run_id, cid, resources=resources, upstream=upstream)
        s = state.nodes[cid]
        started, ended = s.started_at, s.ended_at
        duration = max(0.0, ended - started) if started is not None and ended is not None else None
        queued = self._queued(state, cid, started) if started is not None else None
        features: dict[str, Any] = {}
        if started is not None and with_features:   # what it ran with (a row before that is rewritten when it runs)
            features = self._features(task)
            features["input_bytes"] = s.input_bytes
            if s.input_rows >= 0:
                features["input_rows"] = s.input_rows
        return ComponentRecord(self.run.run_id, cid, s.state, s.attempts, s.submitted_at, started, ended,
                               queued, duration, s.node_id, s.worker_id, resources, s.error, s.cached,
                               upstream, s.cpu_s, s.peak_rss_bytes, features,
                               {**(s.outcome or {}), "oom_reruns": s.resubmitted} if s.resubmitted else (s.outcome or {}),
                               s.traceback)

    def _features(self, task: Any) -> dict[str, Any]:
        """What the resource model learns from (see ComponentRecord.features)."""
        fn = self._function.get(id(task.fn))
        if fn is None:
            fn = self._function[id(task.fn)] = function_features(task)
        out: dict[str, Any] = {**fn, "n_up": len(task.deps)}
        config = literal_config(task)
        if config:
            out["config"] = config
        if task.options.sizing is not None:
            out["sized"] = task.options.sizing
        return out

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

    def records(self, *, features: bool = True) -> list[ComponentRecord]:
        """Every component's record as of now (``features=False``: without what the
        resource model learns from, which metrics do not read, unless a final record kept
        has them)."""
        with self._lock:
            if self._state is None:
                return [self._record(cid, features) for cid in self.plan.tasks]
            nodes = self._state.nodes
            return [self._current(cid) if nodes[cid].state in FINAL_STATES else self._record(cid, features)
                    for cid in self.plan.tasks]


def literal_config(task: Any) -> dict[str, float]:
    """The numeric literal arguments of ``task`` (keyword ones by name, positional ones as
    ``arg<i>``): what the resource model learns from, and what resume compares."""
    config = numeric_config(task.kwargs) if task.kwargs else {}
    for i, arg in enumerate(task.args):
        if type(arg) in (int, float, bool):
            config[f"arg{i}"] = float(arg)
    return config
