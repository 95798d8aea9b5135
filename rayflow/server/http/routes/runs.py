"""Routes of ``/v1/runs``: submit, list, read, cancel / resume / retry, events, logs, report.

Owns the translation of each run operation to HTTP (status codes, headers, query
parameters) over ``ControlPlane``. Handlers are plain ``def`` (FastAPI runs them in its
thread pool: the plane blocks), except the event stream, which polls the plane in
threads itself. Must not decide anything the plane decides (validity of a spec,
idempotency, state transitions).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rayflow.core.states import TERMINAL_RUN_STATES
from rayflow.server.http.auth import Caller, require
from rayflow.server.http.cache import FinalRuns
from rayflow.server.http.errors import ApiError
from rayflow.server.http.limits import Limits, check_spec_size
from rayflow.server.http.models import (
    RunDetail,
    RunOut,
    RunPage,
    RunState,
    SubmitIn,
    component_json,
    errors,
    event_stream,
    run_json,
    text,
)
from rayflow.server.http.routes import exactly_one, final_runs_of, limits_of, plane_of
from rayflow.server.http.sse import EventStream
from rayflow.server.plane import BadRequest, ControlPlane

router = APIRouter(prefix="/v1/runs", tags=["runs"])
READ = Depends(require("read"))
SUBMIT = Depends(require("submit"))
PLANE = Depends(plane_of)
FINAL = Depends(final_runs_of)   # the encoded answers of finished runs (rayflow.server.http.cache)


@router.post("", status_code=201, response_model=RunOut,
             responses={200: {"model": RunOut, "description": "A replay: the run made by the same "
                                                              "Idempotency-Key and body."},
                        **errors(400, 409, 413, 503)})
def submit_run(payload: SubmitIn, response: Response,
               idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
               caller: Caller = SUBMIT, plane: ControlPlane = PLANE,
               limits: Limits = Depends(limits_of)) -> dict[str, Any]:
    """Start a run of a spec or a named workflow (201); a replay of the same request is 200."""
    exactly_one(payload.spec, payload.workflow, ("spec", "workflow"))
    check_spec_size(payload.spec, limits)
    submitted = plane.submit(spec=payload.spec, workflow=payload.workflow, inputs=payload.inputs,
                             run_id=payload.run_id, idempotency_key=idempotency_key, caller=caller.id)
    if not submitted.created:
        response.status_code = 200
    return run_json(submitted.run)


@router.get("", response_model=RunPage, responses=errors(400))
def list_runs(status: RunState | None = None, workflow: str | None = Query(None, max_length=200),
              limit: int = Query(100, ge=1, le=1000), cursor: str | None = Query(None, max_length=1000),
              since: float | None = Query(None, description="Only runs created at or after (UNIX seconds)."),
              until: float | None = Query(None, description="Only runs created before (UNIX seconds)."),
              _: Caller = READ, plane: ControlPlane = PLANE) -> dict[str, Any]:
    """Runs, newest first, a page at a time (``next_cursor`` for the next page)."""
    try:
        runs, next_cursor = plane.list(status=status, workflow=workflow, limit=limit, cursor=cursor,
                                       since=since, until=until)
    except BadRequest as exc:
        raise ApiError(400, "bad_cursor", str(exc), field="query.cursor") from None
    return {"runs": [run_json(r) for r in runs], "next_cursor": next_cursor}


@router.get("/{run_id}", response_model=RunDetail, responses=errors(404))
def get_run(run_id: str, metrics: Literal["full", "summary"] = Query(
                "full", description="summary: `metrics` without its `components` (they are in `components`)"),
            _: Caller = READ, plane: ControlPlane = PLANE, final: FinalRuns = FINAL) -> Response:
    """One run with its components and metrics (a finished run's answer may be up to 1 s old)."""
    body = final.get(run_id, metrics)
    if body is None:
        run, components, measured = plane.detail(run_id, per_component=metrics == "full")
        out = run_json(run)
        out["components"] = {c.component_id: component_json(c) for c in components}
        out["metrics"] = measured
        body = json.dumps(out, separators=(",", ":"), default=str).encode()
        if run.status in TERMINAL_RUN_STATES:
            final.put(run_id, body, metrics)
    return Response(body, media_type="application/json")


@router.post("/{run_id}/cancel", status_code=202, response_model=RunOut, responses=errors(404, 409, 503))
def cancel_run(run_id: str, _: Caller = SUBMIT, plane: ControlPlane = PLANE,
               final: FinalRuns = FINAL) -> dict[str, Any]:
    """Ask the run to stop (its components are cancelled)."""
    final.forget(run_id)
    return run_json(plane.cancel(run_id))


@router.post("/{run_id}/resume", status_code=202, response_model=RunOut, responses=errors(404, 409, 503))
def resume_run(run_id: str, _: Caller = SUBMIT, plane: ControlPlane = PLANE,
               final: FinalRuns = FINAL) -> dict[str, Any]:
    """Drive a run that did not succeed again, from its checkpoints."""
    final.forget(run_id)
    return run_json(plane.resume(run_id))


@router.post("/{run_id}/retry", status_code=202, response_model=RunOut, responses=errors(404, 409, 503))
def retry_run(run_id: str, _: Caller = SUBMIT, plane: ControlPlane = PLANE,
               final: FinalRuns = FINAL) -> dict[str, Any]:
    """Run the failed part of a FAILED or CANCELLED run again."""
    final.forget(run_id)
    return run_json(plane.retry(run_id))


@router.get("/{run_id}/events", response_class=StreamingResponse,
            responses={**event_stream("Server-Sent Events: `id: <seq>`, `event: <kind>`, "
                                                   "`data: <event JSON>`; ends after the run's terminal event."),
                       **errors(404, json_route=False)})
async def run_events(run_id: str, after: int | None = Query(None, ge=0, description="Start after this seq."),
                     last_event_id: int | None = Header(None, alias="Last-Event-ID", ge=0),
                     _: Caller = READ, plane: ControlPlane = PLANE) -> StreamingResponse:
    """The run's events from the start (or after ``Last-Event-ID`` / ``after``), live."""
    await run_in_threadpool(plane.get, run_id)          # 404 before the stream starts
    start = last_event_id if last_event_id is not None else (after or 0)
    return StreamingResponse(EventStream(plane, run_id, start), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{run_id}/components/{component_id}/logs", response_class=PlainTextResponse,
            responses={**text("text/plain", "What the attempt printed and logged."),
                       **errors(404, json_route=False)})
def component_logs(run_id: str, component_id: str, attempt: int | None = Query(None, ge=1),
                   _: Caller = READ, plane: ControlPlane = PLANE) -> PlainTextResponse:
    """What one attempt of a component printed and logged (the last attempt by default)."""
    return PlainTextResponse(plane.logs(run_id, component_id, attempt))


@router.get("/{run_id}/report", response_class=HTMLResponse,
            responses={**text("text/html", "The run's report: components, critical path, Gantt chart."),
                       **errors(404, json_route=False)})
def run_report(run_id: str, _: Caller = READ, plane: ControlPlane = PLANE) -> HTMLResponse:
    """The run's HTML report."""
    return HTMLResponse(plane.report_html(run_id))
