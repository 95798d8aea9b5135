"""Runs in this process (ActiveRun) and handles to any run (RunHandle).

Owns the life of a run driven here: RUNNING -> drive the loop -> final state with
metrics, written through the store writer, and the handle users hold. A handle to
a run driven by another process reads the store. Must not import ray.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from rayflow.core import gcpause
from rayflow.core.errors import RayflowError, RunCancelled, RunNotFound, WorkflowFailed
from rayflow.core.template import fill_refs
from rayflow.execute.loop import drive, new_state
from rayflow.execute.port import CheckpointTarget, Executor
from rayflow.metrics.recorder import RunRecorder
from rayflow.metrics.summary import run_metrics
from rayflow.plan import Plan
from rayflow.store.checkpoints import Checkpoint, CheckpointStore
from rayflow.store.port import TERMINAL_RUN_STATES, ComponentRecord, RunRecord

if TYPE_CHECKING:
    from rayflow.service.operations import Service

log = logging.getLogger("rayflow")

CANCEL_POLL_S = 0.5
RESULT_KEEP_BYTES = 64 * 1024
LEASE_ENV_VAR = "RAYFLOW_LEASE_S"
DEFAULT_LEASE_S = 30.0


def lease_s() -> float:
    """How long a run's owner may go without a heartbeat before another process may
    resume the run ($RAYFLOW_LEASE_S, default 30 s); owners beat every third of it."""
    try:
        return max(0.3, float(os.environ.get(LEASE_ENV_VAR) or DEFAULT_LEASE_S))
    except ValueError:
        return DEFAULT_LEASE_S


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ActiveRun:
    """A run this process drives: the loop, its recorder, and its outcome.

    ``checkpoints``: where outputs are kept (None: not kept). ``restored`` and ``earlier``
    (resume): components whose outputs come from checkpoints, and what the store holds
    of every component from before (the restored ones keep their rows)."""

    def __init__(self, service: Service, plan: Plan, run: RunRecord, executor: Executor, *,
                 checkpoints: CheckpointStore | None = None, restored: dict[str, Checkpoint] | None = None,
                 earlier: dict[str, ComponentRecord] | None = None, first_seq: int = 0,
                 cache: Any = None, resize: Any = None) -> None:
        self.service = service
        self.plan = plan
        self.run = run
        self.executor = executor
        self.checkpoints = CheckpointTarget(checkpoints, run.run_id) if checkpoints is not None else None
        self.recorder = RunRecorder(run, plan, service.writer, checkpoints=checkpoints, first_seq=first_seq)
        self.state = new_state(plan, executor)
        self.restored = dict(restored or {})
        self.cache = cache   # a RunCache, or None
        self.resize = resize   # after an out-of-memory kill: the task again, asking for more
        for cid in self.restored:
            rec = (earlier or {}).get(cid)
            self.state.restore(cid, {**rec.features, **rec.to_dict()} if rec is not None else None)
        self.done = threading.Event()
        self.cancel_event = threading.Event()
        self.value: Any = None
        self.status = "PENDING"
        self.error: str | None = None
        self._next_poll = 0.0
        self._lease_s = lease_s()
        self._next_beat = 0.0

    def execute(self) -> None:
        """Drive the run to its end (in the caller's thread); never raises."""
        writer, run_id = self.service.writer, self.run.run_id
        gcpause.freeze_once()   # the long-lived objects of the process: out of the collector's way
        now = time.time()
        self.run.started_at = self.run.started_at if self.restored else now
        self.status = "RUNNING"
        self.run.owner = owner_id()
        self._next_beat = time.monotonic() + self._lease_s / 3
        self.recorder.start()   # every row, written with the first transitions
        writer.run(run_id, status="RUNNING", started_at=self.run.started_at, owner=self.run.owner,
                   heartbeat_at=now, ended_at=None, error=None)
        self.recorder.run_event("RUNNING", **({"resumed": len(self.restored)} if self.restored else {}))
        try:
            outputs = drive(self.plan, self.executor, self.state,
                            on_change=self.recorder.on_change, should_cancel=self._should_cancel,
                            checkpoints=self.checkpoints, restored=self.restored, cache=self.cache,
                            resize=self.resize)
            self.status = self.state.run_status()
            if self.status == "SUCCEEDED":
                self.value = fill_refs(self.plan.output, outputs)
            elif self.status == "FAILED":
                self.error = _first_error(self.state.errors())
        except BaseException as exc:  # an internal or executor error: the run fails, with the reason kept
            log.exception("run %s stopped by an internal error", run_id)
            self.status, self.error = "FAILED", f"internal error: {type(exc).__name__}: {exc}"
        self._finish()

    def _finish(self) -> None:
        self.run.ended_at = time.time()
        self.run.status = self.status
        self.service.writer.write_soon()   # the last component rows, while the summary is computed
        with gcpause.paused():   # a record per component: collect after
            summary = self.metrics(per_component=False)
        if self.status == "SUCCEEDED" and _keepable(self.value):
            summary["result"] = self.value
        if self.cache is not None:
            summary["cache"] = self.cache.counts()
        self.service.writer.run(self.run.run_id, status=self.status, ended_at=self.run.ended_at,
                                error=self.error, summary=summary, heartbeat_at=None)   # the lease ends
        self.recorder.run_event(self.status, error=self.error)
        self.service.writer.flush()
        self.done.set()

    def _should_cancel(self) -> bool:
        if self.cancel_event.is_set():
            return True
        now = time.monotonic()
        if now >= self._next_beat:   # the lease: other processes see this run is driven
            self._next_beat = now + self._lease_s / 3
            self.service.writer.run(self.run.run_id, heartbeat_at=time.time())
        if now >= self._next_poll:
            self._next_poll = now + CANCEL_POLL_S
            try:
                if self.service.store.cancel_requested(self.run.run_id):
                    self.cancel_event.set()
            except Exception:  # the store being briefly unavailable must not stop the run
                log.warning("could not poll the store for cancellation of %s", self.run.run_id)
        return self.cancel_event.is_set()

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        """The batch progress of the run's streams, by last stage (executors without streams: none)."""
        read = getattr(self.executor, "stream_progress", None)
        return read() if read is not None else {}

    def metrics(self, *, per_component: bool = True) -> dict[str, Any]:
        run = RunRecord(**{**self.run.to_dict(), "status": self.status})
        return run_metrics(run, self.recorder.records(features=False), dag=self.plan.dag, per_component=per_component)


class RunHandle:
    """A handle to one run: ``status``, ``wait``, ``result``, ``cancel``, ``metrics``."""

    def __init__(self, run_id: str, service: Service, active: ActiveRun | None = None, *,
                 tracker: Any = None) -> None:
        self._run_id = run_id
        self._service = service
        self._active = active
        self._tracker = tracker   # a TrackerClient when the cluster's tracker drives the run

    @property
    def run_id(self) -> str:
        return self._run_id

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self._run_id!r}, status={self.status()!r})"

    def record(self) -> RunRecord:
        """The run's row in the store (flushes this process's pending writes first)."""
        if self._active is not None:
            self._service.writer.flush(timeout=5)
        run = self._service.store.get_run(self._run_id)
        if run is None:
            raise RunNotFound(self._run_id)
        return run

    def status(self) -> str:
        if self._active is not None:
            return self._active.status
        live = self._tracker.status() if self._tracker is not None else None
        return live or self.record().status

    def progress(self) -> dict[str, int]:
        """Component counts by state, e.g. ``{"SUCCEEDED": 10, "RUNNING": 2, "PENDING": 5}``."""
        if self._active is not None:
            return self._active.recorder.counts()
        live = self._tracker.progress() if self._tracker is not None else None
        if live is not None:
            return live
        out: dict[str, int] = {}
        for c in self._service.store.get_components(self._run_id):
            out[c.state] = out.get(c.state, 0) + 1
        return out

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        """Batch progress of the run's streams (chains of batch components run as pipelines),
        by the stream's last stage: ``{"aggregate": {"stages": [...], "batches": 120, "rows":
        7_864_320, "rows_out": 120, "total_rows": 33_554_432, "elapsed_s": 2.1, "rows_per_s":
        3.7e6, "done": False}}``. ``rows`` counts input rows whose batch left the last stage;
        ``total_rows`` is None when the input does not tell its length (a generator);
        ``rows_per_s`` counts from the first batch out (the stages' start-up excluded).
        Known to the process driving the run (or the cluster's tracker): empty elsewhere,
        and with the local executor."""
        if self._active is not None:
            return self._active.stream_progress()
        live = self._tracker.stream_progress() if self._tracker is not None else None
        return live or {}

    def wait(self, timeout: float | None = None, *, progress: bool = False) -> str:
        """Block until the run is final; return its status. TimeoutError if ``timeout`` passes.

        ``progress=True`` shows a bar of finished components (a widget in notebooks), and
        one of rows per stream while it runs.
        """
        if progress:
            from rayflow.runs.progress import follow

            return follow(self, timeout)
        if self._active is not None:
            if not self._active.done.wait(timeout):
                raise TimeoutError(f"run {self._run_id} still {self._active.status} after {timeout}s")
            return self._active.status
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._tracker is not None:
            step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            status = self._tracker.wait(step)
            if status is None:
                break  # the tracker no longer holds it: the store has the outcome
            if status in TERMINAL_RUN_STATES:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self._run_id} still {status} after {timeout}s")
        while True:
            status = self.record().status
            if status in TERMINAL_RUN_STATES:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self._run_id} still {status} after {timeout}s")
            time.sleep(0.2)

    def result(self, timeout: float | None = None, *, progress: bool = False) -> Any:
        """The workflow's return value; WorkflowFailed or RunCancelled otherwise."""
        status = self.wait(timeout, progress=progress)
        if status == "CANCELLED":
            raise RunCancelled(self._run_id)
        if status == "FAILED":
            raise self._failure()
        if self._active is not None:
            return self._active.value
        final = self._tracker.result() if self._tracker is not None else None
        if final is not None and final[0] == "SUCCEEDED":
            return final[1]
        run = self.record()
        if "result" not in run.summary:
            raise RayflowError(f"run {self._run_id} succeeded, but its result was not kept "
                               "(only JSON values up to 64 KiB are stored); rerun it in this process")
        return run.summary["result"]

    def cancel(self) -> None:
        """Stop the run: in-flight components are cancelled, the rest never start."""
        if self._active is not None:
            self._active.cancel_event.set()
        elif self._tracker is not None and self._tracker.cancel():
            return
        elif not self._service.store.request_cancel(self._run_id):
            raise RunNotFound(self._run_id)

    def metrics(self) -> dict[str, Any]:
        """Timings per component, critical path, throughput and queue wait (JSON-serialisable)."""
        if self._active is not None:
            return self._active.metrics()
        live = self._tracker.metrics() if self._tracker is not None else None
        if live is not None:
            return live
        return run_metrics(self.record(), self._service.store.get_components(self._run_id))

    def components(self) -> dict[str, dict[str, Any]]:
        return self.metrics()["components"]

    def _repr_html_(self) -> str:
        """Jupyter: summary, Gantt chart and component table (plotly.js inlined, works offline)."""
        from rayflow.report.notebook import run_html  # plotly only when a notebook asks

        return run_html(self)

    def _failure(self) -> WorkflowFailed:
        if self._active is not None:
            errors = self._active.state.errors() or {"(run)": self._active.error or "failed"}
            states = {n: s.state for n, s in self._active.state.nodes.items()}
            return WorkflowFailed(self._run_id, errors, states)
        comps = self._service.store.get_components(self._run_id)
        errors = {c.component_id: c.error or c.state for c in comps if c.state in ("FAILED", "TIMED_OUT")}
        if not errors:
            errors = {"(run)": self.record().error or "failed"}
        return WorkflowFailed(self._run_id, errors, {c.component_id: c.state for c in comps})


def _first_error(errors: dict[str, str]) -> str | None:
    if not errors:
        return None
    cid, msg = next(iter(errors.items()))
    return f"component {cid!r}: {msg}"


def _keepable(value: Any) -> bool:
    """Small JSON values are kept in the store so other processes can read the result."""
    try:
        return len(json.dumps(value)) <= RESULT_KEEP_BYTES
    except (TypeError, ValueError):
        return False
