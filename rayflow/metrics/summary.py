"""Per-run metrics from component records: the dict ``RunHandle.metrics()`` returns.

Pure: works the same on live records (the driver's recorder) and on records read
back from the store by another process. Must not import ray.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from rayflow.graph import Dag
from rayflow.graph.analysis import critical_path
from rayflow.store.port import ComponentRecord, RunRecord

FINISHED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CACHED"}
LIVE = {"PENDING", "RUNNING"}


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    return _at(sorted(v for v in values if v is not None and not math.isnan(v)), q)


def spread(values: Iterable[float]) -> dict[str, float | None]:
    """p50, p95 and p99 of ``values`` (sorted once)."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    return {"p50": _at(data, 50), "p95": _at(data, 95), "p99": _at(data, 99)}


def _at(data: list[float], q: float) -> float | None:
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def run_metrics(run: RunRecord, components: list[ComponentRecord], *, now: float | None = None,
                dag: Dag | None = None, per_component: bool = True) -> dict[str, Any]:
    """``wall_s``, ``components``, ``critical_path``, ``critical_path_s``, ``throughput_cps``, ``queue_wait_s``.

    Once nothing is pending or running, the critical path is measured: the chain that
    delayed the end (from the component that ended last, back through the upstream each
    waited for last), its length from the run's start to that end, queue waits included.
    While a run is live it is the longest chain through finished components (measured),
    running ones (elapsed so far) and pending ones (the run's median duration so far);
    ``critical_path_remaining_s`` is the estimated part of its length.
    """
    now = time.time() if now is None else now
    start = run.started_at or run.created_at
    end = run.ended_at or now
    wall = max(0.0, end - start) if start else 0.0
    durations = spread(c.duration_s for c in components)
    weights, estimated = _live_weights(components, now, durations["p50"] or 0.0)
    measured = _delay_chain(components, start) if not any(c.state in LIVE for c in components) else None
    path, length = measured or _critical_path(components, dag, weights)
    finished = sum(1 for c in components if c.state in FINISHED)
    out = {
        "run_id": run.run_id,
        "name": run.name,
        "status": run.status,
        "wall_s": wall,
        "critical_path": path,
        "critical_path_s": length,
        "critical_path_remaining_s": sum(weights[c] for c in path if c in estimated),
        "throughput_cps": finished / wall if wall > 0 else 0.0,
        "queue_wait_s": spread(c.queued_s for c in components),
        "duration_s": durations,
        "counts": _counts(components),
        "attempts": sum(c.attempts for c in components),
        "retries": sum(max(0, c.attempts - 1) for c in components),
        "cpu_s": sum(c.cpu_s or 0.0 for c in components),
        "peak_rss_bytes": max((c.peak_rss_bytes or 0 for c in components), default=0) or None,
    }
    if per_component:
        out["components"] = {c.component_id: _component_view(c) for c in components}
    return out


def _component_view(c: ComponentRecord) -> dict[str, Any]:
    return {
        "state": c.state,
        "attempts": c.attempts,
        "queued_s": c.queued_s,
        "started_at": c.started_at,
        "ended_at": c.ended_at,
        "duration_s": c.duration_s,
        "node_id": c.node_id,
        "worker_id": c.worker_id,
        "cached": c.cached,
        "error": c.error,
        "traceback": c.traceback,
        "resources": c.resources,
        "cpu_s": c.cpu_s,
        "peak_rss_bytes": c.peak_rss_bytes,
        "outcome": c.outcome,
    }


def _counts(components: list[ComponentRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in components:
        out[c.state] = out.get(c.state, 0) + 1
    return out


def _live_weights(components: list[ComponentRecord], now: float,
                  typical_s: float) -> tuple[dict[str, float], set[str]]:
    """Weight of each component for the live critical path, and which weights are estimates.

    Finished: measured duration. Running with every upstream finished: time since it became
    ready (so far), at least the typical duration. Pending, or waiting on upstreams: the run's
    median duration so far. Never run (skipped, cancelled, upstream failed): 0.
    """
    ended = {c.component_id: c.ended_at for c in components}
    weights: dict[str, float] = {}
    estimated: set[str] = set()
    for c in components:
        if c.duration_s is not None:
            weights[c.component_id] = c.duration_s
        elif c.state in ("PENDING", "RUNNING"):
            ups = [ended.get(u) for u in c.upstream]
            if c.state == "RUNNING" and all(e is not None for e in ups):
                ready = max([now if c.submitted_at is None else c.submitted_at, *ups])
                weights[c.component_id] = max(now - ready, typical_s)
            else:
                weights[c.component_id] = typical_s
            estimated.add(c.component_id)
        else:
            weights[c.component_id] = 0.0
    return weights, estimated


def _delay_chain(components: list[ComponentRecord], start: float | None) -> tuple[list[str], float] | None:
    """The chain that delayed the end: the component that ended last, then, back from each,
    the upstream that ended last (what it waited for), to one that waited for none; its
    length is from ``start`` to the last end (queue waits and scheduling gaps included).
    None when no component ended."""
    ended = {c.component_id: c for c in components if c.ended_at is not None}
    if not ended:
        return None
    last = max(ended.values(), key=lambda c: (c.ended_at, c.component_id))
    path, seen = [last.component_id], {last.component_id}
    current = last
    while True:
        ups = [ended[u] for u in current.upstream if u in ended and u not in seen]
        if not ups:
            break
        current = max(ups, key=lambda c: (c.ended_at, c.component_id))
        path.append(current.component_id)
        seen.add(current.component_id)
    path.reverse()
    begin = start if start is not None else min(c.submitted_at or c.started_at or c.ended_at for c in ended.values())
    return path, max(0.0, float(last.ended_at) - float(begin))


def _critical_path(components: list[ComponentRecord], dag: Dag | None,
                   weights: dict[str, float]) -> tuple[list[str], float]:
    """Longest chain by ``weights`` (measured durations, estimates where still unknown)."""
    if not components:
        return [], 0.0
    if dag is None:
        ids = weights.keys()
        dag = Dag({c.component_id: [u for u in c.upstream if u in ids] for c in components})
    return critical_path(dag, weights)
