"""The server's HTTP API (FastAPI): routes over the ``ControlPlane``, auth, limits, metrics.

``create_app(plane, auth=, limits=, metrics=)`` builds the app ``rayflow server`` serves;
``Limits`` and ``ServerMetrics`` are its knobs and its Prometheus registry. The one
package of rayflow that imports FastAPI / Starlette (and ``metrics`` the one module that
imports prometheus_client). Must not hold server logic: the plane decides, this speaks HTTP.
"""

from __future__ import annotations

from rayflow.server.http.app import create_app
from rayflow.server.http.limits import Limits
from rayflow.server.http.metrics import ServerMetrics

__all__ = ["Limits", "ServerMetrics", "create_app"]
