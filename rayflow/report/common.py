"""Plain helpers shared by the report's figures and pages: colours, formatting, the DAG.

Owns what the run report needs beyond the metrics dict: the Dag rebuilt from component
records' ``upstream`` lists, the measured bottlenecks, state colours and number formats.
No plotly here and no I/O; must not import ray.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from rayflow.core.errors import SpecError
from rayflow.core.states import OWN_FAILURE_STATES
from rayflow.graph import Dag
from rayflow.graph.analysis import Bottleneck, bottlenecks
from rayflow.store.port import ComponentRecord

FAILED_STATES = OWN_FAILURE_STATES   # a component that failed itself (shown red)
CRITICAL_COLOUR = "#ff7f0e"
QUEUE_COLOUR = "rgba(140, 140, 140, 0.35)"
EDGE_COLOUR = "rgba(120, 120, 120, 0.45)"
STATE_COLOURS: dict[str, str] = {
    "SUCCEEDED": "#4c78a8",
    "CACHED": "#72b7b2",
    "RUNNING": "#9ecae9",
    "PENDING": "#d9d9d9",
    "FAILED": "#d62728",
    "TIMED_OUT": "#d62728",
    "UPSTREAM_FAILED": "#eeca3b",
    "CANCELLED": "#b279a2",
    "SKIPPED": "#bab0ac",
}
OTHER_COLOUR = "#9d9d9d"


def colour_of(state: str) -> str:
    return STATE_COLOURS.get(state, OTHER_COLOUR)


def esc(value: Any) -> str:
    """HTML-escape anything users wrote (ids, errors, names) before it reaches a page or a label."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_s(value: float | None) -> str:
    """Seconds as a short human string: ``-``, ``12.3ms``, ``4.56s``, ``2m05s``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value < 1:
        return f"{value * 1000:.1f}ms"
    if value < 120:
        return f"{value:.2f}s"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}m{seconds:04.1f}s"


def short(value: str | None, n: int = 8) -> str:
    return value[:n] if value else "-"


def records_dag(components: list[ComponentRecord]) -> Dag | None:
    """The run's DAG from the records' ``upstream`` lists; None when they do not form one."""
    ids = {c.component_id for c in components}
    deps = {c.component_id: [u for u in c.upstream if u in ids] for c in components}
    try:
        return Dag(deps)
    except SpecError:
        return None


def measured_bottlenecks(metrics: Mapping[str, Any], components: list[ComponentRecord],
                         *, top: int = 5) -> list[Bottleneck]:
    """Critical-path components by share of the measured critical path, then wide joins/splits."""
    dag = records_dag(components)
    if dag is None:
        return []
    durations = {cid: c.get("duration_s") or 0.0 for cid, c in metrics["components"].items()}
    path = [cid for cid in metrics.get("critical_path", []) if cid in dag]
    return bottlenecks(dag, path, float(metrics.get("critical_path_s") or 0.0), durations, top=top)


def run_origin(metrics: Mapping[str, Any]) -> float | None:
    """The time the first component became ready (UNIX s): the Gantt chart's zero."""
    starts = [c["started_at"] - (c.get("queued_s") or 0.0)
              for c in metrics["components"].values() if c.get("started_at") is not None]
    return min(starts) if starts else None
