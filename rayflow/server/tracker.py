"""The run tracker: one detached, named Ray actor (namespace ``rayflow``) that drives the
runs submitted to a cluster, so they outlive the process that submitted them.

The submitting process plans and records the run, then hands the plan to the tracker;
the tracker drives it with the same control loop, executor and recorder as an
in-process run (so no Ray call is made per component event: transitions are recorded
by the tracker itself, in batches, into the run store). Any process can then follow
the run through the store, or through the tracker while it is live. One tracker serves
every run (a thread each); it takes no CPU from the cluster (num_cpus=0).
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
import threading
from typing import Any

import ray
from ray import cloudpickle

from rayflow.execute.ray.executor import RayExecutor
from rayflow.plan import Plan
from rayflow.store.port import RunRecord

NAME = "tracker"
NAMESPACE = "rayflow"
MAX_CALLS = 256          # concurrent method calls the actor serves (status polls, starts)
KEEP_FINISHED = 1000     # finished runs kept in memory for result(); older ones live in the store
KEEP_FUNCTIONS = 1024    # distinct component functions the tracker keeps loaded


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
        from rayflow.service.operations import Service, Settings

        self._service_type, self._settings_type = Service, Settings
        self._services: dict[str, Any] = {}
        self._runs: dict[str, Any] = {}
        self._finished: list[str] = []
        self._functions: dict[bytes, Any] = {}   # sha256 of a pickled function -> the function
        self._lock = threading.Lock()

    def start(self, plan_blob: bytes, run: dict[str, Any], store_url: str, checkpoints_url: str | None = None,
              cache_url: str | None = None) -> str:
        """Drive a run whose plan was pickled whole (clients before ``start_plan``)."""
        return self._start(cloudpickle.loads(plan_blob), run, store_url, checkpoints_url, cache_url)

    def start_plan(self, plan_blob: bytes, function_blobs: list[bytes], run: dict[str, Any], store_url: str,
                   checkpoints_url: str | None = None, cache_url: str | None = None) -> str:
        """Drive a run handed over by ``encode_plan``: functions already loaded are reused."""
        plan = decode_plan(plan_blob, [self._function(b) for b in function_blobs])
        return self._start(plan, run, store_url, checkpoints_url, cache_url)

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

    def _start(self, plan: Plan, run: dict[str, Any], store_url: str, checkpoints_url: str | None,
               cache_url: str | None) -> str:
        from rayflow.runs.handle import ActiveRun
        from rayflow.store.checkpoints import CheckpointStore

        service = self._service(store_url, cache_url)
        checkpoints = CheckpointStore(checkpoints_url) if checkpoints_url else None
        active = ActiveRun(service, plan, RunRecord(**run), RayExecutor(), checkpoints=checkpoints,
                           cache=service.run_cache(plan), resize=service.oom_resizer("ray"))
        with self._lock:
            self._runs[active.run.run_id] = active
        threading.Thread(target=self._drive, args=(active,), name=f"rayflow-{active.run.run_id}",
                         daemon=True).start()
        return active.run.run_id

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

    def _service(self, store_url: str, cache_url: str | None = None) -> Any:
        """One service per (store, cache) the runs name: each has its writer and its cache
        (an in-memory cache tier lives in this actor, shared by the runs it drives)."""
        with self._lock:
            key = (store_url, cache_url)
            service = self._services.get(key)
            if service is None:
                settings = self._settings_type(store_url=store_url, cache_url=cache_url)
                service = self._services[key] = self._service_type(settings)
            return service

    def _drive(self, active: Any) -> None:
        active.execute()
        with self._lock:
            self._finished.append(active.run.run_id)
            while len(self._finished) > KEEP_FINISHED:
                self._runs.pop(self._finished.pop(0), None)


@functools.cache
def _tracker_class() -> Any:
    return ray.remote(RunTracker)   # made once per process, not at every hand-over


def tracker() -> Any:
    """The cluster's tracker actor, created on first use (on this driver's node, so a
    SQLite store path means the same file for both)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return _tracker_class().options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0,
        max_concurrency=MAX_CALLS,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=True),
    ).remote()


def hand_over(plan: Plan, run: RunRecord, store_url: str, checkpoints_url: str | None = None,
              cache_url: str | None = None) -> Any:
    """Start ``run`` in the tracker; return the tracker handle."""
    actor = tracker()
    try:
        method = actor.start_plan
    except AttributeError:   # a tracker started by an older rayflow
        ray.get(actor.start.remote(cloudpickle.dumps(plan), run.to_dict(), store_url, checkpoints_url, cache_url))
        return actor
    plan_blob, function_blobs = encode_plan(plan)
    ray.get(method.remote(plan_blob, function_blobs, run.to_dict(), store_url, checkpoints_url, cache_url))
    return actor


class TrackerClient:
    """What a RunHandle asks the tracker about one run (each call one small Ray call)."""

    def __init__(self, actor: Any, run_id: str) -> None:
        self._actor = actor
        self._run_id = run_id

    def status(self) -> str | None:
        return ray.get(self._actor.status.remote(self._run_id))

    def progress(self) -> dict[str, int] | None:
        return ray.get(self._actor.progress.remote(self._run_id))

    def metrics(self) -> dict[str, Any] | None:
        return ray.get(self._actor.metrics.remote(self._run_id))

    def stream_progress(self) -> dict[str, dict[str, Any]] | None:
        try:
            method = self._actor.stream_progress
        except AttributeError:   # a tracker started by an older rayflow: no stream progress
            return None
        return ray.get(method.remote(self._run_id))

    def cancel(self) -> bool:
        return ray.get(self._actor.cancel.remote(self._run_id))

    def wait(self, timeout: float) -> str | None:
        return ray.get(self._actor.wait.remote(self._run_id, timeout))

    def result(self) -> tuple[str, Any] | None:
        return ray.get(self._actor.result.remote(self._run_id))
