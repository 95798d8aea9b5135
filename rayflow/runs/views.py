"""What a ``RunHandle`` reads and asks of its run: the ``RunView`` protocol, and two of
its implementations.

- ``LocalView``: a run this process drives (an ``ActiveRun``): everything is in memory.
- ``StoreView``: any run, from any process: reads the run store (and asks for
  cancellation through it).

The third, a run driven by the cluster's tracker actor, lives with the tracker
(``rayflow.server.tracker.TrackerView``) and falls back to a ``StoreView`` once the
tracker no longer holds the run. Owns no run state of its own. Must not import
rayflow.service or rayflow.server (they are above), and must not import ray.
"""

from __future__ import annotations

import re
import time
from typing import Any, Protocol, runtime_checkable

from rayflow.core.errors import ComponentNotFound, RayflowError, RunNotFound, WorkflowFailed
from rayflow.core.states import (
    FINAL_COMPONENT_STATES,
    OWN_FAILURE_STATES,
    TERMINAL_RUN_STATES,
    shown_state,
)
from rayflow.execute.worker.capture import tail_lines
from rayflow.metrics.summary import run_metrics
from rayflow.runs.active import ActiveRun, RunBacking
from rayflow.store.port import RunRecord

STORE_POLL_S = 0.2
_ITEM = re.compile(r"(.+)\[(\d+)\]")


@runtime_checkable
class RunView(Protocol):
    """One run as some process can see it. ``RunHandle`` delegates every call to one."""

    @property
    def run_id(self) -> str: ...

    def record(self) -> RunRecord:
        """The run's row in the store (RunNotFound when there is none)."""

    def status(self) -> str: ...

    def progress(self) -> dict[str, int]:
        """Component counts by state."""

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        """Batch progress of the run's streams by last stage; empty where not known."""

    def metrics(self) -> dict[str, Any]: ...

    def cancel(self) -> None:
        """Ask the run to stop; RunNotFound when there is no such run."""

    def wait(self, timeout: float | None) -> str:
        """Block until the run is final and return its status; TimeoutError after ``timeout``."""

    def result(self) -> Any:
        """The value of a SUCCEEDED run (RayflowError when it was not kept)."""

    def failure(self) -> WorkflowFailed:
        """Why a FAILED run failed: the failed components and every component's state."""

    def logs(self, component: str, attempt: int | None) -> str:
        """What ``component``'s attempt printed and logged (its last by default)."""


def timed_out(run_id: str, status: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"run {run_id} still {status} after {timeout}s")


def driver_gone(run: RunRecord, backing: RunBacking) -> bool:
    """Whether no one drives ``run`` any more: it is not final, and its owner's lease
    lapsed, or it was queued longer than a lease with no live server to claim it."""
    if run.status in TERMINAL_RUN_STATES:
        return False
    store, lease_s = backing.store, backing.lease_s()
    now = store.db_now()
    if run.owner:
        return run.heartbeat_at is not None and run.heartbeat_at < now - lease_s
    if run.status != "PENDING" or run.created_at is None or run.created_at > time.time() - lease_s:
        return False
    return not any(s.heartbeat_at is not None and s.heartbeat_at >= now - lease_s for s in store.list_servers())


class StoreView:
    """A run read from the run store: works from any process, for any run."""

    def __init__(self, run_id: str, backing: RunBacking) -> None:
        self._run_id = run_id
        self._backing = backing

    @property
    def run_id(self) -> str:
        return self._run_id

    def record(self) -> RunRecord:
        run = self._backing.store.get_run(self._run_id)
        if run is None:
            raise RunNotFound(self._run_id)
        return run

    def status(self) -> str:
        return self.record().status

    def progress(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self._backing.store.get_components(self._run_id):
            shown = shown_state(c.state, c.started_at)
            out[shown] = out.get(shown, 0) + 1
        return out

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        return {}   # known only to the process driving the run

    def metrics(self) -> dict[str, Any]:
        return run_metrics(self.record(), self._backing.store.get_components(self._run_id))

    def cancel(self) -> None:
        if not self._backing.store.request_cancel(self._run_id):
            raise RunNotFound(self._run_id)

    def wait(self, timeout: float | None) -> str:
        """Poll the store until the run is final. A run whose driver is gone (its lease
        lapsed on the database's clock) is taken over by this process (``take_over``:
        resumed here, or DriverLost when it cannot be planned here), so no wait polls a
        dead run forever."""
        deadline = None if timeout is None else time.monotonic() + timeout
        check_at = time.monotonic() + self._backing.lease_s() / 3
        while True:
            run = self.record()
            if run.status in TERMINAL_RUN_STATES:
                return run.status
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise timed_out(self._run_id, run.status, timeout)
            if now >= check_at:
                check_at = now + max(STORE_POLL_S, self._backing.lease_s() / 3)
                if driver_gone(run, self._backing):
                    self._backing.take_over(self._run_id)
            time.sleep(STORE_POLL_S)

    def result(self) -> Any:
        run = self.record()
        if "result" not in run.summary:
            raise RayflowError(f"run {self._run_id} succeeded, but its result was not kept "
                               "(only JSON values up to 64 KiB are stored); rerun it in this process")
        return run.summary["result"]

    def failure(self) -> WorkflowFailed:
        comps = self._backing.store.get_components(self._run_id)
        errors = {c.component_id: c.error or c.state for c in comps if c.state in OWN_FAILURE_STATES}
        if not errors:
            errors = {"(run)": self.record().error or "failed"}
        tracebacks = {c.component_id: c.traceback for c in comps if c.component_id in errors and c.traceback}
        tails = {cid: tail_lines(self._read_log(cid, None) or "") for cid in errors if cid != "(run)"}
        return WorkflowFailed(self._run_id, errors, {c.component_id: c.state for c in comps}, tracebacks, tails)

    def logs(self, component: str, attempt: int | None) -> str:
        comps = {c.component_id: (c.state, c.attempts) for c in self._backing.store.get_components(self._run_id)}
        if not comps and self._backing.store.get_run(self._run_id) is None:
            raise RunNotFound(self._run_id)
        return read_log(self._run_id, self._backing, comps, component, attempt)

    def _read_log(self, component: str, attempt: int | None) -> str | None:
        return _kept_log(self._run_id, self._backing, component, attempt)


def read_log(run_id: str, backing: RunBacking, comps: dict[str, tuple[str, int]], component: str,
             attempt: int | None) -> str:
    """What ``component`` (of ``comps``: id -> (state, attempts)) printed in ``attempt`` (its
    last by default; "" when it printed nothing); ComponentNotFound for no such component
    or attempt. A map's item is named ``map[3]``."""
    item = _ITEM.fullmatch(component)
    known = comps.get(component)
    if known is None and not (item and item.group(1) in comps):
        shown = ", ".join(sorted(comps)[:5]) + (", ..." if len(comps) > 5 else "")
        raise ComponentNotFound(f"run {run_id} has no component {component!r} (its components: {shown})",
                                component=component)
    if known is not None:
        state, attempts = known
        if attempt is not None and not 1 <= attempt <= max(attempts, 1):
            raise ComponentNotFound(f"component {component!r} of run {run_id} has no attempt {attempt} "
                                    f"(it made {attempts})", component=component)
        if attempt is None and state in FINAL_COMPONENT_STATES and attempts:
            attempt = attempts   # its last attempt, even when that one printed nothing
    return _kept_log(run_id, backing, component, attempt) or ""   # "": nothing printed (or capture off)


def _kept_log(run_id: str, backing: RunBacking, component: str, attempt: int | None) -> str | None:
    store = backing.log_store()
    if store is None:
        return None
    backing.writer.flush()   # this process's small logs land with its pending writes
    return store.read(run_id, component, attempt)


class LocalView:
    """A run this process drives: status, progress and the value from the ``ActiveRun``;
    the record from the store, after this process's pending writes."""

    def __init__(self, active: ActiveRun, backing: RunBacking) -> None:
        self._active = active
        self._backing = backing
        self._store = StoreView(active.run.run_id, backing)

    @property
    def run_id(self) -> str:
        return self._active.run.run_id

    def record(self) -> RunRecord:
        self._backing.writer.flush(timeout=5)
        return self._store.record()

    def status(self) -> str:
        return self._active.status

    def progress(self) -> dict[str, int]:
        return self._active.recorder.counts()

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        return self._active.stream_progress()

    def metrics(self) -> dict[str, Any]:
        return self._active.metrics()

    def cancel(self) -> None:
        self._active.cancel_event.set()

    def wait(self, timeout: float | None) -> str:
        if not self._active.done.wait(timeout):
            raise timed_out(self.run_id, self._active.status, timeout)
        return self._active.status

    def result(self) -> Any:
        return self._active.value

    def failure(self) -> WorkflowFailed:
        active = self._active
        errors = active.state.errors() or {"(run)": active.error or "failed"}
        nodes = active.state.nodes
        states = {n: s.state for n, s in nodes.items()}
        tracebacks = {cid: nodes[cid].traceback for cid in errors if cid in nodes and nodes[cid].traceback}
        tails = {cid: tail_lines(nodes[cid].log[1]) for cid in errors if cid in nodes and nodes[cid].log}
        return WorkflowFailed(self.run_id, errors, states, tracebacks, tails)

    def logs(self, component: str, attempt: int | None) -> str:
        nodes = self._active.state.nodes   # known here before the store has the rows
        comps = {cid: (s.state, s.attempts) for cid, s in list(nodes.items())}
        return read_log(self.run_id, self._backing, comps, component, attempt)
