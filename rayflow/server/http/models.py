"""The JSON of the HTTP API, as pydantic models: what each route takes and answers.

Owns the request bodies (``SubmitIn``, ``WorkflowIn``), the response shapes (``RunOut``,
``RunDetail``, ``RunPage``, ``WorkflowOut``, ``ErrorOut``...) that /openapi.json documents,
the records-to-JSON helpers the routes use, and ``errors(...)``, the documented error
responses of a route. Must not call the plane or hold any rule beyond the shape of a
value (the plane validates specs and inputs).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from rayflow.core.paths import RUN_ID_PATTERN
from rayflow.store.port import RUN_STATES, ComponentRecord, RunRecord, WorkflowRecord

RunState = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
assert set(get_args(RunState)) == set(RUN_STATES), "RunState must list the run states of rayflow.core.states"

RUN_FIELDS = ("run_id", "name", "status", "created_at", "started_at", "ended_at", "target", "inputs",
              "error", "n_components", "owner", "cancel_requested")
COMPONENT_FIELDS = ("state", "attempts", "queued_s", "started_at", "ended_at", "duration_s", "node_id", "error",
                    "traceback", "submitted_at", "upstream", "cached", "worker_id")


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable machine-readable code, e.g. invalid_spec, run_not_found.")
    message: str = Field(description="What was wrong and how to fix it.")
    field: str | None = Field(description="The dotted location at fault (body.inputs, spec.components.x), "
                                           "or null.")


class ErrorOut(BaseModel):
    error: ErrorDetail


EXAMPLE_SPEC = {"name": "etl", "inputs": {"n": 1000},
                "components": [{"id": "load", "function": "rayflow.examples.etl:load", "config": {"n": {"$input": "n"}}},
                               {"id": "clean", "function": "rayflow.examples.etl:clean"},
                               {"id": "total", "function": "rayflow.examples.etl:total"}],
                "connections": [{"from": "load", "to": "clean", "port": "table"}, {"from": "clean", "to": "total"}],
                "outputs": "total"}


class SubmitIn(BaseModel):
    """A run to start: a spec (a JSON object) or a workflow name, never code."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"spec": EXAMPLE_SPEC, "inputs": {"n": 100}}, {"workflow": "etl", "inputs": {"n": 100}}]})

    spec: dict[str, Any] | None = Field(None, description="A workflow spec, as in the declarative spec format.")
    workflow: str | None = Field(None, min_length=1, max_length=500,
                                 description="A registered workflow's name, or an installed `module:attr`.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The workflow's inputs.")
    run_id: str | None = Field(None, pattern=RUN_ID_PATTERN, description="An id to give the run (else one is made).")


class WorkflowIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "etl", "spec": EXAMPLE_SPEC}, {"name": "etl-py", "target": "rayflow.examples.etl:pipeline"}]})

    name: str = Field(min_length=1, max_length=200)
    spec: dict[str, Any] | None = None
    target: str | None = Field(None, min_length=1, max_length=500, description="`module:attr` of a workflow.")


class RunOut(BaseModel):
    run_id: str
    name: str
    status: RunState
    created_at: float
    started_at: float | None
    ended_at: float | None
    target: str
    inputs: dict[str, Any]
    error: str | None
    n_components: int
    owner: str
    cancel_requested: bool
    result: Any = Field(None, description="The workflow's return value once it SUCCEEDED (when JSON), "
                                          "else null.")


class ComponentOut(BaseModel):
    state: str
    attempts: int
    queued_s: float | None
    started_at: float | None
    ended_at: float | None
    duration_s: float | None
    node_id: str | None
    error: str | None
    traceback: str | None = Field(None, description="A failure's traceback, the component's own frames only.")
    submitted_at: float | None = Field(None, description="When it was handed to the executor (its queue wait "
                                                         "runs from here to started_at).")
    upstream: list[str] = Field(default_factory=list, description="The components it reads (the DAG's edges).")
    cached: bool = False
    worker_id: str | None = None


class RunDetail(RunOut):
    components: dict[str, ComponentOut]
    metrics: dict[str, Any] = Field(description="As RunHandle.metrics().")


class RunPage(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


class EventOut(BaseModel):
    """One event of a run, as each SSE ``data:`` line carries it."""

    run_id: str
    seq: int
    ts: float
    kind: str
    component_id: str | None
    data: dict[str, Any]


class WorkflowOut(BaseModel):
    name: str
    spec: dict[str, Any]
    target: str
    created_at: float
    updated_at: float


class WorkflowList(BaseModel):
    workflows: list[WorkflowOut]


class CallerOut(BaseModel):
    id: str = Field(description="The token's id, or `anonymous` without auth.")
    scope: str = Field(description="read, submit or admin.")
    auth: str = Field(description="The server's auth mode: token or none.")


class CountsOut(BaseModel):
    runs: dict[str, int] = Field(description="Runs by status (statuses with none left out).")
    total: int


class HealthOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    server_id: str | None = None
    accepting: bool | None = None


def run_json(run: RunRecord) -> dict[str, Any]:
    out = {name: getattr(run, name) for name in RUN_FIELDS}
    out["result"] = run.summary.get("result") if isinstance(run.summary, dict) else None
    return out


def component_json(c: ComponentRecord) -> dict[str, Any]:
    return {name: getattr(c, name) for name in COMPONENT_FIELDS}


def workflow_json(w: WorkflowRecord) -> dict[str, Any]:
    return {"name": w.name, "spec": w.spec or {}, "target": w.target or "", "created_at": w.created_at,
            "updated_at": w.updated_at}


_WHY = {400: "Malformed request (JSON body, cursor).", 401: "Missing or unknown token.",
        403: "The token's scope is too small.", 404: "Not found.", 409: "Conflicts with the server's state.",
        413: "Body or spec too large.", 422: "Invalid request, spec or inputs.", 429: "Rate limited.",
        503: "Not accepting work now."}
COMMON = (401, 403, 422, 429)


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def errors(*statuses: int, json_route: bool = True) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a route: the common ones plus ``statuses``. A route
    that answers other than JSON (``json_route=False``) documents its errors' JSON by
    reference: FastAPI would list a ``model`` under the route's own media type."""
    if json_route:
        return {s: {"model": ErrorOut, "description": _WHY[s]} for s in sorted({*COMMON, *statuses})}
    return {s: {"description": _WHY[s], "content": {"application/json": {"schema": ERROR_REF}}}
            for s in sorted({*COMMON, *statuses})}


def event_stream(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of an SSE route: each event (``itemSchema``, as Open API 3.2 and FastAPI put it)
    has a string id (the seq), the kind as its event name and an ``EventOut`` as JSON data."""
    item = {"type": "object", "required": ["id", "event", "data"], "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": EventOut.model_json_schema()},
        "retry": {"type": "integer", "minimum": 0}}}
    return {200: {"description": description, "content": {"text/event-stream": {"itemSchema": item}}}}


def text(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 response that is not JSON (logs, the report, the event stream, metrics)."""
    return {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}
