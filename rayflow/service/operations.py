"""The composition root: configuration, adapters, and the operations every front end calls.

Owns building the store, the writer and the executor from configuration
(``rf.init`` arguments, then RAYFLOW_STORE / RAY_ADDRESS, then defaults), and the
run operations: explain, submit, run, get_run, list_runs. The Python API, the CLI
and (later) the HTTP API are thin layers over one ``Service``. Ray is imported
only through rayflow.execute.ray_* and only when a Ray run needs it.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from rayflow.core import gcpause
from rayflow.core.errors import ConfigError, RayflowError, RunBusy, RunNotFound
from rayflow.execute.local import LocalExecutor
from rayflow.execute.port import Executor
from rayflow.plan import Plan, make_plan
from rayflow.plan.planner import check_cluster
from rayflow.runs.handle import ActiveRun, RunHandle, lease_s, owner_id
from rayflow.spec.targets import blueprint_of
from rayflow.store import RunStore, open_store
from rayflow.store.checkpoints import CheckpointStore, checkpoint_url
from rayflow.store.port import RunRecord
from rayflow.store.writer import StoreWriter

log = logging.getLogger("rayflow")

EXECUTORS = ("ray", "local")
CLUSTER_TTL_S = 5.0
REFIT_EVERY_RUNS = 20      # the resource model is retrained in the background after this many runs ...
YOUNG_MODEL_SAMPLES = 200  # ... and after every run while it learned from fewer samples than this
WRITE_INTERVAL_S = 1.0   # how stale another process's view of a live run may be


@dataclass
class Settings:
    address: str | None = None
    store_url: str | None = None      # None: RAYFLOW_STORE or the default SQLite file
    cache_url: str | None = None      # None: RAYFLOW_CACHE or in-process memory; "off"
    num_cpus: int | None = None
    checkpoints_url: str | None = None   # None: RAYFLOW_CHECKPOINTS or ~/.rayflow/checkpoints; "off"
    predicted_order: bool = True      # order ready components by the model's durations when it knows them


class Service:
    """One per process (see ``get_service``); thread-safe."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._store: RunStore | None = None
        self._writer: StoreWriter | None = None
        self._active: dict[str, ActiveRun] = {}
        self._cluster: tuple[float, Any] | None = None
        self._checkpoints: tuple[str | None, CheckpointStore | None] | None = None
        self._cache: Any = None
        self._model: tuple[float, Any] | None = None   # (file mtime, ResourceModel) once loaded
        self._runs_since_fit = 0
        self._fitting = False
        self._lock = threading.RLock()

    # -- adapters ----------------------------------------------------------------------

    @property
    def store(self) -> RunStore:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings.store_url)
            return self._store

    @property
    def writer(self) -> StoreWriter:
        with self._lock:
            if self._writer is None:
                self._writer = StoreWriter(self.store, flush_interval_s=WRITE_INTERVAL_S)
            return self._writer

    def cache(self) -> Any:
        """The result cache (a ``MultiLevelCache``), opened on first use."""
        with self._lock:
            if self._cache is None:
                from rayflow.cache import open_cache

                self._cache = open_cache(self.settings.cache_url)
            return self._cache

    def run_cache(self, plan: Plan) -> Any:
        """What a run of ``plan`` looks results up in: None when no component has a key."""
        if not any(t.cache_key is not None for t in plan.tasks.values()):
            return None
        from rayflow.cache.runs import RunCache

        cache = self.cache()
        if not cache.tiers:
            return None
        from rayflow.cache.urls import shared_urls

        return RunCache(cache, shared_urls(self.settings.cache_url))

    def checkpoint_store(self) -> CheckpointStore | None:
        """Where runs keep their components' outputs (None when turned off)."""
        with self._lock:
            url = checkpoint_url(self.settings.checkpoints_url)
            if self._checkpoints is None or self._checkpoints[0] != url:
                self._checkpoints = (url, CheckpointStore(url) if url is not None else None)
            return self._checkpoints[1]

    def configure(self, *, address: str | None = None, store: str | None = None,
                  cache: str | None = None, num_cpus: int | None = None,
                  checkpoints: str | None = None) -> None:
        with self._lock:
            if checkpoints is not None:
                self.settings.checkpoints_url = checkpoints
            if store is not None and store != self.settings.store_url:
                self.close_store()
                self.settings.store_url = store
            if address is not None:
                self.settings.address = address
            if cache is not None and cache != self.settings.cache_url:
                self.settings.cache_url = cache
                if self._cache is not None:
                    self._cache.close()
                    self._cache = None
            if num_cpus is not None:
                self.settings.num_cpus = num_cpus
        self.store  # noqa: B018 - open now so a bad URL fails at init
        self.checkpoint_store()   # and a bad checkpoint location too

    def connect_ray(self) -> None:
        from rayflow.execute.ray.session import ensure_ray

        ensure_ray(self.settings.address, num_cpus=self.settings.num_cpus)

    def executor(self, name: str) -> Executor:
        if name == "local":
            return LocalExecutor()
        if name == "ray":
            self.connect_ray()
            from rayflow.execute.ray.executor import RayExecutor

            return RayExecutor()
        raise ConfigError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")

    def use_tracker(self) -> bool:
        """Drive runs in the cluster's tracker actor (so they outlive this process) when
        this process joined a cluster started elsewhere and the store is shared (not memory).
        RAYFLOW_TRACKER=0 or 1 forces it off or on."""
        forced = os.environ.get("RAYFLOW_TRACKER")
        if forced in ("0", "1"):
            return forced == "1"
        if self.store.url.startswith("memory:"):
            return False
        from rayflow.execute.ray.session import cluster_outlives_process

        return cluster_outlives_process()

    def cluster(self, executor: str):
        """The alive nodes' resources, read at most every CLUSTER_TTL_S (many small runs share it)."""
        if executor != "ray":
            return None
        from rayflow.execute.ray.session import cluster_shape

        now = time.monotonic()
        cached = self._cluster
        if cached is None or now - cached[0] > CLUSTER_TTL_S:
            cached = self._cluster = (now, cluster_shape())
        return cached[1]

    def store_url_for_others(self) -> str:
        """The store URL to hand to another process of ours (the run tracker, a spawned
        driver): as configured, password included (``store.url`` never shows one)."""
        from rayflow.store.urls import STORE_ENV_VAR

        return self.settings.store_url or os.environ.get(STORE_ENV_VAR) or self.store.url

    def close_store(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- operations --------------------------------------------------------------------

    def explain(self, target: Any, inputs: dict[str, Any]) -> Plan:
        return make_plan(blueprint_of(target, inputs), require_functions=False)

    def plan(self, target: Any, inputs: dict[str, Any], executor: str) -> Plan:
        blueprint = blueprint_of(target, inputs)
        plan = make_plan(blueprint)
        cluster = None
        if executor == "ray":
            self.connect_ray()
            cluster = self.cluster(executor)
        plan = self._with_model(blueprint, plan, cluster)
        if cluster is not None:
            check_cluster(plan, cluster)
        return plan

    # -- the resource model ------------------------------------------------------------------

    def resource_model(self, *, required: bool = False) -> Any:
        """The saved resource model (reloaded when its file changes); with ``required``
        and none saved, one trained now from the store's history (rules until 5 samples)."""
        from rayflow.predict import history

        path = history.model_path()
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = None
        with self._lock:
            if mtime is not None and (self._model is None or self._model[0] != mtime):
                self._model = (mtime, history.load())
            model = self._model[1] if self._model is not None else None
        if model is None and required:
            model = history.train(self.store)
            with self._lock:
                self._model = (history.model_path().stat().st_mtime, model)
        return model

    def oom_resizer(self, executor: str) -> Any:
        """What retries a component killed for memory with a larger request (Ray runs only)."""
        if executor != "ray":
            return None
        from rayflow.predict.history import OomResizer

        cluster = self.cluster(executor)
        return OomResizer(self.resource_model() if history_saved() else None,
                          cluster.largest("memory") if cluster is not None else 0)

    def _with_model(self, blueprint: Any, plan: Plan, cluster: Any) -> Plan:
        """Order by predicted durations where the model knows the components, and size the
        ``sizing="auto"`` ones (the model trained now if none was saved)."""
        auto = any(t.options.sizing == "auto" for t in plan.tasks.values())
        if not auto and not history_saved():
            return plan
        from rayflow.predict import history

        model = self.resource_model(required=auto)
        if model is None:
            return plan
        estimates = history.duration_estimates(plan, model) if self.settings.predicted_order else {}
        if estimates:
            plan = make_plan(blueprint, estimates=estimates)
        if auto:
            for cid, reason in history.size_plan(plan, model, cluster).items():
                log.info("component %r sized: %s", cid, reason)
        return plan

    def _ran_one(self) -> None:
        """After each run: retrain the model in the background every REFIT_EVERY_RUNS runs,
        once a model is in use."""
        with self._lock:
            self._runs_since_fit += 1
            model = self._model[1] if self._model is not None else None
            every = 1 if model is None or model.n_samples < YOUNG_MODEL_SAMPLES else REFIT_EVERY_RUNS
            due = self._model is not None and self._runs_since_fit >= every and not self._fitting
            if due:
                self._runs_since_fit, self._fitting = 0, True
        if due:
            threading.Thread(target=self._refit, name="rayflow-model-refit", daemon=True).start()

    def _refit(self) -> None:
        from rayflow.predict import history

        try:
            history.train(self.store)
        except Exception:  # noqa: BLE001 - the old model stays in use
            log.exception("retraining the resource model failed")
        finally:
            with self._lock:
                self._fitting = False

    def submit(self, target: Any, inputs: dict[str, Any], *, executor: str = "ray",
               run_id: str | None = None, background: bool = True) -> RunHandle:
        """Plan, record, and start a run; with ``background=False`` drive it in this thread."""
        if run_id is not None:
            existing = self._existing(run_id)
            if existing is not None:
                return existing
        with gcpause.paused():   # tracing and planning allocate in bursts; collect after
            plan = self.plan(target, inputs, executor)
            if background:
                return self.start(plan, executor=executor, run_id=run_id, background=True)
        return self.start(plan, executor=executor, run_id=run_id, background=False)

    def start(self, plan: Plan, *, executor: str = "ray", run_id: str | None = None,
              background: bool = True) -> RunHandle:
        run = self.record_new_run(plan, run_id)
        if executor == "ray" and background and self.use_tracker():
            from rayflow.cache.urls import CACHE_ENV_VAR
            from rayflow.server.tracker import TrackerClient, hand_over

            ckpt = self.checkpoint_store()
            actor = hand_over(plan, run, self.store_url_for_others(), ckpt.url if ckpt is not None else None,
                              self.settings.cache_url or os.environ.get(CACHE_ENV_VAR))
            return RunHandle(run.run_id, self, tracker=TrackerClient(actor, run.run_id))
        active = ActiveRun(self, plan, run, self.executor(executor), checkpoints=self.checkpoint_store(),
                           cache=self.run_cache(plan), resize=self.oom_resizer(executor))
        with self._lock:
            self._active[run.run_id] = active
        if background:
            thread = threading.Thread(target=self._drive, args=(active,), name=f"rayflow-run-{run.run_id}", daemon=True)
            thread.start()
        else:
            self._drive(active)
        return RunHandle(run.run_id, self, active)

    def _drive(self, active: ActiveRun) -> None:
        try:
            active.execute()
        finally:
            with self._lock:
                self._active.pop(active.run.run_id, None)
            self._ran_one()

    def record_new_run(self, plan: Plan, run_id: str | None) -> RunRecord:
        run = RunRecord(
            run_id=run_id or new_run_id(plan.name),
            name=plan.name,
            status="PENDING",
            created_at=time.time(),
            target=plan.target,
            inputs=_json_inputs(plan.inputs),
            n_components=len(plan.tasks),
            owner=owner_id(),
            heartbeat_at=time.time(),
        )
        self.store.create_run(run, [])   # component rows follow through the writer (ActiveRun)
        return run

    def _existing(self, run_id: str) -> RunHandle | None:
        with self._lock:
            active = self._active.get(run_id)
        if active is not None:
            return RunHandle(run_id, self, active)
        if self.store.get_run(run_id) is not None:
            return RunHandle(run_id, self)
        return None

    def get_run(self, run_id: str) -> RunHandle:
        handle = self._existing(run_id)
        if handle is None:
            raise RunNotFound(run_id)
        return handle

    def adopt(self, run_id: str, target: Any, *, executor: str = "ray") -> RunHandle:
        """Drive, in this process, a run another process recorded as PENDING (``rayflow submit``)."""
        run = self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status != "PENDING":
            raise RayflowError(f"run {run_id} is {run.status}; only a PENDING run can be started")
        plan = self.plan(target, dict(run.inputs), executor)
        active = ActiveRun(self, plan, run, self.executor(executor), checkpoints=self.checkpoint_store(),
                           cache=self.run_cache(plan), resize=self.oom_resizer(executor))
        with self._lock:
            self._active[run_id] = active
        self._drive(active)
        return RunHandle(run_id, self, active)

    def resume(self, run_id: str, *, target: Any = None, executor: str = "ray", force: bool = False,
               background: bool = True) -> RunHandle:
        """Finish a run that did not succeed, running only what has no checkpoint.

        Takes the run's lease first (``RunBusy`` while another process drives it; ``force``
        takes it anyway). ``target``: the workflow, when the recorded one cannot be
        imported here (one defined in a script's ``__main__``)."""
        with self._lock:
            if run_id in self._active:
                return RunHandle(run_id, self, self._active[run_id])
        self.flush()
        run = self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status == "SUCCEEDED":
            return RunHandle(run_id, self)
        _check_resumable_inputs(run)
        plan = self.plan(target if target is not None else _recorded_target(run), dict(run.inputs), executor)
        now = time.time()
        stale_before = float("inf") if force or _owner_gone(run.owner) else now - lease_s()
        if not self.store.claim_run(run_id, owner_id(), now, stale_before):
            again = self.store.get_run(run_id)
            owner, beat = (again.owner, again.heartbeat_at) if again else ("?", None)
            age = f"{now - beat:.0f} s ago" if beat else "never"
            raise RunBusy(f"run {run_id} is driven by {owner} (last heartbeat {age}); it can be resumed once "
                          f"that is older than {lease_s():.0f} s (RAYFLOW_LEASE_S), or with force",
                          run_id=run_id)
        ckpt = self.checkpoint_store()
        found = ckpt.index(run_id) if ckpt is not None else {}
        restored = {cid: c for cid, c in found.items() if cid in plan.tasks}
        earlier = {c.component_id: c for c in self.store.get_components(run_id)}
        events = self.store.get_events(run_id, after_seq=0, limit=10_000_000)
        run.status = "RUNNING"
        active = ActiveRun(self, plan, run, self.executor(executor), checkpoints=ckpt, restored=restored,
                           earlier=earlier, first_seq=events[-1].seq if events else 0, cache=self.run_cache(plan),
                           resize=self.oom_resizer(executor))
        with self._lock:
            self._active[run_id] = active
        if background:
            threading.Thread(target=self._drive, args=(active,), name=f"rayflow-run-{run_id}", daemon=True).start()
        else:
            self._drive(active)
        return RunHandle(run_id, self, active)

    def resumable(self, limit: int = 100) -> list[RunRecord]:
        """Runs not final whose owner stopped heartbeating (it crashed or was killed)."""
        self.flush()
        stale_before = time.time() - lease_s()
        runs = [r for status in ("RUNNING", "PENDING") for r in self.store.list_runs(status=status, limit=100_000)]
        out = [r for r in runs if r.heartbeat_at is None or r.heartbeat_at < stale_before or _owner_gone(r.owner)]
        out.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return out[:limit]

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Newest first; ``status="RESUMABLE"``: unfinished runs whose owner went away."""
        if status == "RESUMABLE":
            return self.resumable(limit)
        self.flush()
        return self.store.list_runs(status=status, limit=limit)

    def stats(self, *, limit: int = 100, name: str | None = None, status: str | None = None) -> dict[str, Any]:
        """Metrics across the newest ``limit`` runs (optionally of one workflow ``name``)."""
        from rayflow.metrics.aggregate import aggregate

        runs = [r for r in self.list_runs(status=status, limit=limit) if name is None or r.name == name]
        components = [c for r in runs for c in self.store.get_components(r.run_id)]
        out = aggregate(runs, components)
        pool = getattr(self.store, "pool_stats", None)   # a store with a connection pool (PostgreSQL)
        out["store"] = {"url": self.store.url, **({"pool": pool()} if pool is not None else {})}
        return out

    def flush(self) -> None:
        with self._lock:
            writer = self._writer
        if writer is not None:
            writer.flush(timeout=10)

    def shutdown(self, *, wait_s: float = 2.0) -> None:
        """At exit: cancel runs still in flight here, record it, close the store."""
        with self._lock:
            active = list(self._active.values())
        for run in active:
            run.error = "rayflow shut down (or its process exited) before the run finished"
            run.cancel_event.set()
        for run in active:
            run.done.wait(wait_s)
        self._cluster = None
        self.close_store()
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None


def new_run_id(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40] or "run"
    return f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


NOT_JSON = "$not_json"   # marks a recorded input that only its repr could keep


def _json_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    import json

    out = {}
    for key, value in inputs.items():
        try:
            json.dumps(value)
            out[key] = value
        except (TypeError, ValueError):
            out[key] = {NOT_JSON: repr(value)[:200]}
    return out


def _check_resumable_inputs(run: RunRecord) -> None:
    kept = [k for k, v in run.inputs.items() if isinstance(v, dict) and NOT_JSON in v]
    if kept:
        raise RayflowError(f"run {run.run_id} cannot be resumed: its input {kept[0]!r} was not a JSON value, "
                           "so the run store only kept its repr; submit the workflow again")


def _recorded_target(run: RunRecord) -> str:
    if not run.target or run.target.startswith("__main__:"):
        raise RayflowError(f"run {run.run_id} ran {run.target or 'a workflow object'}, which another process "
                           "cannot import; resume it with the workflow: rf.resume(run_id, workflow=...)")
    return run.target


def _owner_gone(owner: str) -> bool:
    """True when ``owner`` (host:pid) is a process of this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


_SERVICE: Service | None = None
_SERVICE_LOCK = threading.Lock()


def get_service() -> Service:
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is None:
            _SERVICE = Service()
            atexit.register(_SERVICE.shutdown)
        return _SERVICE


def history_saved() -> bool:
    """Whether a trained resource model is saved (cheap: one stat; no scikit-learn import)."""
    from rayflow.predict.history import model_path

    return model_path().exists()
