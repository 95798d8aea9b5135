"""The server's own routes: ``/healthz`` (liveness, never needs a token), ``/readyz``
(200 when the store, Ray and the intake are all ready, else 503), ``/metrics``
(Prometheus text), ``/openapi.json`` (the schema, read scope under token auth), and
``/v1/whoami`` (the caller's scope), ``/v1/counts`` (runs by status), ``/v1/cluster``
(servers, leases, Ray nodes, store and cache health).

Owns only the translation of the plane's health dicts and the metrics' rendering to
HTTP. Must not probe anything itself: the plane knows what "ready" means.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from rayflow.server.http.auth import Caller, require
from rayflow.server.http.models import CallerOut, CountsOut, HealthOut, errors, text
from rayflow.server.http.routes import plane_of
from rayflow.server.plane import ControlPlane

router = APIRouter(tags=["system"])
READY_SCHEMA = {"type": "object", "additionalProperties": {"type": "boolean"}}


@router.get("/healthz", response_model=HealthOut)
def healthz(plane: ControlPlane = Depends(plane_of)) -> dict[str, Any]:
    """Liveness: the process answers. No token needed."""
    return plane.health()


@router.get("/readyz", response_model=dict[str, bool],
            responses={503: {"description": "Not ready: the body says which part is not.",
                             "content": {"application/json": {"schema": READY_SCHEMA}}},
                       **errors()})
def readyz(_: Caller = Depends(require("read")), plane: ControlPlane = Depends(plane_of)) -> Any:
    """Readiness: 200 when every part is ready, 503 otherwise; the body says which."""
    ready = {str(k): bool(v) for k, v in plane.ready().items()}
    return JSONResponse(ready, status_code=200 if all(ready.values()) else 503)


@router.get("/v1/whoami", response_model=CallerOut, responses=errors())
def whoami(request: Request, caller: Caller = Depends(require("read"))) -> dict[str, Any]:
    """Who the token is and its scope (the web UI shows only the buttons a scope allows)."""
    return {"id": caller.id, "scope": caller.scope, "auth": request.app.state.auth.mode}


@router.get("/v1/counts", response_model=CountsOut, responses=errors())
def counts(workflow: str | None = Query(None, max_length=200),
           since: float | None = Query(None, description="Only runs created at or after (UNIX seconds)."),
           _: Caller = Depends(require("read")), plane: ControlPlane = Depends(plane_of)) -> dict[str, Any]:
    """How many runs are in each status, of one workflow and since a time when given."""
    by_status = plane.counts(workflow=workflow, since=since)
    return {"runs": by_status, "total": sum(by_status.values())}


@router.get("/v1/cluster", responses=errors())
def cluster(_: Caller = Depends(require("read")), plane: ControlPlane = Depends(plane_of)) -> dict[str, Any]:
    """The servers sharing the store and the runs each drives (leases), Ray's nodes and
    resources, the store's and the result cache's health; a part that cannot be read has
    ``ok: false`` and a reason."""
    return plane.cluster()


@router.get("/metrics", response_class=Response,
            responses={**text("text/plain", "Prometheus text exposition format."), **errors(json_route=False)})
def metrics(request: Request, _: Caller = Depends(require("read"))) -> Response:
    """The server's metrics, for Prometheus to scrape."""
    payload, content_type = request.app.state.metrics.render()
    return Response(payload, media_type=content_type)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Caller = Depends(require("read"))) -> JSONResponse:
    return JSONResponse(request.app.openapi())
