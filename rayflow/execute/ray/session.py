"""Connecting to Ray and reading the cluster's shape. One of the few modules importing ray.

Owns ``ensure_ray`` (reuse a session, join ``address``, or start local Ray; then, on a
cluster of several nodes, the signing-key keyring: rayflow.execute.ray.keyring) and
``cluster_shape`` (alive nodes' resources for the feasibility check).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from rayflow.core import config
from rayflow.core.errors import ConfigError
from rayflow.plan import ClusterShape


def _token_auth_for_clusters() -> None:
    """Clusters started with `ray start` require token auth; clients find the token in
    ~/.ray/auth_token but must be told to send it (RAY_AUTH_MODE=token), before ray loads.
    Once ray is loaded it is too late: the variable would reach only the processes Ray
    starts, so a local Ray's GCS would ask this process for a token it never sends."""
    if "ray" in sys.modules:
        return
    if "RAY_AUTH_MODE" not in os.environ and os.path.exists(os.path.expanduser("~/.ray/auth_token")):
        os.environ["RAY_AUTH_MODE"] = "token"


_token_auth_for_clusters()

import ray  # noqa: E402 - after the auth mode is settled

from rayflow.execute.ray import compat, keyring  # noqa: E402 - imports ray

log = logging.getLogger("rayflow")
_started_here = False   # whether ensure_ray started (or joined) the session, so shutdown may end it
_dashboard = ""         # the dashboard of the cluster ensure_ray joined ("" when none or unknown)


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Reuse the process's Ray session; else join ``address`` (or RAY_ADDRESS); else start local Ray."""
    if ray.is_initialized():
        keyring.ensure()
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict = {"ignore_reinit_error": True, "logging_level": logging.WARNING,
                    "configure_logging": True}
    if address is None:
        kwargs["address"] = "local"   # a new local instance, never a cluster left running on this machine
        kwargs["include_dashboard"] = False
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        warm = config.warm_workers(num_cpus or os.cpu_count() or 1)
        if warm:   # fractional requests: keep their workers between runs (rayflow.core.config.warm_workers)
            kwargs["_system_config"] = {"num_workers_soft_limit": warm, "worker_maximum_startup_concurrency": warm}
    else:
        kwargs["address"] = address
        _check_reachable(address)
    try:
        context = ray.init(**kwargs)
        global _started_here, _dashboard
        _started_here = True
        _dashboard = str(getattr(context, "dashboard_url", "") or "")
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {first}") from None
    keyring.ensure()   # one signing key for a cluster of several nodes


def _check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds, with one line, when host:port does not answer (Ray would retry for minutes)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or target in ("auto", "local"):
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {exc.strerror or exc}") from None


def cluster_shape() -> ClusterShape:
    """The resources of every alive node."""
    nodes = tuple(dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive"))
    return ClusterShape(nodes)


def nodes() -> list[dict[str, Any]]:
    """Every node the cluster knows (alive or not): its id, address, whether it is alive,
    its total resources; empty when this process is not connected."""
    if not ray.is_initialized():
        return []
    return [{"node_id": n.get("NodeID"), "address": n.get("NodeManagerAddress"), "alive": bool(n.get("Alive")),
             "resources": {k: v for k, v in dict(n.get("Resources", {})).items() if not k.startswith("node:")}}
            for n in ray.nodes()]


def available_resources() -> dict[str, float]:
    """What the cluster has free now, by resource name; empty when not connected."""
    if not ray.is_initialized():
        return {}
    return {k: float(v) for k, v in ray.available_resources().items() if not k.startswith("node:")}


def dashboard_url() -> str | None:
    """The Ray dashboard of the cluster this process joined (http://host:port), when it has
    one and rayflow connected; None otherwise (local Ray runs without a dashboard)."""
    if not _dashboard:
        return None
    return _dashboard if _dashboard.startswith(("http://", "https://")) else f"http://{_dashboard}"


def connected() -> bool:
    """Whether this process is connected to Ray now."""
    return ray.is_initialized()


def cluster_outlives_process() -> bool:
    """Whether this process joined a cluster started elsewhere (so work left there survives
    the process) rather than running Ray inside itself."""
    return not compat.runs_ray_here()


def shutdown() -> None:
    """Disconnect from Ray if rayflow connected; a session the user started stays."""
    global _started_here
    if _started_here and ray.is_initialized():
        ray.shutdown()
        keyring.reset()
    _started_here = False
