"""Routes of ``/v1/workflows``: list the registered workflows, register one (admin).

Owns the translation of workflow registration to HTTP over ``ControlPlane``. A workflow
is a spec (a JSON object) or an installed ``module:attr``, never code. Must not check a
spec itself beyond its size: the plane validates it before keeping it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from rayflow.server.http.auth import Caller, require
from rayflow.server.http.limits import Limits, check_spec_size
from rayflow.server.http.models import WorkflowIn, WorkflowList, WorkflowOut, errors, workflow_json
from rayflow.server.http.routes import exactly_one, limits_of, plane_of
from rayflow.server.plane import ControlPlane

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


@router.get("", response_model=WorkflowList, responses=errors())
def list_workflows(_: Caller = Depends(require("read")),
                   plane: ControlPlane = Depends(plane_of)) -> dict[str, Any]:
    """The workflows registered with the server, by name."""
    return {"workflows": [workflow_json(w) for w in plane.workflows()]}


@router.post("", status_code=201, response_model=WorkflowOut, responses=errors(400, 409, 413))
def register_workflow(payload: WorkflowIn, _: Caller = Depends(require("admin")),
                      plane: ControlPlane = Depends(plane_of),
                      limits: Limits = Depends(limits_of)) -> dict[str, Any]:
    """Register (or replace) a workflow by name: a spec, or a `module:attr` target."""
    exactly_one(payload.spec, payload.target, ("spec", "target"))
    check_spec_size(payload.spec, limits)
    return workflow_json(plane.register_workflow(payload.name, spec=payload.spec, target=payload.target))
