"""The routers of the HTTP API, one per resource (runs, workflows, system), and the
dependencies they share (the plane and the limits, read from the app's state).

Each route is a thin translation: parse and check the shape of the request, call one
``ControlPlane`` method, turn the records into JSON. Must hold no logic of its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from rayflow.server.http.cache import FinalRuns
from rayflow.server.http.errors import ApiError
from rayflow.server.http.limits import Limits
from rayflow.server.plane import ControlPlane


async def plane_of(request: Request) -> ControlPlane:
    """The app's control plane (a dependency; async, so it costs no thread hop)."""
    return request.app.state.plane


async def final_runs_of(request: Request) -> FinalRuns:
    """The app's cache of finished runs' answers."""
    return request.app.state.final_runs


async def limits_of(request: Request) -> Limits:
    return request.app.state.limits


def exactly_one(a: Any, b: Any, names: tuple[str, str]) -> None:
    """422 naming the field unless exactly one of ``a`` / ``b`` is given."""
    if a is None and b is None:
        raise ApiError(422, "invalid_request", f"give one of {names[0]!r} or {names[1]!r}",
                       field=f"body.{names[0]}")
    if a is not None and b is not None:
        raise ApiError(422, "invalid_request", f"give {names[0]!r} or {names[1]!r}, not both",
                       field=f"body.{names[1]}")
