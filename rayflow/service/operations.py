"""The run operations every front end calls: one ``Service`` per process.

Owns submit, start, adopt, resume, drive_claimed (a server's claim), hand_back, get_run / list_runs /
resumable, stats, flush and
shutdown: recording a run, choosing where it is driven (this process, or a
registered ``RunHost`` such as the cluster's tracker), and giving back a
``RunHandle`` over the matching ``RunView``. The adapters and planning are
``rayflow.service.composition``'s; this module must not build adapters itself, must
not import rayflow.server (the host is registered through
``rayflow.service.hosting``), and must not import ray. The Python API, the CLI and
the server (``rayflow.server.plane``) are thin layers over one ``Service``.
"""

from __future__ import annotations

import atexit
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from rayflow.core import gcpause
from rayflow.core.errors import (
    DriverLost,
    NotResumable,
    RayflowError,
    RunBusy,
    RunExists,
    RunNotFound,
)
from rayflow.core.paths import check_run_id
from rayflow.plan import Plan
from rayflow.runs.active import ActiveRun
from rayflow.runs.handle import RunHandle
from rayflow.runs.owners import owner_gone, owner_id
from rayflow.runs.replay import reusable, trusted
from rayflow.runs.views import LocalView, StoreView
from rayflow.service import hosting
from rayflow.service.composition import Composition
from rayflow.service.settings import EXECUTORS, Settings
from rayflow.spec.targets import spec_document
from rayflow.store.port import Lease, RunRecord

__all__ = ["EXECUTORS", "Service", "Settings", "get_service", "new_run_id"]

log = logging.getLogger("rayflow")

NOT_JSON = "$not_json"
SERVERS_TTL_S = 5.0   # how long "a server shares this store" is believed before asking the store again   # marks a recorded input that only its repr could keep


class Service(Composition):
    """One per process (see ``get_service``); thread-safe."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._active: dict[str, ActiveRun] = {}
        self.finished_hooks: list[Callable[[ActiveRun], None]] = []   # called after each run driven here
        self._servers_seen: tuple[float, bool] | None = None   # (monotonic time, a live server shares the store)

    # -- handles ------------------------------------------------------------------------

    def _local(self, active: ActiveRun) -> RunHandle:
        return RunHandle(LocalView(active, self))

    def _stored(self, run_id: str) -> RunHandle:
        return RunHandle(StoreView(run_id, self))

    # -- starting runs ------------------------------------------------------------------

    def submit(self, target: Any, inputs: dict[str, Any], *, executor: str = "ray",
               run_id: str | None = None, background: bool = True) -> RunHandle:
        """Plan, record, and start a run; with ``background=False`` drive it in this thread."""
        if run_id is not None:
            check_run_id(run_id)
            existing = self._existing(run_id)
            if existing is not None:
                self._check_same(run_id, target, inputs)
                return existing
        with gcpause.paused():   # tracing and planning allocate in bursts; collect after
            plan, cache = self.plan_cached(target, inputs, executor)
            spec = spec_document(target)
            if background:
                return self.start(plan, executor=executor, run_id=run_id, background=True, spec=spec, cache=cache)
        return self.start(plan, executor=executor, run_id=run_id, background=False, spec=spec, cache=cache)

    def start(self, plan: Plan, *, executor: str = "ray", run_id: str | None = None,
              background: bool = True, spec: dict[str, Any] | None = None, cache: Any = None) -> RunHandle:
        """Record and start a run of ``plan``. ``cache``: the run's cache as ``plan_cached``
        looked it up (used when this process drives the run); when it holds every output
        (``complete``), the run is driven here, at once, with no cluster, tracker or server
        involved."""
        complete = cache is not None and cache.complete
        host = (hosting.run_host() if not complete and executor == "ray" and background and self.use_tracker()
                else None)
        queue = host is not None and self._server_takes(plan, spec)
        try:   # (for a host: queued, so that the host's own claim fences the run)
            run = self.record_new_run(plan, run_id, spec=spec, queued=host is not None)
        except RunExists:
            if run_id is None:
                raise
            self.check_same_run(run_id, plan, spec)
            return self._stored(run_id)
        if complete:
            return self._launch(self.active_run(plan, run, executor, lease=lease_of(run), cache=cache), background)
        if queue:   # a rayflow server on this store claims it from the queue and drives it
            return self._stored(run.run_id)
        if host is not None:
            try:
                return RunHandle(host.hand_over(plan, run, self._hand_over_to(), StoreView(run.run_id, self)))
            except Exception as exc:  # noqa: BLE001 - whatever the host's failure, the run is not lost
                log.warning("run %s: the run tracker could not take it (%s: %s); this process drives it",
                            run.run_id, type(exc).__name__, str(exc)[:200])
            lease = self.store.claim_run(run.run_id, owner_id(), self.lease_s(), force=False)
            if lease is None:   # the host (or a server) claimed it after all
                return self._stored(run.run_id)
            run.owner, run.lease_epoch = lease.owner, lease.epoch
            return self._launch(self.active_run(plan, run, executor, lease=lease, cache=cache), background)
        return self._launch(self.active_run(plan, run, executor, lease=lease_of(run), cache=cache), background)

    def take_over(self, run_id: str) -> bool:
        """Resume here a run whose driver is gone (its lease lapsed), for a client waiting
        on it: True once someone drives it again (this process, or another claimer that was
        quicker); DriverLost when this process cannot plan it."""
        try:
            self.resume(run_id, background=True)
        except RunBusy:
            return True
        except RunNotFound:
            raise
        except RayflowError as exc:
            raise DriverLost(f"run {run_id}: its driver is gone and this process cannot resume it: {exc}",
                             run_id=run_id) from None
        log.warning("run %s: its driver stopped renewing its lease; resumed in this process", run_id)
        return True

    def _check_same(self, run_id: str, target: Any, inputs: dict[str, Any]) -> None:
        """RunExists when the run kept under ``run_id`` ran another target or other inputs
        (a second submit with the same id gets the first run only when it asks for it)."""
        if self.store.get_run(run_id) is not None:
            self.check_same_run(run_id, self.check(target, inputs), spec_document(target))

    def check_same_run(self, run_id: str, plan: Plan, spec: dict[str, Any] | None) -> None:
        """RunExists when the run kept under ``run_id`` is not a run of ``plan`` (its target,
        spec or inputs differ)."""
        _check_same_run(self.store.get_run(run_id), plan.target, spec, dict(plan.inputs))

    def _server_takes(self, plan: Plan, spec: dict[str, Any] | None) -> bool:
        """Whether a live ``rayflow server`` shares this store and can plan ``plan`` again
        (from its spec, or an importable target): then it drives the run, not the tracker."""
        if not spec and (not plan.target or plan.target.startswith("__main__:")):
            return False
        now = time.monotonic()
        with self._lock:
            cached = self._servers_seen
        if cached is None or now - cached[0] > SERVERS_TTL_S:
            db_now, live = self.store.db_now(), self.lease_s()
            alive = any(s.heartbeat_at is not None and s.heartbeat_at >= db_now - live
                        for s in self.store.list_servers())
            cached = (now, alive)
            with self._lock:
                self._servers_seen = cached
        return cached[1]

    def _hand_over_to(self) -> hosting.HandOver:
        ckpt = self.checkpoint_store()
        return hosting.HandOver(store_url=self.store_url_for_others(),
                                checkpoints_url=ckpt.url if ckpt is not None else None,
                                cache_url=self.settings.configured_cache_url(), lease_s=self.lease_s())

    def _launch(self, active: ActiveRun, background: bool) -> RunHandle:
        """Drive ``active`` here: in a thread of its own, or in the caller's."""
        run_id = active.run.run_id
        with self._lock:
            self._active[run_id] = active
        if background:
            threading.Thread(target=self._drive, args=(active,), name=f"rayflow-run-{run_id}", daemon=True).start()
        else:
            self._drive(active)
        return self._local(active)

    def _drive(self, active: ActiveRun) -> None:
        try:
            active.execute()
        finally:
            with self._lock:
                if self._active.get(active.run.run_id) is active:
                    del self._active[active.run.run_id]
            self.ran_one(active)
            for hook in list(self.finished_hooks):
                try:
                    hook(active)
                except Exception:  # noqa: BLE001 - an observer must not break the run's end
                    log.exception("a run-finished hook failed for %s", active.run.run_id)

    def record_new_run(self, plan: Plan, run_id: str | None, *, queued: bool = False,
                       spec: dict[str, Any] | None = None) -> RunRecord:
        """Record a new PENDING run (``new_run``); RunExists when ``run_id`` is taken."""
        if run_id is not None:
            check_run_id(run_id)
        for _ in range(3):
            run = self.new_run(plan, run_id, queued=queued, spec=spec)
            if self.store.insert_run(run) or _inserted_before(self.store.get_run(run.run_id), run):
                return run   # (the second: a store that retried an insert it had made)
            if run_id is not None:
                raise RunExists(f"run {run.run_id} already exists", run_id=run.run_id)
        raise RunExists(f"run ids made for {plan.name!r} kept colliding", run_id=run.run_id)

    def new_run(self, plan: Plan, run_id: str | None, *, queued: bool = False,
                spec: dict[str, Any] | None = None) -> RunRecord:
        """The record of a new PENDING run of ``plan``. Its lease (epoch 1) is this process's,
        unless ``queued``: then no one holds it and whoever claims it first drives it (a
        server, or the driver ``rayflow submit`` starts)."""
        return RunRecord(
            run_id=run_id or new_run_id(plan.name),
            name=plan.name,
            status="PENDING",
            created_at=time.time(),
            target=plan.target,
            inputs=_json_inputs(plan.inputs),
            n_components=len(plan.tasks),
            owner="" if queued else owner_id(),
            heartbeat_at=None if queued else self.store.db_now(),
            lease_epoch=0 if queued else 1,
            spec=spec or {},
        )

    def adopt(self, run_id: str, target: Any, *, executor: str = "ray") -> RunHandle:
        """Drive, in this process, a run another process recorded as PENDING (``rayflow submit``)."""
        run = self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status != "PENDING":
            raise RayflowError(f"run {run_id} is {run.status}; only a PENDING run can be started")
        plan = self.plan(target, dict(run.inputs), executor)
        lease = self._claim(run, force=False)
        return self._launch(self.active_run(plan, run, executor, lease=lease), background=False)

    def resume(self, run_id: str, *, target: Any = None, executor: str = "ray", force: bool = False,
               background: bool = True) -> RunHandle:
        """Finish a run that did not succeed, running only what has no checkpoint.

        Takes the run's lease first (``RunBusy`` while another process drives it; ``force``
        takes it anyway). ``target``: the workflow, when the recorded one cannot be
        imported here (one defined in a script's ``__main__``)."""
        with self._lock:
            if run_id in self._active:
                return self._local(self._active[run_id])
        self.flush()
        run = self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status == "SUCCEEDED":
            return self._stored(run_id)
        _check_resumable_inputs(run)
        plan = self.plan(target if target is not None else what_ran(run), dict(run.inputs), executor)
        lease = self._claim(run, force=force)
        return self._launch(self._resumed(plan, run, executor, lease), background)

    def drive_claimed(self, lease: Lease, *, executor: str = "ray", background: bool = True) -> RunHandle:
        """Drive a run whose lease this process holds already (a server's claim from the
        queue): planned again from its recorded spec or target, resumed from what it kept.
        Raises when it cannot be planned here (the caller decides what the run becomes)."""
        with self._lock:
            if lease.run_id in self._active:
                raise RunBusy(f"run {lease.run_id} is driven by this process already", run_id=lease.run_id)
        run = self.store.get_run(lease.run_id)
        if run is None:
            raise RunNotFound(lease.run_id)
        _check_resumable_inputs(run)
        plan = self.plan(what_ran(run), dict(run.inputs), executor)
        run.owner, run.lease_epoch = lease.owner, lease.epoch
        active = self._resumed(plan, run, executor, lease)
        # a run taken over from another owner is worth a line in the log; a fresh one is not
        log.log(logging.INFO if lease.epoch > 1 else logging.DEBUG,
                "run %s: driven here under lease epoch %d; %d of %d components kept from before", run.run_id,
                lease.epoch, len(active.restored), len(plan.tasks))
        return self._launch(active, background)

    def _resumed(self, plan: Plan, run: RunRecord, executor: str, lease: Lease) -> ActiveRun:
        """``run`` wired to continue from its checkpoints, component rows and events."""
        ckpt = self.checkpoint_store()
        found = ckpt.index(run.run_id) if ckpt is not None else {}
        earlier = {c.component_id: c for c in self.store.get_components(run.run_id)}
        restored, again = reusable(plan, found, earlier)
        if ckpt is not None and restored:   # one that does not verify or decode: as if missing
            restored, unusable = trusted(plan, restored, ckpt.check)
            again.update(unusable)
        for cid, why in sorted(again.items())[:20]:
            log.warning("run %s: component %r runs again: %s", run.run_id, cid, why)
        events = self.store.get_events(run.run_id, after_seq=0, limit=10_000_000)
        run.status = "RUNNING"
        return self.active_run(plan, run, executor, restored=restored, earlier=earlier,
                               first_seq=events[-1].seq if events else 0, lease=lease)

    def _claim(self, run: RunRecord, *, force: bool) -> Lease:
        """Take ``run``'s lease for this process; RunBusy while its owner still heartbeats."""
        lease = self.store.claim_run(run.run_id, owner_id(), self.lease_s(), force=force or owner_gone(run.owner))
        if lease is not None:
            return lease
        again = self.store.get_run(run.run_id)
        owner, beat = (again.owner, again.heartbeat_at) if again else ("?", None)
        age = f"{self.store.db_now() - beat:.0f} s ago" if beat else "never"
        raise RunBusy(f"run {run.run_id} is driven by {owner or 'no one'} (last heartbeat {age}); it can be resumed "
                      f"once that is older than {self.lease_s():.0f} s (RAYFLOW_LEASE_S), or with force",
                      run_id=run.run_id)

    # -- reading runs -------------------------------------------------------------------

    def _existing(self, run_id: str) -> RunHandle | None:
        with self._lock:
            active = self._active.get(run_id)
        if active is not None:
            return self._local(active)
        if self.store.get_run(run_id) is not None:
            return self._stored(run_id)
        return None

    def get_run(self, run_id: str) -> RunHandle:
        handle = self._existing(run_id)
        if handle is None:
            raise RunNotFound(run_id)
        return handle

    def resumable(self, limit: int = 100) -> list[RunRecord]:
        """Runs not final whose owner stopped heartbeating (it crashed or was killed)."""
        self.flush()
        stale_before = self.store.db_now() - self.lease_s()
        runs = [r for status in ("RUNNING", "PENDING") for r in self.store.list_runs(status=status, limit=100_000)]
        out = [r for r in runs if r.heartbeat_at is None or r.heartbeat_at < stale_before or owner_gone(r.owner)]
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

    def allocations(self, run_id: str) -> list[Any]:
        """The run's over- and under-allocated components (requested against used)."""
        from rayflow.predict.sizing import report as allocation_report

        return allocation_report(self.store.get_components(run_id))

    def cache_stats(self, limit: int = 1000) -> dict[str, Any]:
        """Hits and misses of the newest ``limit`` runs, and what each cache tier holds now."""
        from rayflow.service.insight import cache_stats

        return cache_stats(self, limit)

    def sizing_preview(self, component: str) -> list[dict[str, Any]]:
        """What the components matching ``component`` would request, and why."""
        from rayflow.service.insight import sizing_preview

        return sizing_preview(self, component)

    # -- the end ------------------------------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            writer = self._writer
        if writer is not None:
            writer.flush()   # at most the writer's flush_timeout_s; it logs what is left unwritten

    def active_of(self, run_id: str) -> ActiveRun | None:
        """The run, when this process drives it now."""
        with self._lock:
            return self._active.get(run_id)

    def active(self) -> list[ActiveRun]:
        """The runs this process drives now."""
        with self._lock:
            return list(self._active.values())

    def hand_back(self, *, wait_s: float = 10.0) -> int:
        """Stop driving every run here without ending it: what ran is kept, each lease is
        released, and any owner (another server) resumes the runs. How many there were."""
        active = self.active()
        for run in active:
            run.hand_back()
        for run in active:
            run.done.wait(wait_s)
        return len(active)

    def shutdown(self, *, wait_s: float = 2.0) -> None:
        """At exit: cancel runs still in flight here, record it, close the store."""
        with self._lock:
            active = list(self._active.values())
        for run in active:
            run.error = "rayflow shut down (or its process exited) before the run finished"
            run.cancel_event.set()
        for run in active:
            run.done.wait(wait_s)
        self.leases.stop()
        self.close_adapters()


def new_run_id(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40] or "run"
    return f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{_IDS.getrandbits(48):012x}"   # 48 bits: no collisions
    # at thousands of runs a second (a generator seeded once: no system call per id)


_IDS = random.Random(secrets.randbits(128))


def _json_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
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
        raise NotResumable(f"run {run.run_id} cannot be resumed: its input {kept[0]!r} was not a JSON value, "
                           "so the run store only kept its repr; submit the workflow again")


def what_ran(run: RunRecord) -> Any:
    """What to plan again for ``run``: the spec it recorded (a spec runs as it ran, whatever
    its file holds now), else its import path."""
    if run.spec:
        return run.spec
    if not run.target or run.target.startswith("__main__:"):
        raise NotResumable(f"run {run.run_id} ran {run.target or 'a workflow object'}, which another process "
                           "cannot import; resume it with the workflow: rf.resume(run_id, workflow=...)")
    return run.target


def _check_same_run(kept: RunRecord | None, target: str, spec: dict[str, Any] | None, inputs: dict[str, Any]) -> None:
    if kept is None:
        return
    if kept.spec and spec:
        differs = "spec" if kept.spec != spec else None
    else:
        differs = "target" if (kept.target or "") != (target or "") else None
    if differs is None and kept.inputs != _json_inputs(inputs):
        shown = ", ".join(sorted(set(kept.inputs) ^ set(inputs)) or
                          [k for k in sorted(inputs) if kept.inputs.get(k) != _json_inputs(inputs).get(k)])
        raise RunExists(f"run {kept.run_id} already exists with other inputs (differing: {shown[:200]}); "
                        "give another run id, or none", run_id=kept.run_id)
    if differs == "target":
        raise RunExists(f"run {kept.run_id} already exists for target {kept.target!r}, not {target!r}; "
                        "give another run id, or none", run_id=kept.run_id)
    if differs == "spec":
        raise RunExists(f"run {kept.run_id} already exists with another spec; give another run id, or none",
                        run_id=kept.run_id)


def _inserted_before(kept: RunRecord | None, run: RunRecord) -> bool:
    """Whether the row kept under ``run``'s id is ``run`` itself (same creation and owner)."""
    return kept is not None and (kept.created_at, kept.owner, kept.name) == (run.created_at, run.owner, run.name)


def lease_of(run: RunRecord) -> Lease | None:
    """The lease ``run`` was recorded with (None: no one holds it)."""
    return Lease(run.run_id, run.owner, run.lease_epoch) if run.owner and run.lease_epoch else None


_SERVICE: Service | None = None
_SERVICE_LOCK = threading.Lock()


def get_service() -> Service:
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is None:
            _SERVICE = Service()
            atexit.register(_SERVICE.shutdown)
        return _SERVICE
