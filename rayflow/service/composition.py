"""The adapter factory of the service: what a run is built from, opened on first use.

Owns building, from ``Settings`` (``rf.init`` arguments, then the ``RAYFLOW_*``
variables through ``rayflow.core.config``, then defaults): the run store and its
writer, the result cache, the checkpoint store, the executors and the Ray
connection, the cluster's shape, the resource model's life (load, train, retrain in
the background), planning with it, and ``active_run``: the one factory of an
``ActiveRun`` with all of them wired. Run operations (submit, resume, ...) are in
``rayflow.service.operations``. Ray is imported only through rayflow.execute.ray.*
and only when a Ray run needs it; must not import rayflow.server.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from rayflow.core import config
from rayflow.core.errors import ConfigError
from rayflow.execute.cached import CachedExecutor
from rayflow.execute.local import LocalExecutor
from rayflow.execute.port import Executor
from rayflow.plan import Plan, make_plan
from rayflow.plan.planner import check_cluster
from rayflow.runs.active import ActiveRun
from rayflow.runs.leases import LeaseKeeper
from rayflow.service.settings import (
    CLUSTER_TTL_S,
    EXECUTORS,
    REFIT_EVERY_RUNS,
    WRITE_INTERVAL_S,
    YOUNG_MODEL_SAMPLES,
    Settings,
)
from rayflow.spec.targets import blueprint_of
from rayflow.store import RunStore, open_store
from rayflow.store.checkpoints import Checkpoint, CheckpointStore, checkpoint_url
from rayflow.store.logs import LogStore, log_url
from rayflow.store.port import ComponentRecord, Lease, RunRecord
from rayflow.store.writer import StoreWriter

log = logging.getLogger("rayflow")

MODEL_CHECK_S = 2.0   # a trained model in use: ask the store for a newer one at most this often


def _ray_connected() -> bool:
    """Whether this process is connected to Ray (without loading ray when it is not)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


class Composition:
    """The adapters of one service (thread-safe); ``Service`` adds the run operations."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._store: RunStore | None = None
        self._writer: StoreWriter | None = None
        self._cluster: tuple[float, Any] | None = None
        self._checkpoints: tuple[str | None, CheckpointStore | None] | None = None
        self._logs: tuple[str | None, LogStore | None] | None = None
        self._cache: Any = None
        self._model: tuple[float | None, Any] | None = None   # (saved_at in the store, ResourceModel) once read
        self._model_read_at = -MODEL_CHECK_S   # monotonic time the store was last asked for its model
        self._runs_since_fit = 0
        self._fitting = False
        self._lock = threading.RLock()
        self._leases = LeaseKeeper(lambda: self.store, self.lease_s)

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

    def lease_s(self) -> float:
        """How long an owner of a run may stay silent before another may take the run."""
        return self.settings.configured_lease_s()

    @property
    def leases(self) -> LeaseKeeper:
        """Keeps the leases of the runs this process drives live (see rayflow.runs.leases)."""
        return self._leases

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

    def log_store(self) -> LogStore | None:
        """Where runs keep their attempts' logs (None when capture is turned off)."""
        with self._lock:
            url = log_url(self.settings.logs_url, self.settings.checkpoints_url)
            if self._logs is None or self._logs[0] != url:
                self._logs = (url, LogStore(url) if url is not None else None)
            return self._logs[1]

    def configure(self, *, address: str | None = None, store: str | None = None,
                  cache: str | None = None, num_cpus: int | None = None,
                  checkpoints: str | None = None) -> None:
        with self._lock:
            if checkpoints is not None:
                self.settings.checkpoints_url = checkpoints
            if store is not None and store != self.settings.store_url:
                self.close_store()
                self.settings.store_url = store
                self._model, self._model_read_at = None, -MODEL_CHECK_S   # one model per store
            if address is not None:
                self.settings.address = address
            if cache is not None and cache != self.settings.cache_url:
                self.settings.cache_url = cache
                self._close_cache()
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
        forced = config.tracker_forced()
        if forced is not None:
            return forced
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
        driver): as configured, password included (``store.url`` never shows one). So it
        goes through an environment variable or sealed in Ray's object store, never on a
        command line nor as a Ray argument (docs/security.md)."""
        return self.settings.configured_store_url() or self.store.url

    def close_store(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._store is not None:
                self._store.close()
                self._store = None

    def _close_cache(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None

    def close_adapters(self) -> None:
        """Forget the cluster's shape, close the store and the cache (opened again on use)."""
        self._cluster = None
        self.close_store()
        self._close_cache()

    # -- a run, wired -----------------------------------------------------------------

    def active_run(self, plan: Plan, run: RunRecord, executor: str, *,
                   restored: dict[str, Checkpoint] | None = None,
                   earlier: dict[str, ComponentRecord] | None = None, first_seq: int = 0,
                   lease: Lease | None = None, cache: Any = None) -> ActiveRun:
        """The one way an ``ActiveRun`` is made: this service's writer and store, the
        executor named, the checkpoint store, the run's cache (``cache``, as ``plan_cached``
        looked it up, else a new one) and the out-of-memory resizer, under ``lease`` (fenced
        writes) when given. A cache ``complete`` for the run: nothing runs, so nothing
        connects to a cluster (in a process connected to Ray, its executor places what the
        memory tier holds as object references)."""
        cache = cache if cache is not None else self.run_cache(plan)
        if cache is not None and cache.complete:
            runner = self.executor(executor) if _ray_connected() else CachedExecutor(executor)
            return ActiveRun(self, plan, run, runner, checkpoints=self.checkpoint_store(), cache=cache, lease=lease)
        return ActiveRun(self, plan, run, self.executor(executor), checkpoints=self.checkpoint_store(),
                         logs=self.log_store(),
                         restored=restored, earlier=earlier, first_seq=first_seq,
                         cache=cache, resize=self.oom_resizer(executor), lease=lease)

    # -- planning, with the resource model ----------------------------------------------

    def explain(self, target: Any, inputs: dict[str, Any]) -> Plan:
        return make_plan(blueprint_of(target, inputs), require_functions=False)

    def check(self, target: Any, inputs: dict[str, Any]) -> Plan:
        """Every check planning makes (the spec, the inputs, the functions import) without
        the resource model or the cluster: what a server does before it accepts a run."""
        return make_plan(blueprint_of(target, inputs))

    def plan(self, target: Any, inputs: dict[str, Any], executor: str) -> Plan:
        """One planning pass: the resource model orders and sizes through the planner's
        sizing port (asked only once the blueprint checked out), then the cluster check."""
        plan = self._planned(target, inputs, executor)
        if executor == "ray":
            self._check_on_cluster(plan)
        return plan

    def plan_cached(self, target: Any, inputs: dict[str, Any], executor: str) -> tuple[Plan, Any]:
        """``plan`` for a new run, and the run's cache looked up ahead (``RunCache.holds_all``)
        when every component has a cache key (else None). When it holds every output
        (``complete``) the run needs no cluster: nothing connects to Ray for it."""
        plan = self._planned(target, inputs, executor)
        cache = self.cache_ahead(plan) if executor == "ray" else None
        if executor == "ray" and not (cache is not None and cache.complete):
            self._check_on_cluster(plan)
        return plan, cache

    def _planned(self, target: Any, inputs: dict[str, Any], executor: str) -> Plan:
        blueprint = blueprint_of(target, inputs)
        return make_plan(blueprint, sizing=self._sizing(blueprint, executor))

    def _check_on_cluster(self, plan: Plan) -> None:
        self.connect_ray()
        cluster = self.cluster("ray")
        if cluster is not None:
            check_cluster(plan, cluster)

    def cache_ahead(self, plan: Plan) -> Any:
        """The run's cache (a RunCache) with every component of ``plan`` looked up now, up
        to the first miss; None when one has no cache key or no cache is configured."""
        if not plan.tasks or any(t.cache_key is None for t in plan.tasks.values()):
            return None
        cache = self.run_cache(plan)
        if cache is not None:
            cache.holds_all(plan.tasks.values())
        return cache

    def _sizing(self, blueprint: Any, executor: str) -> Any:
        """The model's sizing port for ``blueprint``, or None when no model applies: it
        orders by predicted durations where the model knows the components, and sizes the
        ``sizing="auto"`` ones (the model trained now if the store has none)."""
        auto = any(c.options.sizing == "auto" for c in blueprint.calls.values())
        if not auto and not self.model_saved():
            return None
        from rayflow.predict.history import ModelSizing

        def cluster() -> Any:
            if executor != "ray":
                return None
            self.connect_ray()
            return self.cluster(executor)

        return ModelSizing(lambda: self.resource_model(required=auto), cluster, order=self.settings.predicted_order)

    def model_saved(self) -> bool:
        """Whether the run store keeps a trained resource model that verifies here."""
        return self._stored_model() is not None

    def resource_model(self, *, required: bool = False) -> Any:
        """The run store's resource model (read again when another process saved a newer
        one); with ``required`` and none usable, one trained now from the store's history
        (it answers with the rules until a component has 5 samples; saved once it learned one)."""
        model = self._stored_model()
        if model is None and required:
            with self._lock:
                kept = self._model[1] if self._model is not None else None
            model = kept if kept is not None else self.train_model()
        return model

    def train_model(self) -> Any:
        """Train the resource model on the store's history, save it there when it learned
        some component, and use it from now on in this process. Returns the ResourceModel."""
        from rayflow.predict import history

        model = history.train(self.store)
        at = history.saved_at(self.store) if history.trained(model) else None
        with self._lock:
            self._model, self._model_read_at = (at, model), time.monotonic()
        return model

    def _stored_model(self) -> Any:
        """The trained model the store keeps, or None. One in use is checked against the
        store at most every MODEL_CHECK_S; saved bytes are decoded (their signature verified
        first) only when their ``saved_at`` changed, so bytes that do not verify are
        refused with one warning, not at every plan."""
        from rayflow.predict import history

        with self._lock:
            kept, read_at = self._model, self._model_read_at
        if time.monotonic() - read_at < MODEL_CHECK_S:   # asked lately (a plan per run: not a query per run)
            return kept[1] if kept is not None and history.trained(kept[1]) else None
        row = self.store.load_model(history.MODEL_NAME)
        if row is None:   # none saved: an untrained model of this process stays (the rules answer)
            with self._lock:
                if kept is not None and kept[0] is not None:
                    self._model = None
                self._model_read_at = time.monotonic()
            return None
        if kept is not None and kept[0] == row[1]:   # the version in use (or one refused already)
            with self._lock:
                self._model_read_at = time.monotonic()
            return kept[1]
        model, at = history.from_row(row, where=self.store.url)
        with self._lock:
            self._model, self._model_read_at = (at, model), time.monotonic()
        return model

    def oom_resizer(self, executor: str) -> Any:
        """What retries a component killed for memory with a larger request (Ray runs only)."""
        if executor != "ray":
            return None
        from rayflow.predict.history import OomResizer

        cluster = self.cluster(executor)
        return OomResizer(self.resource_model(), cluster.largest("memory") if cluster is not None else 0)

    def ran_one(self, active: Any = None) -> None:
        """After each run this process drove (``active``: it, when known): retrain the model
        in the background, and save it into the store, when one is in use (this process
        planned with one, the run had ``sizing="auto"`` or ``fuse=True`` components -- a
        fused group is sized by its members' predicted durations -- or the store keeps a
        model): after every run while it learned from fewer than YOUNG_MODEL_SAMPLES
        attempts, then every REFIT_EVERY_RUNS runs."""
        auto = active is not None and any(t.options.sizing == "auto" or t.options.fuse is True
                                          for t in active.plan.tasks.values())
        with self._lock:
            self._runs_since_fit += 1
            model = self._model[1] if self._model is not None else None
            every = 1 if model is None or model.n_samples < YOUNG_MODEL_SAMPLES else REFIT_EVERY_RUNS
            due = self._runs_since_fit >= every and not self._fitting
            if due:
                self._fitting = True
        if due:
            in_use = self._model is not None or auto
            # not a daemon: the interpreter waits for a refit at exit; a daemon thread still inside
            # scikit-learn's native code then aborted the process ("terminate called without an
            # active exception", exit -6) after `rayflow run` had printed its result
            threading.Thread(target=self._refit, args=(in_use,), name="rayflow-model-refit", daemon=False).start()

    def _refit(self, in_use: bool) -> None:
        try:
            if in_use or self.model_saved():
                with self._lock:
                    self._runs_since_fit = 0
                self.train_model()
        except Exception:  # noqa: BLE001 - the old model stays in use
            log.exception("retraining the resource model failed")
        finally:
            with self._lock:
                self._fitting = False
