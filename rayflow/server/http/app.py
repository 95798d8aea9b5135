"""The HTTP API's assembly: ``create_app(plane, auth=, limits=, metrics=)`` -> a FastAPI app.

Owns what goes where: the routers (runs, workflows, system, the web UI), the error handlers, the
middleware stack (outermost first: request metrics, rate limit, body limit), the app's
state the dependencies read (plane, authenticator, limits, metrics) and the lifespan
task that measures the event loop's lag. Must not hold route logic or start the
runner: ``rayflow.server.main`` builds the plane and serves this app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from rayflow.server.http import errors
from rayflow.server.http.auth import Authenticator
from rayflow.server.http.cache import FinalRuns
from rayflow.server.http.limits import BodyLimitMiddleware, Limits, RateLimitMiddleware
from rayflow.server.http.metrics import HttpMetricsMiddleware, ServerMetrics
from rayflow.server.http.routes import runs, system, ui, workflows
from rayflow.server.plane import ControlPlane

LAG_EVERY_S = 0.5
DESCRIPTION = ("rayflow's control plane over HTTP. Every error is "
               '`{"error": {"code", "message", "field"}}`. With `--auth token` every call but '
               "`/healthz` needs `Authorization: Bearer <token>`.")


def create_app(plane: ControlPlane, *, auth: str, limits: Limits | None = None,
               metrics: ServerMetrics | None = None) -> FastAPI:
    """The app serving ``plane``. ``auth``: "token" (bearer tokens checked against
    ``plane.store``) or "none" (every caller is "anonymous" with every scope)."""
    limits = limits or Limits()
    metrics = metrics or ServerMetrics()
    app = FastAPI(title="rayflow", version="1", description=DESCRIPTION, lifespan=_lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.plane = plane
    app.state.auth = Authenticator(auth, lambda: plane.store)
    app.state.limits = limits
    app.state.final_runs = FinalRuns()
    app.state.metrics = metrics
    if not metrics.sourced:
        metrics.set_sources(plane.in_flight, _pool_source(plane))
    for module in (runs, workflows, system, ui):
        app.include_router(module.router)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, limits=limits, by_token=auth == "token")
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app


def _pool_source(plane: ControlPlane) -> Any:
    """The store's pool gauge callback, when the store has one (``pool_stats()``)."""
    try:
        stats = getattr(plane.store, "pool_stats", None)
    except Exception:  # noqa: BLE001 - a plane without a store yet: no pool gauge
        return None
    return stats if callable(stats) else None


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    task = asyncio.create_task(_watch_lag(app.state.metrics))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _watch_lag(metrics: ServerMetrics, every_s: float = LAG_EVERY_S) -> None:
    """Sets the loop-lag gauge to how late each ``every_s`` sleep woke (a blocked loop shows)."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(every_s)
        metrics.set_loop_lag(loop.time() - started - every_s)
