"""The run tracker: one detached, named Ray actor (namespace ``rayflow``) that drives the
runs submitted to a cluster, so they outlive the process that submitted them.

The submitting process plans and records the run, then hands the plan to the tracker;
the tracker drives it with the same control loop, executor and recorder as an
in-process run (so no Ray call is made per component event: transitions are recorded
by the tracker itself, in batches, into the run store). Any process can then follow
the run through the store, or through the tracker while it is live. One tracker serves
every run (a thread each); it takes no CPU from the cluster (num_cpus=0).

No single point of failure: a handed-over run is recorded queued and the tracker claims
its lease, so its writes are fenced like any driver's. If the tracker dies, Ray restarts
it (``max_restarts=-1``) and its leases lapse; then a client waiting on the run takes it
over (``StoreView.wait``), a server on the store claims it, and every tracker sweeps the
stores it serves for runs whose driver is gone (every half lease) and resumes those any
process can plan again. A hand-over that fails leaves the run to the submitting process.
The run's store, checkpoint and cache URLs (passwords included) reach the tracker sealed
in the object store (``rayflow.execute.ray.sealed``), never as a call's arguments.

Implements the service's ``RunHost`` port (``TrackerHost``, registered by
``rayflow.api``) and the runs' ``RunView`` protocol (``TrackerView``): the service and
the runs never import this module. The tracker is a process rayflow owns, so it
tunes the garbage collector (``rayflow.core.gcpause``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from typing import Any

import ray
from ray import cloudpickle

from rayflow.core import config, gcpause
from rayflow.core.errors import RunBusy, WorkflowFailed
from rayflow.core.states import TERMINAL_RUN_STATES
from rayflow.execute.ray.sealed import Sealed
from rayflow.plan import Plan
from rayflow.runs.owners import owner_id
from rayflow.runs.views import RunView, timed_out
from rayflow.service.hosting import HandOver
from rayflow.store.port import RunRecord

log = logging.getLogger("rayflow.tracker")

NAME = "tracker"
NAMESPACE = "rayflow"
MAX_CALLS = 256          # concurrent method calls the actor serves (status polls, starts)
KEEP_FINISHED = 1000     # finished runs kept in memory for result(); older ones live in the store
KEEP_FUNCTIONS = 1024    # distinct component functions the tracker keeps loaded
SWEEP_MIN_S = 2.0        # the tracker looks for orphaned runs every half lease, at most this often
SWEEP_BATCH = 16         # orphaned runs resumed per turn at most
HOST_WAIT_S = 60.0       # how long a first submitter waits for the tracker's host to create it
HOST_ENV_VAR = "RAYFLOW_TRACKER_HOST_RUNTIME_ENV"   # the submitter's job runtime_env, for the host


class _PlanPickler(cloudpickle.CloudPickler):
    """Pickles a plan with its tasks' functions left out, each as its index in the list
    that travels beside it (see ``encode_plan``)."""

    def __init__(self, file: io.BytesIO, index: dict[int, int]) -> None:
        super().__init__(file)
        self._index = index   # id(function) -> position (the plan holds each function alive)

    def persistent_id(self, obj: Any) -> Any:
        i = self._index.get(id(obj))
        return None if i is None else ("rayflow-fn", i)


class _PlanUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, functions: list[Any]) -> None:
        super().__init__(file)
        self._functions = functions

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "rayflow-fn"):
            raise pickle.UnpicklingError(f"unexpected reference in a plan: {pid!r}")
        return self._functions[pid[1]]


def encode_plan(plan: Plan) -> tuple[bytes, list[bytes]]:
    """The plan without its tasks' functions, and each distinct function pickled alone.

    Every run a client hands over pickles its functions again, so a tracker that loaded
    them with the plan would hold new function objects for every run: each would be
    exported to the cluster again and its code fingerprinted again (most of the tracker's
    time with a thousand small runs). Apart, the tracker loads each distinct function
    once: the same pickled bytes stand for the same function, code, closure and globals."""
    functions = list({id(t.fn): t.fn for t in plan.tasks.values() if t.fn is not None}.values())
    out = io.BytesIO()
    _PlanPickler(out, {id(fn): i for i, fn in enumerate(functions)}).dump(plan)
    return out.getvalue(), [cloudpickle.dumps(fn) for fn in functions]


def decode_plan(blob: bytes, functions: list[Any]) -> Plan:
    return _PlanUnpickler(io.BytesIO(blob), functions).load()


class RunTracker:
    """Drives runs inside the cluster. Created once per cluster by ``tracker()``."""

    def __init__(self) -> None:
        from rayflow.service import Service, Settings

        gcpause.own_process()   # a long-lived actor of rayflow's: the collector is ours to tune
        self._service_type, self._settings_type = Service, Settings
        self._services: dict[tuple[str, str | None, str | None, float | None], Any] = {}
        self._runs: dict[str, Any] = {}
        self._finished: list[str] = []
        self._functions: dict[bytes, Any] = {}   # sha256 of a pickled function -> the function
        self._lock = threading.Lock()

    def start_plan(self, plan_blob: bytes, function_blobs: list[bytes], run: dict[str, Any], where: Sealed,
                   lease_s: float | None = None) -> str:
        """Drive a run handed over by ``encode_plan`` (functions already loaded are reused),
        under a lease of the submitter's length; "" when another driver claimed it first.
        ``where``: the sealed (store, checkpoints, cache) URLs, passwords included, opened
        while the submitter waits for this call (``hand_over``)."""
        store_url, checkpoints_url, cache_url = where.open()
        plan = decode_plan(plan_blob, [self._function(b) for b in function_blobs])
        return self._start(plan, run, self._service(store_url, cache_url, checkpoints_url, lease_s))

    def _function(self, blob: bytes) -> Any:
        key = hashlib.sha256(blob).digest()
        with self._lock:
            fn = self._functions.get(key)
        if fn is not None:
            return fn
        fn = cloudpickle.loads(blob)
        with self._lock:
            if key not in self._functions and len(self._functions) >= KEEP_FUNCTIONS:
                self._functions.pop(next(iter(self._functions)))   # the oldest
            return self._functions.setdefault(key, fn)

    def _start(self, plan: Plan, run: dict[str, Any], service: Any) -> str:
        record = RunRecord(**run)
        lease = service.store.claim_run(record.run_id, owner_id(), service.lease_s(), force=False)
        if lease is None:
            return ""   # claimed by another driver (a server) first: the store follows it
        record.owner, record.lease_epoch = lease.owner, lease.epoch
        active = service.active_run(plan, record, "ray", lease=lease)
        with self._lock:
            self._runs[active.run.run_id] = active
        threading.Thread(target=self._drive, args=(active, service), name=f"rayflow-{active.run.run_id}",
                         daemon=True).start()
        return active.run.run_id

    def job_id(self) -> str:
        """The Ray job this actor belongs to (its creator's): the host checks it made it."""
        return ray.get_runtime_context().get_job_id()

    def status(self, run_id: str) -> str | None:
        active = self._runs.get(run_id)
        return None if active is None else active.status

    def progress(self, run_id: str) -> dict[str, int] | None:
        active = self._runs.get(run_id)
        return None if active is None else active.recorder.counts()

    def stream_progress(self, run_id: str) -> dict[str, dict[str, Any]] | None:
        active = self._runs.get(run_id)
        return None if active is None else active.stream_progress()

    def metrics(self, run_id: str) -> dict[str, Any] | None:
        active = self._runs.get(run_id)
        return None if active is None else active.metrics()

    def cancel(self, run_id: str) -> bool:
        active = self._runs.get(run_id)
        if active is None:
            return False
        active.cancel_event.set()
        return True

    def result(self, run_id: str) -> tuple[str, Any] | None:
        """(status, value) once the run is final; None when unknown or still running."""
        active = self._runs.get(run_id)
        if active is None or not active.done.is_set():
            return None
        return active.status, active.value

    def wait(self, run_id: str, timeout: float) -> str | None:
        active = self._runs.get(run_id)
        if active is None:
            return None
        active.done.wait(timeout)
        return active.status

    def _service(self, store_url: str, cache_url: str | None = None, checkpoints_url: str | None = None,
                 lease_s: float | None = None) -> Any:
        """One service per (store, cache, checkpoints) the runs name: each has its writer and
        its cache (an in-memory cache tier lives in this actor, shared by the runs it drives)."""
        with self._lock:
            key = (store_url, cache_url, checkpoints_url, lease_s)
            service = self._services.get(key)
            if service is None:
                settings = self._settings_type(store_url=store_url, cache_url=cache_url,
                                               checkpoints_url=checkpoints_url or "off",   # None: none kept
                                               lease_s=lease_s)
                service = self._services[key] = self._service_type(settings)
                threading.Thread(target=self._sweep, args=(service,), name="rayflow-tracker-sweep", daemon=True).start()
            return service

    def _sweep(self, service: Any) -> None:
        """Resume, in this tracker, the runs of ``service``'s store whose driver is gone
        (a script, a tracker or a server that died: its lease lapsed) and that any process
        can plan again; every half lease. Queued runs are left to the servers."""
        while True:
            time.sleep(max(SWEEP_MIN_S, service.lease_s() / 2))
            try:
                orphans = [r for r in service.resumable(limit=SWEEP_BATCH) if r.owner and _replannable(r)]
            except Exception as exc:  # noqa: BLE001 - the store is down: the next turn tries again
                log.warning("tracker: could not look for orphaned runs: %s", str(exc)[:200])
                continue
            for run in orphans:
                try:
                    service.resume(run.run_id, background=True)
                    log.warning("tracker: run %s lost its driver (%s); resumed here", run.run_id, run.owner)
                except RunBusy:
                    pass   # another claimer was quicker
                except Exception as exc:  # noqa: BLE001 - one run that cannot resume must not stop the sweep
                    log.warning("tracker: run %s lost its driver and could not be resumed here: %s", run.run_id,
                                str(exc)[:200])

    def _drive(self, active: Any, service: Any) -> None:
        active.execute()
        try:
            service.ran_one(active)   # the resource model learns where runs are driven
        except Exception:  # noqa: BLE001 - a refit that cannot start must not lose the run's end
            log.exception("tracker: the resource model's refit after run %s failed", active.run.run_id)
        with self._lock:
            self._finished.append(active.run.run_id)
            while len(self._finished) > KEEP_FINISHED:
                self._runs.pop(self._finished.pop(0), None)


def _replannable(run: RunRecord) -> bool:
    return bool(run.spec) or bool(run.target) and not run.target.startswith("__main__:")


@functools.cache
def _tracker_class() -> Any:
    return ray.remote(RunTracker)   # made once per process, not at every hand-over


def create_tracker(node: str) -> Any:
    """The cluster's tracker actor (created here unless it exists), placed on ``node``."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return _tracker_class().options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0,
        max_concurrency=MAX_CALLS, max_restarts=-1,   # restarted by Ray when its process dies
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=True),
    ).remote()


def tracker() -> Any:
    """The cluster's tracker actor, created on first use on this driver's node (so a SQLite
    store path means the same file for both): by a host process started here (see
    rayflow.server.tracker_host: the tracker's Ray job must outlive this process), or, when
    hosting is off or fails, by this process."""
    found = _existing()
    if found is not None:
        return found
    node = ray.get_runtime_context().get_node_id()
    if config.tracker_hosted() and not _ray_client():
        hosted = _start_host(node)
        if hosted is not None:
            return hosted
    return create_tracker(node)


def _existing() -> Any:
    """The cluster's tracker actor when it exists, else None."""
    try:
        return ray.get_actor(NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def _ray_client() -> bool:
    """Connected through Ray Client (``ray://``): no process here could host a job there."""
    from ray.util.client import ray as client

    return bool(client.is_connected())


def _start_host(node: str) -> Any:
    """Start the tracker's host and wait for the tracker it creates; None when it could not."""
    logs = config.home() / "logs"
    try:
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        runtime_env = json.dumps(dict(ray.get_runtime_context().runtime_env or {}))
    except (OSError, TypeError, ValueError) as exc:
        log.warning("the tracker's host could not be started (%s); this process creates the tracker", exc)
        return None
    # the runtime_env (its env_vars may hold secrets) through the environment, never argv
    env = {**os.environ, HOST_ENV_VAR: runtime_env}
    cmd = [sys.executable, "-m", "rayflow.server.tracker_host", "--address", ray.get_runtime_context().gcs_address,
           "--node", node]
    fd = os.open(logs / "tracker-host.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True,
                                cwd=os.getcwd(), env=env)
    finally:
        os.close(fd)
    deadline = time.monotonic() + HOST_WAIT_S
    while time.monotonic() < deadline:
        exited = proc.poll() is not None   # (then another host may have been quicker: look once more)
        found = _existing()
        if found is not None:
            return found
        if exited:
            break
        time.sleep(0.05)
    log.warning("the tracker's host did not create the tracker within %.0f s (see %s); this process creates it",
                HOST_WAIT_S, logs / "tracker-host.log")
    return None


def hand_over(plan: Plan, run: RunRecord, store_url: str, checkpoints_url: str | None = None,
              cache_url: str | None = None, lease_s: float | None = None) -> tuple[Any, bool]:
    """Start ``run`` (recorded queued) in the tracker, which claims its lease; return the
    tracker handle, and whether it took the run (False: another driver claimed it first)."""
    actor = tracker()
    plan_blob, function_blobs = encode_plan(plan)
    where = Sealed((store_url, checkpoints_url, cache_url))   # passwords: never a Ray argument (docs/security.md)
    taken = ray.get(actor.start_plan.remote(plan_blob, function_blobs, run.to_dict(), where, lease_s))
    return actor, bool(taken)


class TrackerHost:
    """The service's ``RunHost`` on a Ray cluster: hands runs to the tracker actor."""

    def hand_over(self, plan: Plan, run: RunRecord, where: HandOver, fallback: RunView) -> RunView:
        actor, taken = hand_over(plan, run, where.store_url, where.checkpoints_url, where.cache_url, where.lease_s)
        return TrackerView(actor, run.run_id, fallback) if taken else fallback


class TrackerView:
    """A ``RunView`` of a run the tracker drives: each call one small Ray call while the
    tracker holds the run, then ``fallback`` (the run store) once it no longer does."""

    def __init__(self, actor: Any, run_id: str, fallback: RunView) -> None:
        self._actor = actor
        self._run_id = run_id
        self._fallback = fallback
        self._gone = False

    @property
    def run_id(self) -> str:
        return self._run_id

    def _ask(self, method: str, *args: Any) -> Any:
        """The tracker's answer; None (the store answers) once the tracker is gone."""
        if self._gone:
            return None
        try:
            return ray.get(getattr(self._actor, method).remote(self._run_id, *args))
        except ray.exceptions.ActorUnavailableError:
            return None   # restarting: the store answers meanwhile
        except ray.exceptions.RayActorError:
            self._gone = True   # died: its leases lapse, and waiting on the store takes the run over
            return None

    def record(self) -> RunRecord:
        return self._fallback.record()

    def status(self) -> str:
        return self._ask("status") or self._fallback.status()

    def progress(self) -> dict[str, int]:
        live = self._ask("progress")
        return live if live is not None else self._fallback.progress()

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        return self._ask("stream_progress") or {}

    def metrics(self) -> dict[str, Any]:
        live = self._ask("metrics")
        return live if live is not None else self._fallback.metrics()

    def cancel(self) -> None:
        if not self._ask("cancel"):
            self._fallback.cancel()

    def wait(self, timeout: float | None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            status = self._ask("wait", step)
            if status is None:
                break  # the tracker no longer holds it: the store has the outcome
            if status in TERMINAL_RUN_STATES:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise timed_out(self._run_id, status, timeout)
        return self._fallback.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def result(self) -> Any:
        final = self._ask("result")
        if final is not None and final[0] == "SUCCEEDED":
            return final[1]
        return self._fallback.result()

    def failure(self) -> WorkflowFailed:
        return self._fallback.failure()

    def logs(self, component: str, attempt: int | None) -> str:
        return self._fallback.logs(component, attempt)   # the log location, as any process reads it
