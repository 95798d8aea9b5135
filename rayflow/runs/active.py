"""A run driven in this process (``ActiveRun``), and the run lease.

Owns the life of a run driven here: RUNNING -> drive the loop -> final state with
metrics, written through the store writer, under the run's lease (kept live by the
service's ``LeaseKeeper``; every write fenced by the lease's epoch), and cancellation
polled from the store. A run whose lease was taken over stops and writes nothing more;
a run handed back (the server shutting down) stops, keeps what it wrote, and releases
its lease so another owner resumes it. Knows the
service only through ``RunBacking`` (a store and a writer): must not import
rayflow.service or rayflow.server, and must not import ray.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Protocol

from rayflow.core import config, gcpause
from rayflow.core.redact import has_secret
from rayflow.core.template import fill_refs
from rayflow.execute.loop import drive, new_state
from rayflow.execute.port import CheckpointTarget, Executor, LogTarget
from rayflow.metrics.summary import run_metrics
from rayflow.plan import Plan
from rayflow.runs.leases import LeaseKeeper
from rayflow.runs.owners import owner_id
from rayflow.runs.recorder import RunRecorder
from rayflow.store import RunStore
from rayflow.store.checkpoints import Checkpoint, CheckpointStore
from rayflow.store.logs import LogStore
from rayflow.store.port import ComponentRecord, Lease, RunRecord
from rayflow.store.writer import StoreWriter

log = logging.getLogger("rayflow")

CANCEL_POLL_S = 0.5
RESULT_KEEP_BYTES = 64 * 1024
LEASE_ENV_VAR = config.LEASE_VAR
DEFAULT_LEASE_S = config.DEFAULT_LEASE_S


class RunBacking(Protocol):
    """Where a run's records go and are read back (the service provides it)."""

    @property
    def store(self) -> RunStore: ...

    @property
    def writer(self) -> StoreWriter: ...

    @property
    def leases(self) -> LeaseKeeper: ...

    def lease_s(self) -> float: ...

    def log_store(self) -> LogStore | None:
        """Where attempts' logs are kept (None: capture is off)."""
        ...

    def take_over(self, run_id: str) -> bool:
        """Resume a run whose driver is gone in this process (see Service.take_over)."""
        ...


def lease_s() -> float:
    """How long a run's owner may go without a heartbeat before another process may
    resume the run ($RAYFLOW_LEASE_S, default 30 s); owners beat every third of it."""
    return config.lease_s()


def log_target(logs: LogStore | None, run_id: str) -> LogTarget | None:
    """What the calls of ``run_id`` are told of its log location: workers write to it
    unless its URL holds a secret (a URL never travels in a call's arguments with one)."""
    if logs is None:
        return None
    return LogTarget(None if has_secret(logs.url) else logs.url, run_id, config.log_max_bytes(),
                     echo=config.log_echo())


class ActiveRun:
    """A run this process drives: the loop, its recorder, and its outcome.

    ``checkpoints``: where outputs are kept (None: not kept). ``restored`` and ``earlier``
    (resume): components whose outputs come from checkpoints, and what the store holds
    of every component from before (the restored ones keep their rows)."""

    def __init__(self, service: RunBacking, plan: Plan, run: RunRecord, executor: Executor, *,
                 checkpoints: CheckpointStore | None = None, restored: dict[str, Checkpoint] | None = None,
                 earlier: dict[str, ComponentRecord] | None = None, first_seq: int = 0,
                 cache: Any = None, resize: Any = None, lease: Lease | None = None,
                 logs: LogStore | None = None) -> None:
        self.service = service
        self.plan = plan
        self.run = run
        self.executor = executor
        self.checkpoints = CheckpointTarget(checkpoints, run.run_id) if checkpoints is not None else None
        self._checkpoint_store = checkpoints
        self.recorder = RunRecorder(run, plan, service.writer, checkpoints=checkpoints, first_seq=first_seq, logs=logs)
        self.logs = log_target(logs, run.run_id)
        self.state = new_state(plan, executor)
        self.restored = dict(restored or {})
        self.cache = cache   # a RunCache, or None
        self.resize = resize   # after an out-of-memory kill: the task again, asking for more
        self.lease = lease     # None: driven unfenced, with heartbeats through the writer
        self.lost = False          # the lease was taken over: nothing more is written
        self.handing_back = False  # stopping so another owner resumes the run
        for cid in self.restored:
            rec = (earlier or {}).get(cid)
            self.state.restore(cid, {**rec.features, **rec.to_dict()} if rec is not None else None)
        self.done = threading.Event()
        self.cancel_event = threading.Event()
        self.value: Any = None
        self.status = "PENDING"
        self.error: str | None = None
        # the store is asked for a cancel every CANCEL_POLL_S, the first time that long after the
        # run was made (a run recorded just now cannot have been cancelled before then through
        # the store unnoticed for longer; a short run then asks never, a resumed one at once)
        self._next_poll = time.monotonic() + max(0.0, min(CANCEL_POLL_S, (run.created_at or 0.0) + CANCEL_POLL_S - time.time()))
        self._lease_s = service.lease_s()
        self._next_beat = 0.0

    def execute(self) -> None:
        """Drive the run to its end (in the caller's thread); never raises."""
        writer, run_id = self.service.writer, self.run.run_id
        gcpause.freeze_once()   # the long-lived objects of the process: out of the collector's way
        now = time.time()
        self.run.started_at = self.run.started_at if self.restored else now
        self.status = "RUNNING"
        self.run.owner = self.lease.owner if self.lease is not None else owner_id()
        self._next_beat = time.monotonic() + self._lease_s / 3
        if self.lease is not None:
            writer.fence(run_id, self.lease.epoch, self._lease_lost)
            self.service.leases.hold(self.lease, self._lease_lost)
        self.recorder.start()   # every row, written with the first transitions
        writer.run(run_id, status="RUNNING", started_at=self.run.started_at, owner=self.run.owner,
                   heartbeat_at=now, ended_at=None, error=None)
        self.recorder.run_event("RUNNING", **({"resumed": len(self.restored)} if self.restored else {}))
        try:
            outputs = drive(self.plan, self.executor, self.state,
                            on_change=self.recorder.on_change, should_cancel=self._should_cancel,
                            checkpoints=self.checkpoints, restored=self.restored, cache=self.cache,
                            resize=self.resize, logs=self.logs)
            self.status = self.state.run_status()
            if self.status == "SUCCEEDED":
                self.value = fill_refs(self.plan.output, outputs)
            elif self.status == "FAILED":
                self.error = _first_error(self.state.errors())
        except BaseException as exc:  # an internal or executor error: the run fails, with the reason kept
            if isinstance(exc, KeyboardInterrupt) and self.cancel_event.is_set():
                self.status = self._interrupted()   # asked to stop, then a signal stopped a component in this thread
            else:
                log.exception("run %s stopped by an internal error", run_id)
                self.status, self.error = "FAILED", f"internal error: {type(exc).__name__}: {exc}"
        self._finish()

    def _interrupted(self) -> str:
        """CANCELLED, as a polled cancel ends a run: what was in flight or pending is CANCELLED."""
        self.state.cancel()
        changed = self.state.drain_changed()
        if changed:
            self.recorder.on_change(self.state, changed)
        return "CANCELLED"

    def _lease_lost(self, run_id: str) -> None:
        self.lost = True
        self.cancel_event.set()

    def hand_back(self) -> None:
        """Stop driving; keep what was written; release the lease (see ``_hand_back``)."""
        self.handing_back = True
        self.cancel_event.set()

    def _finish(self) -> None:
        if self.lost or self.handing_back:
            if self.lease is not None:
                self.service.leases.drop(self.run.run_id)
            self._stop_here()
            return
        self.run.ended_at = time.time()
        self.run.status = self.status
        self.service.writer.write_soon()   # the last component rows, while the summary is computed
        with gcpause.paused():   # a record per component: collect after
            summary = self.metrics(per_component=False)
        if self.status == "SUCCEEDED" and _keepable(self.value):
            summary["result"] = self.value
        if self.cache is not None:
            summary["cache"] = self.cache.counts()
        if self.lease is not None:
            self.service.leases.ending(self.run.run_id)
        self.service.writer.run(self.run.run_id, status=self.status, ended_at=self.run.ended_at,
                                error=self.error, summary=summary, heartbeat_at=None)   # the lease ends
        self.recorder.run_event(self.status, error=self.error)
        self.service.writer.flush()
        self.recorder.settled()   # the rows are written and the summary made: its kept records go
        self._sweep_temporary()
        if self.lease is not None:   # renewed through the summary and the last writes, then dropped
            self.service.leases.drop(self.run.run_id)
        self.service.writer.unfence(self.run.run_id)
        self.done.set()

    def _sweep_temporary(self) -> None:
        """The run settled: a checkpoint write still unfinished in its folder died with its
        worker (Ray ran the save again), so it goes now rather than at the next ``rayflow gc``."""
        if self._checkpoint_store is None:
            return
        try:
            removed = self._checkpoint_store.sweep_temporary(self.run.run_id)
        except Exception as exc:  # noqa: BLE001 - leftovers cost disk until gc, never the run
            log.warning("run %s: could not remove unfinished checkpoint writes: %s", self.run.run_id, exc)
            return
        if removed:
            log.info("run %s: removed %d unfinished checkpoint write(s)", self.run.run_id, removed)

    def _stop_here(self) -> None:
        """Lost: write nothing more. Handed back: flush what is queued, say so in the run's
        events, release the lease (status left RUNNING: any owner may resume it)."""
        writer, run_id = self.service.writer, self.run.run_id
        if self.handing_back and not self.lost and self.lease is not None:
            self.recorder.event("run_handed_back", owner=self.lease.owner)
            if writer.flush(timeout=10):
                try:
                    self.service.store.release_lease(self.lease)
                except Exception:  # noqa: BLE001 - the lease then lapses by itself
                    log.warning("run %s: could not release its lease; it lapses in %.0f s", run_id, self._lease_s)
        # whatever is still queued for the run goes under its fence (a lost run's records are
        # refused, never written over the next owner's); then nothing of this driver is left
        # to write, and the fence goes (a long-lived server would otherwise keep every one)
        if writer.flush(timeout=10):
            writer.unfence(run_id)
        self.status = "RUNNING"   # not final here: whoever drives it next decides
        self.done.set()

    def _should_cancel(self) -> bool:
        if self.cancel_event.is_set():
            return True
        if self.lease is not None and not self.service.leases.confirm(self.run.run_id):
            return True   # taken over while this process slept: start nothing more
        now = time.monotonic()
        if self.lease is None and now >= self._next_beat:   # unfenced: heartbeats through the writer
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
