"""Connecting to Ray and reading the cluster's shape. One of the few modules importing ray.

Owns ``ensure_ray`` (reuse a session, join ``address``, or start local Ray) and
``cluster_shape`` (alive nodes' resources for the feasibility check).
"""

from __future__ import annotations

import logging
import os

import ray

from rayflow.plan import ClusterShape

log = logging.getLogger("rayflow")


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Reuse the process's Ray session; else join ``address`` (or RAY_ADDRESS); else start local Ray."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict = {"ignore_reinit_error": True, "logging_level": logging.WARNING,
                    "configure_logging": True}
    if address is None:
        kwargs["address"] = "local"   # a new local instance, never a cluster left running on this machine
        kwargs["include_dashboard"] = False
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
    ray.init(**kwargs)


def cluster_shape() -> ClusterShape:
    """The resources of every alive node."""
    nodes = tuple(dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive"))
    return ClusterShape(nodes)


def is_initialized() -> bool:
    return ray.is_initialized()


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
