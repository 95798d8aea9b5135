"""The control plane: what ``rayflow server`` does, behind its HTTP routes.

Owns the server's operations over one ``Service``: submitting runs (validated here,
recorded PENDING in the store, claimed and driven by the runner), reading them
(records, components, metrics, events, the report), cancel / resume / retry,
workflow registration, health. The HTTP layer (``rayflow.server.http``) turns these
into routes and JSON and must hold no logic of its own beyond that. Never accepts
code and never unpickles anything received over HTTP: a run comes as a spec (a JSON
object) or a name (a registered workflow or an installed ``module:attr``).
Must not import FastAPI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rayflow.core.errors import RayflowError, RunExists, RunNotFound, SpecError
from rayflow.core.states import TERMINAL_RUN_STATES
from rayflow.metrics.summary import run_metrics
from rayflow.runs.views import StoreView
from rayflow.server.cluster import cluster_view
from rayflow.server.runner import Runner
from rayflow.spec.model import WorkflowSpec
from rayflow.spec.targets import load_target
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord, ServerRecord, WorkflowRecord


class Conflict(RayflowError):
    """The request contradicts what the server holds (HTTP 409)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BadRequest(RayflowError):
    """A malformed parameter (HTTP 400)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Unavailable(RayflowError):
    """The server is shutting down and accepts no new work (HTTP 503)."""


@dataclass(frozen=True)
class Submitted:
    run: RunRecord
    created: bool          # False: an idempotent replay (or a run_id already known)


class ControlPlane:
    """The server's operations over one ``Service`` and its ``Runner``. Thread-safe; the
    HTTP layer calls it from a thread pool."""

    def __init__(self, service: Any, runner: Runner, *, executor: str = "ray") -> None:
        self.service = service
        self.runner = runner
        self.executor = executor
        self.accepting = True
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        """The run store (tokens are checked against it)."""
        return self.service.store

    # -- submitting -------------------------------------------------------------------

    def submit(self, *, spec: dict[str, Any] | None = None, workflow: str | None = None,
               inputs: dict[str, Any] | None = None, run_id: str | None = None,
               idempotency_key: str | None = None, caller: str = "") -> Submitted:
        """Validate and record a run (PENDING, unowned) for a runner to claim and drive.
        Exactly one of ``spec`` (a spec as a JSON object) or ``workflow`` (a registered
        name or an installed ``module:attr``). ``idempotency_key`` (scoped by ``caller``,
        e.g. the token id): a replay with the same body returns the same run (created
        False); the same key with another body raises Conflict. SpecError for an invalid
        spec, workflow or inputs, naming the component or field; Unavailable while stopping."""
        if not self.accepting:
            raise Unavailable("the server is shutting down and accepts no new runs")
        inputs = dict(inputs or {})
        if (spec is None) == (workflow is None):
            raise SpecError("give exactly one of 'spec' (a workflow spec) or 'workflow' (a name or module:attr)")
        target, document = self._target(spec, workflow)
        plan = self.service.check(target, inputs)   # every check but the cluster's, no Ray call
        if idempotency_key:   # the key and the run are recorded together, or neither is
            run = self.service.new_run(plan, run_id, queued=True, spec=document)
            digest = _body_hash(spec, workflow, inputs, run_id)
            kept_id, kept_hash, created = self.store.insert_run_once(run, f"{caller}:{idempotency_key}", digest,
                                                                     time.time())
            if kept_hash != digest:
                raise Conflict(f"Idempotency-Key {idempotency_key!r} was used for a different request",
                               field="header.Idempotency-Key")
        else:
            try:
                run = self.service.record_new_run(plan, run_id, queued=True, spec=document)
                kept_id, created = run.run_id, True
            except RunExists:
                if run_id is None:
                    raise
                self.service.check_same_run(run_id, plan, document)
                kept_id, created = run_id, False
        if not created:
            return Submitted(self.get(kept_id), created=False)
        self.runner.wake()
        return Submitted(run, created=True)

    def _target(self, spec: dict[str, Any] | None, workflow: str | None) -> tuple[Any, dict[str, Any]]:
        """What to plan, and the spec to record (empty for an import path)."""
        if spec is not None:
            return _validated(spec, "spec"), spec
        assert workflow is not None
        registered = self.store.get_workflow(workflow)
        if registered is not None:
            if registered.spec:
                return _validated(registered.spec, "workflow"), registered.spec
            workflow = registered.target
        if ":" not in workflow:
            raise SpecError(f"workflow {workflow!r} is not registered (and is not a module:attr import path)")
        obj, _ = load_target(workflow)
        if isinstance(obj, WorkflowSpec):
            return obj, obj.model_dump(mode="json", by_alias=True, exclude_none=True)
        return workflow, {}

    # -- reading ------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord:
        run = self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def components(self, run_id: str) -> list[ComponentRecord]:
        return self.store.get_components(run_id)

    def metrics(self, run_id: str) -> dict[str, Any]:
        """As ``RunHandle.metrics()``: live while driven here, else from the store."""
        return self.detail(run_id)[2]

    def detail(self, run_id: str, *, per_component: bool = True) -> tuple[RunRecord, list[ComponentRecord], dict[str, Any]]:
        """The run, its components and its metrics in one read of the store (the metrics
        live while the run is driven here); ``per_component=False``: the metrics without
        their ``components`` (the run's components are there already)."""
        run = self.get(run_id)
        components = self.store.get_components(run_id)
        active = self.service.active_of(run_id)
        if active is None:
            return run, components, run_metrics(run, components, per_component=per_component)
        metrics = active.metrics()
        if not per_component:
            metrics = {k: v for k, v in metrics.items() if k != "components"}
        return run, components, metrics

    def list(self, *, status: str | None = None, workflow: str | None = None, limit: int = 100,
             cursor: str | None = None, since: float | None = None,
             until: float | None = None) -> tuple[list[RunRecord], str | None]:
        """Newest first; (runs, the next page's cursor or None). ``since`` / ``until``: only
        runs created at or after / before those times (UNIX seconds)."""
        before = _decode_cursor(cursor) if cursor else None
        if until is not None and (before is None or before > (until, "")):
            before = (float(until), "")      # nothing sorts below "": created_at < until
        runs = self.store.list_runs_page(status=status, name=workflow, limit=limit + 1, before=before, since=since)
        if len(runs) <= limit:
            return runs, None
        runs = runs[:limit]
        return runs, _encode_cursor(runs[-1])

    def counts(self, *, workflow: str | None = None, since: float | None = None) -> dict[str, int]:
        """How many runs are in each status (of one workflow, created since a time)."""
        return self.store.count_runs(name=workflow, since=since)

    def cluster(self) -> dict[str, Any]:
        """Servers and their leases, Ray's nodes and resources, store and cache health."""
        return cluster_view(self)

    def events(self, run_id: str, after_seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        return self.store.get_events(run_id, after_seq=after_seq, limit=limit)

    def is_final(self, run_id: str) -> bool:
        return self.get(run_id).status in TERMINAL_RUN_STATES

    def logs(self, run_id: str, component: str, attempt: int | None = None) -> str:
        """What one attempt of a component printed and logged (its last by default)."""
        self.get(run_id)
        return StoreView(run_id, self.service).logs(component, attempt)

    def report_html(self, run_id: str) -> str:
        from rayflow.report.html import render_html

        run, components, metrics = self.detail(run_id)
        return render_html(run, metrics, components)

    # -- acting on runs -----------------------------------------------------------------

    def cancel(self, run_id: str) -> RunRecord:
        """Ask the run to stop (its driver polls for it); a queued run no one drives yet is
        cancelled here. A final run is returned as it is."""
        run = self.get(run_id)
        if run.status in TERMINAL_RUN_STATES:
            return run
        self.store.request_cancel(run_id)
        if not run.owner:
            lease = self.store.claim_run(run_id, self.runner.owner, self.service_lease_s())
            if lease is not None:
                self.runner.end_unstarted(lease, "CANCELLED", "cancelled before it started")
        return self.get(run_id)

    def resume(self, run_id: str) -> RunRecord:
        """Queue a run that is not SUCCEEDED to be driven again from its checkpoints.
        Conflict while someone holds a live lease on it, or when it SUCCEEDED."""
        run = self.get(run_id)
        if run.status == "SUCCEEDED":
            raise Conflict(f"run {run_id} already SUCCEEDED; there is nothing to resume", field="run_id")
        lease = self.store.claim_run(run_id, self.runner.owner, self.service_lease_s())
        if lease is None:
            raise Conflict(f"run {run_id} is driven by {run.owner or 'another server'} (its lease is live)",
                           field="run_id")
        self.store.update_run(run_id, cancel_requested=False)
        self.runner.adopt(lease)
        return self.get(run_id)

    def retry(self, run_id: str) -> RunRecord:
        """Run the failed part of a FAILED or CANCELLED run again (what has a checkpoint stays)."""
        run = self.get(run_id)
        if run.status not in ("FAILED", "CANCELLED"):
            raise Conflict(f"run {run_id} is {run.status}; only a FAILED or CANCELLED run can be retried",
                           field="run_id")
        return self.resume(run_id)

    def service_lease_s(self) -> float:
        return self.runner.lease_s()

    # -- workflows --------------------------------------------------------------------

    def workflows(self) -> list[WorkflowRecord]:
        return self.store.list_workflows()

    def register_workflow(self, name: str, *, spec: dict[str, Any] | None = None,
                          target: str | None = None) -> WorkflowRecord:
        """Exactly one of ``spec`` or ``target`` ("module:attr"); checked before it is kept."""
        if not name or len(name) > 200:
            raise SpecError("workflow 'name': expected 1 to 200 characters")
        if (spec is None) == (target is None):
            raise SpecError("give exactly one of 'spec' or 'target' (module:attr)")
        if spec is not None:
            self.service.explain(_validated(spec, "spec"), {})
        else:
            if ":" not in (target or ""):
                raise SpecError(f"target {target!r}: expected 'module:attr'")
            load_target(target)
        now = time.time()
        record = WorkflowRecord(name=name, spec=spec or {}, target=target or "", created_at=now, updated_at=now)
        self.store.put_workflow(record)
        return self.store.get_workflow(name) or record

    # -- the server -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "server_id": self.runner.server_id, "accepting": self.accepting}

    def ready(self) -> dict[str, bool]:
        try:
            self.store.db_now()
            store_ok = True
        except Exception:  # noqa: BLE001 - not ready is the answer
            store_ok = False
        return {"store": store_ok, "ray": self._ray_ok(), "accepting": self.accepting}

    def _ray_ok(self) -> bool:
        if self.executor != "ray":
            return True
        from rayflow.execute.ray.session import connected

        return connected()

    def servers(self) -> list[ServerRecord]:
        return self.store.list_servers()

    def in_flight(self) -> dict[str, int]:
        """Runs driven here now, and runs queued in the store for any server."""
        queued = self.store.list_runs_page(status="PENDING", limit=10_000)
        return {"runs_driven": self.runner.driving(), "runs_queued": sum(1 for r in queued if not r.owner)}


ServicePlane = ControlPlane


def _validated(spec: Any, field: str) -> WorkflowSpec:
    if not isinstance(spec, dict):
        raise SpecError(f"{field}: expected a JSON object, got {type(spec).__name__}")
    try:
        return WorkflowSpec.model_validate(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise SpecError(f"{field}.{where}: {first.get('msg')}" if where else f"{field}: {first.get('msg')}") from None


def _body_hash(spec: Any, workflow: Any, inputs: Any, run_id: Any) -> str:
    text = json.dumps({"spec": spec, "workflow": workflow, "inputs": inputs, "run_id": run_id},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _new_id(name: str) -> str:
    from rayflow.service.operations import new_run_id

    return new_run_id(name)


def _encode_cursor(run: RunRecord) -> str:
    return base64.urlsafe_b64encode(json.dumps([run.created_at, run.run_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, run_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created_at), str(run_id)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"cursor {cursor[:40]!r} is not one this server gave", field="cursor") from exc
