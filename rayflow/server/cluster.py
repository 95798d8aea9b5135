"""What the server sees of its cluster: the servers sharing the store and the runs each
drives (their leases), Ray's nodes and resources, the store's and the result cache's health.

Owns ``cluster_view(plane)``, the body of ``GET /v1/cluster`` (the web UI's cluster page).
Each part is read on its own: a part that cannot be read says so (``ok: false`` and a
one-line reason) and the others are still shown. Must not show a password: URLs are
redacted, and a reason is the error's first line, which rayflow's errors keep secret-free.
"""

from __future__ import annotations

import time
from typing import Any

from rayflow.core.redact import redact

LEASE_PAGE = 1000   # the most running runs listed with their owners


def cluster_view(plane: Any) -> dict[str, Any]:
    """``{"servers": [...], "ray": {...}, "store": {...}, "cache": {...}, "at": now}``."""
    return {"servers": _part(_servers, plane), "ray": _part(_ray, plane), "store": _part(_store, plane),
            "cache": _part(_cache, plane), "at": time.time()}


def _part(read: Any, plane: Any) -> dict[str, Any]:
    try:
        return {"ok": True, **read(plane)}
    except Exception as exc:  # noqa: BLE001 - a part that cannot be read is shown as such
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def _servers(plane: Any) -> dict[str, Any]:
    store = plane.store
    now = store.db_now()
    running = store.list_runs_page(status="RUNNING", limit=LEASE_PAGE)
    lease_s = plane.service_lease_s()
    servers = []
    records = store.list_servers()
    for s in records:
        owner = str(s.info.get("owner") or f"server:{s.server_id}")
        leases = [{"run_id": r.run_id, "name": r.name, "heartbeat_age_s": _age(now, r.heartbeat_at),
                   "epoch": r.lease_epoch} for r in running if r.owner == owner]
        servers.append({"server_id": s.server_id, "url": s.url, "host": s.host, "pid": s.pid,
                        "started_at": s.started_at, "heartbeat_age_s": _age(now, s.heartbeat_at),
                        "this": s.server_id == plane.runner.server_id, "driving": s.info.get("driving"),
                        "max_runs": s.info.get("max_runs"), "leases": leases})
    owners = {str(s.info.get("owner") or f"server:{s.server_id}") for s in records}
    others = [{"run_id": r.run_id, "name": r.name, "owner": r.owner, "heartbeat_age_s": _age(now, r.heartbeat_at)}
              for r in running if r.owner and r.owner not in owners]
    return {"servers": servers, "lease_s": lease_s, "other_drivers": others}


def _age(now: float, at: float | None) -> float | None:
    return None if at is None else max(0.0, now - at)


def _ray(plane: Any) -> dict[str, Any]:
    if plane.executor != "ray":
        return {"executor": plane.executor, "connected": False, "nodes": [], "total": {}, "available": {},
                "dashboard_url": None}
    from rayflow.execute.ray import session

    nodes = session.nodes()
    total: dict[str, float] = {}
    for n in nodes:
        if n["alive"]:
            for k, v in n["resources"].items():
                total[k] = total.get(k, 0.0) + float(v)
    return {"executor": "ray", "connected": session.connected(), "nodes": nodes, "total": total,
            "available": session.available_resources(), "dashboard_url": session.dashboard_url()}


def _store(plane: Any) -> dict[str, Any]:
    started = time.perf_counter()
    plane.store.db_now()
    url = plane.service.settings.configured_store_url()
    return {"kind": type(plane.store).__name__, "url": redact(url) if url else "the default SQLite file",
            "latency_ms": (time.perf_counter() - started) * 1000.0}


def _cache(plane: Any) -> dict[str, Any]:
    stats = plane.service.cache().stats()
    return {"hits": stats.get("hits"), "misses": stats.get("misses"), "hit_ratio": stats.get("hit_ratio"),
            "tiers": {name: {k: v for k, v in tier.items() if isinstance(v, (int, float, str, bool)) or v is None}
                      for name, tier in stats.get("tiers", {}).items()}}
