"""Routes outside ``/v1``: ``/healthz`` (liveness, never needs a token), ``/readyz``
(200 when the store, Ray and the intake are all ready, else 503), ``/metrics``
(Prometheus text) and ``/openapi.json`` (the schema, read scope under token auth).

Owns only the translation of the plane's health dicts and the metrics' rendering to
HTTP. Must not probe anything itself: the plane knows what "ready" means.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from rayflow.server.http.auth import Caller, require
from rayflow.server.http.models import HealthOut, errors, text
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


@router.get("/metrics", response_class=Response,
            responses={**text("text/plain", "Prometheus text exposition format."), **errors(json_route=False)})
def metrics(request: Request, _: Caller = Depends(require("read"))) -> Response:
    """The server's metrics, for Prometheus to scrape."""
    payload, content_type = request.app.state.metrics.render()
    return Response(payload, media_type=content_type)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Caller = Depends(require("read"))) -> JSONResponse:
    return JSONResponse(request.app.openapi())
