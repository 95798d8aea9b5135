"""Metrics across runs: throughput, latency percentiles, queue depth, errors, and what
components requested against what they used (CPU time, peak memory).

Pure: reads run and component records (from the store, so it works after the cluster
is gone). ``rayflow stats`` prints it. Must not import ray.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rayflow.core.states import OWN_FAILURE_STATES
from rayflow.metrics.summary import spread as _pcts
from rayflow.store.port import ComponentRecord, RunRecord


def queue_depth(components: list[ComponentRecord]) -> dict[str, float]:
    """Components ready but not yet started, over time: the maximum and the time-weighted mean."""
    edges: list[tuple[float, int]] = []
    for c in components:
        if c.started_at is not None and c.queued_s:
            edges.append((c.started_at - c.queued_s, 1))
            edges.append((c.started_at, -1))
    if not edges:
        return {"max": 0, "mean": 0.0}
    edges.sort()
    depth = peak = 0
    area = 0.0
    last = edges[0][0]
    for t, step in edges:
        area += depth * (t - last)
        depth += step
        peak = max(peak, depth)
        last = t
    span = edges[-1][0] - edges[0][0]
    return {"max": peak, "mean": area / span if span > 0 else 0.0}


def usage_by_component(components: list[ComponentRecord],
                       workflows: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Per component: runs, requested CPU-seconds vs used CPU time, requested vs peak memory.
    With ``workflows`` (run id -> workflow name) a component is ``workflow/component``: two
    workflows' components that share an id are different components."""
    acc: dict[str, dict[str, Any]] = defaultdict(lambda: {"runs": 0, "requested_cpu_s": 0.0, "used_cpu_s": 0.0,
                                                          "requested_memory": None, "peak_rss_bytes": None,
                                                          "duration_s": []})
    for c in components:
        if c.duration_s is None:
            continue
        row = acc[c.component_id if workflows is None else f"{workflows.get(c.run_id, '?')}/{c.component_id}"]
        row["runs"] += 1
        row["requested_cpu_s"] += float(c.resources.get("num_cpus", 1.0)) * c.duration_s
        row["used_cpu_s"] += c.cpu_s or 0.0
        if c.resources.get("memory"):
            row["requested_memory"] = max(row["requested_memory"] or 0, int(c.resources["memory"]))
        if c.peak_rss_bytes:
            row["peak_rss_bytes"] = max(row["peak_rss_bytes"] or 0, c.peak_rss_bytes)
        row["duration_s"].append(c.duration_s)
    out = {}
    for cid, row in acc.items():
        durations = row.pop("duration_s")
        row["duration_s"] = _pcts(durations)
        req = row["requested_cpu_s"]
        row["cpu_utilization"] = row["used_cpu_s"] / req if req > 0 else None
        out[cid] = row
    return out


_CONNECTOR_SUMS = ("statements", "requests", "retries", "failures", "rows_read", "rows_written",
                   "rate_limit_wait_s", "breaker_opened")


def connectors(components: list[ComponentRecord], workflows: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Per connector component (``workflow/component``): its calls' figures summed over the
    runs (``outcome["connector"]``: SQL statements and rows, HTTP requests, retries,
    failures, rate-limit waits, breaker openings), and the largest pool seen."""
    out: dict[str, dict[str, Any]] = {}
    for c in components:
        figures = c.outcome.get("connector") if isinstance(c.outcome, dict) else None
        if not isinstance(figures, dict):
            continue
        key = c.component_id if workflows is None else f"{workflows.get(c.run_id, '?')}/{c.component_id}"
        row = out.setdefault(key, {"kind": "", "runs": 0, **dict.fromkeys(_CONNECTOR_SUMS, 0), "pool_size": 0})
        row["runs"] += 1
        for kind in ("sql", "http"):
            section = figures.get(kind)
            if not isinstance(section, dict):
                continue
            row["kind"] = kind if row["kind"] in ("", kind) else "sql+http"
            for name in _CONNECTOR_SUMS:
                value = section.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[name] += value
            pool = section.get("pool")
            if isinstance(pool, dict) and isinstance(pool.get("size"), int):
                row["pool_size"] = max(row["pool_size"], pool["size"])
    return out


def aggregate(runs: list[RunRecord], components: list[ComponentRecord]) -> dict[str, Any]:
    """One summary over ``runs`` and their ``components``."""
    starts = [r.started_at or r.created_at for r in runs]
    ends = [r.ended_at for r in runs if r.ended_at]
    span = (max(ends) - min(starts)) if runs and ends else 0.0
    finished = [c for c in components if c.ended_at is not None]
    run_walls = [r.ended_at - (r.started_at or r.created_at) for r in runs if r.ended_at]
    by_status: dict[str, int] = defaultdict(int)
    for r in runs:
        by_status[r.status] += 1
    return {
        "runs": len(runs),
        "runs_by_status": dict(by_status),
        "components": len(components),
        "window_s": span,
        "workflows_per_s": len(ends) / span if span > 0 else 0.0,
        "components_per_s": len(finished) / span if span > 0 else 0.0,
        "run_latency_s": _pcts(run_walls),
        "component_latency_s": _pcts([c.duration_s for c in components if c.duration_s is not None]),
        "queue_wait_s": _pcts([c.queued_s for c in components if c.queued_s is not None]),
        "queue_depth": queue_depth(components),
        "errors": sum(1 for c in components if c.state in OWN_FAILURE_STATES),
        "retries": sum(max(0, c.attempts - 1) for c in components),
        "by_component": usage_by_component(components, {r.run_id: r.name for r in runs}),
        "connectors": connectors(components, {r.run_id: r.name for r in runs}),
    }
