"""Plotly figures of one run: the Gantt timeline and the layered DAG.

Pure functions from the metrics dict (``rayflow.metrics.summary.run_metrics``) and
component records to ``plotly.graph_objects.Figure`` values; no I/O. Every text a
user wrote (ids, errors) is HTML-escaped before it becomes a label or hover text.
This package is the only importer of plotly; must not import ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import plotly.graph_objects as go

from rayflow.graph.analysis import levels
from rayflow.report.common import (
    CRITICAL_COLOUR,
    EDGE_COLOUR,
    FAILED_STATES,
    QUEUE_COLOUR,
    colour_of,
    esc,
    fmt_s,
    records_dag,
    run_origin,
    short,
)
from rayflow.store.port import ComponentRecord

MAX_GANTT_ROWS = 300
MAX_DAG_NODES = 500
MAX_LABELLED_NODES = 60
ROW_PX = 24
TALL_ROWS = 40
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


@dataclass(frozen=True)
class Span:
    """One component's bar: seconds since the run's first ready time."""

    cid: str
    row: str
    start: float
    end: float
    queued: float
    state: str
    critical: bool
    hover: str


def gantt(metrics: Mapping[str, Any], *, by: Literal["component", "worker"] = "component",
          max_rows: int = MAX_GANTT_ROWS) -> go.Figure:
    """A timeline: one bar per component (started -> ended), queue wait as a lighter bar before it.

    Rows are components (default, ordered by start) or workers (``by="worker"``; queue
    waits are left out there, as they belong to no worker). Critical-path components
    are drawn in their own colour, failed and timed-out ones in red.
    """
    if by not in ("component", "worker"):
        raise ValueError(f"gantt(by={by!r}): expected 'component' or 'worker'")
    spans = _spans(metrics, by=by)
    total = len(metrics["components"])
    shown = _select_spans(spans, max_rows) if by == "component" else spans
    fig = go.Figure()
    if by == "component":
        fig.add_trace(_queue_trace(shown))
    for name, group in _categories(shown).items():
        fig.add_trace(_bar_trace(name, group, with_text=by == "worker"))
    rows = list(dict.fromkeys(s.row for s in shown))
    _gantt_layout(fig, rows, _gantt_title(metrics, by, len(shown), len(spans), total))
    return fig


def _spans(metrics: Mapping[str, Any], *, by: str) -> list[Span]:
    origin = run_origin(metrics)
    critical = set(metrics.get("critical_path") or [])
    out: list[Span] = []
    for cid, c in metrics["components"].items():
        if c.get("started_at") is None or origin is None:
            continue
        start = c["started_at"] - origin
        end = (c.get("ended_at") or c["started_at"] + (c.get("duration_s") or 0.0)) - origin
        row = esc(cid) if by == "component" else _worker_label(c)
        out.append(Span(cid, row, start, max(start, end), c.get("queued_s") or 0.0, c["state"],
                        cid in critical, _hover(cid, c, cid in critical)))
    out.sort(key=lambda s: (s.start, s.cid))
    return out


def _worker_label(c: Mapping[str, Any]) -> str:
    if not c.get("worker_id"):
        return "(no worker)"
    return f"worker {short(c['worker_id'])} @ {short(c.get('node_id'))}"


def _hover(cid: str, c: Mapping[str, Any], critical: bool) -> str:
    lines = [f"<b>{esc(cid)}</b>" + (" (critical path)" if critical else ""),
             f"state: {esc(c['state'])}   attempts: {c.get('attempts', 0)}",
             f"duration: {fmt_s(c.get('duration_s'))}   queue wait: {fmt_s(c.get('queued_s'))}",
             f"node: {esc(short(c.get('node_id'), 12))}   worker: {esc(short(c.get('worker_id'), 12))}"]
    if c.get("error"):
        lines.append("error: " + esc(str(c["error"])[:200]))
    return "<br>".join(lines)


def _select_spans(spans: list[Span], max_rows: int) -> list[Span]:
    """At most ``max_rows`` longest spans, plus every critical-path one; in start order."""
    if len(spans) <= max_rows:
        return spans
    longest = sorted(spans, key=lambda s: s.end - s.start, reverse=True)[:max_rows]
    keep = {s.cid for s in longest} | {s.cid for s in spans if s.critical}
    return [s for s in spans if s.cid in keep]


def _category(span: Span) -> str:
    if span.state in FAILED_STATES:
        return span.state.lower().replace("_", " ")
    if span.critical:
        return "critical path"
    return span.state.lower().replace("_", " ")


def _categories(spans: list[Span]) -> dict[str, list[Span]]:
    groups: dict[str, list[Span]] = {}
    for span in spans:
        groups.setdefault(_category(span), []).append(span)
    rank = {"critical path": 0, "failed": 1, "timed out": 2}
    return dict(sorted(groups.items(), key=lambda kv: (rank.get(kv[0], 9), kv[0])))


def _min_width(spans: list[Span]) -> float:
    """Zero-length bars (cached, instant) still get a sliver so they can be seen and hovered."""
    extent = max((s.end for s in spans), default=0.0)
    return max(extent * 0.003, 1e-4)


def _queue_trace(spans: list[Span]) -> go.Bar:
    waits = [s for s in spans if s.queued > 0]
    return go.Bar(name="queue wait", orientation="h", y=[s.row for s in waits],
                  base=[s.start - s.queued for s in waits], x=[s.queued for s in waits],
                  marker={"color": QUEUE_COLOUR, "line": {"width": 0}},
                  hovertext=[f"{esc(s.cid)}: queued {fmt_s(s.queued)}" for s in waits],
                  hovertemplate="%{hovertext}<extra></extra>", legendrank=900)


def _bar_trace(name: str, spans: list[Span], *, with_text: bool) -> go.Bar:
    colour = CRITICAL_COLOUR if name == "critical path" else colour_of(spans[0].state)
    sliver = _min_width(spans)
    return go.Bar(
        name=name, orientation="h", y=[s.row for s in spans],
        base=[s.start for s in spans], x=[max(s.end - s.start, sliver) for s in spans],
        marker={"color": colour,
                "line": {"color": [CRITICAL_COLOUR if s.critical else colour for s in spans],
                         "width": [2.5 if s.critical else 0.5 for s in spans]}},
        customdata=[s.cid for s in spans],
        text=[esc(s.cid) for s in spans] if with_text else None,
        textposition="inside" if with_text else None, insidetextanchor="start",
        hovertext=[s.hover for s in spans], hovertemplate="%{hovertext}<extra></extra>",
        legendrank=100 if name == "critical path" else 500,
    )


def _gantt_title(metrics: Mapping[str, Any], by: str, shown: int, started: int, total: int) -> str:
    what = "by worker, run" if by == "worker" else "of"
    title = f"Timeline {what} {esc(metrics.get('run_id') or 'run')}: {started} of {total} components ran"
    if shown < started:
        title += f" (showing the {shown} longest, with every critical-path component)"
    return title


def _gantt_layout(fig: go.Figure, rows: list[str], title: str) -> None:
    ticks = [r if len(r) <= 48 else r[:45] + "..." for r in rows]
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"}, barmode="overlay", font=FONT,
        height=max(320, 150 + ROW_PX * len(rows)), template="plotly_white",
        margin={"l": 10, "r": 20, "t": 90, "b": 50}, bargap=0.25, hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
    )
    tall = len(rows) > TALL_ROWS  # the time axis goes on top, where a reader starts
    fig.update_xaxes(title_text="seconds since the first component was ready", rangemode="tozero",
                     showgrid=True, zeroline=True, side="top" if tall else "bottom")
    if tall:  # title, then legend, then the axis: placed in pixels from the top of the figure
        height = fig.layout.height
        fig.update_layout(margin={"t": 160},
                          title={"yref": "container", "y": 1 - 16 / height, "yanchor": "top"},
                          legend={"yref": "container", "y": 1 - 56 / height, "yanchor": "top"})
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=rows,
                     tickvals=rows, ticktext=ticks, autorange="reversed", automargin=True)


def dag_figure(components: list[ComponentRecord], critical_path: list[str], *,
               max_nodes: int = MAX_DAG_NODES) -> go.Figure:
    """The DAG in layers: x = topological level, y = place within the level.

    Edges are lines, nodes coloured by state; the critical path's edges and nodes are
    drawn in the critical-path colour. Beyond ``max_nodes`` only a note is drawn.
    """
    fig = go.Figure()
    dag = records_dag(components) if components else None
    if dag is None or len(dag) > max_nodes:
        why = ("no components" if not components else "the records' upstream lists do not form a DAG"
               if dag is None else f"{len(dag)} components; the drawing is limited to {max_nodes}")
        return _note_figure(fig, f"DAG not drawn: {why}.")
    pos = _layered_positions(levels(dag))
    on_path = [(u, v) for u, v in zip(critical_path, critical_path[1:], strict=False) if u in pos and v in pos]
    path_edges = set(on_path)
    plain = [(u, v) for v in dag.nodes for u in dag.deps(v) if (u, v) not in path_edges]
    fig.add_trace(_edge_trace(plain, pos, "dependency", EDGE_COLOUR, 1.2))
    fig.add_trace(_edge_trace(on_path, pos, "critical path", CRITICAL_COLOUR, 3.5))
    states = {c.component_id: c for c in components}
    for state, ids in _by_state(states, set(critical_path)).items():
        fig.add_trace(_node_trace(state, ids, states, pos, set(critical_path)))
    _dag_layout(fig, pos, len(dag))
    return fig


def _note_figure(fig: go.Figure, note: str) -> go.Figure:
    fig.add_annotation(text=esc(note), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14})
    fig.update_layout(height=160, template="plotly_white", font=FONT, title="DAG",
                      xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def _layered_positions(level_list: list[list[str]]) -> dict[str, tuple[float, float]]:
    pos: dict[str, tuple[float, float]] = {}
    for x, level in enumerate(level_list):
        middle = (len(level) - 1) / 2
        for i, node in enumerate(level):
            pos[node] = (float(x), middle - i)
    return pos


def _edge_trace(edges: list[tuple[str, str]], pos: Mapping[str, tuple[float, float]],
                name: str, colour: str, width: float) -> go.Scatter:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for u, v in edges:
        xs += [pos[u][0], pos[v][0], None]
        ys += [pos[u][1], pos[v][1], None]
    return go.Scatter(x=xs, y=ys, mode="lines", name=name, hoverinfo="skip",
                      line={"color": colour, "width": width}, showlegend=bool(edges))


def _by_state(records: Mapping[str, ComponentRecord], critical: set[str]) -> dict[str, list[str]]:
    """Ids per state; critical-path ids last, so the legend shows a state's plain marker."""
    groups: dict[str, list[str]] = {}
    for cid in sorted(records, key=lambda i: i in critical):
        groups.setdefault(records[cid].state, []).append(cid)
    return dict(sorted(groups.items()))


def _node_trace(state: str, ids: list[str], records: Mapping[str, ComponentRecord],
                pos: Mapping[str, tuple[float, float]], critical: set[str]) -> go.Scatter:
    labelled = len(pos) <= MAX_LABELLED_NODES
    return go.Scatter(
        x=[pos[i][0] for i in ids], y=[pos[i][1] for i in ids], name=state.lower().replace("_", " "),
        mode="markers+text" if labelled else "markers",
        text=[esc(i if len(i) <= 24 else i[:21] + "...") for i in ids] if labelled else None,
        textposition="top center", textfont={"size": 10},
        marker={"size": 16 if labelled else 9, "color": colour_of(state),
                "line": {"color": [CRITICAL_COLOUR if i in critical else "white" for i in ids],
                         "width": [3 if i in critical else 1 for i in ids]}},
        customdata=ids,
        hovertext=[_node_hover(records[i], i in critical) for i in ids],
        hovertemplate="%{hovertext}<extra></extra>",
    )


def _node_hover(rec: ComponentRecord, critical: bool) -> str:
    lines = [f"<b>{esc(rec.component_id)}</b>" + (" (critical path)" if critical else ""),
             f"state: {esc(rec.state)}   duration: {fmt_s(rec.duration_s)}",
             f"upstream: {len(rec.upstream)}"]
    if rec.error:
        lines.append("error: " + esc(rec.error[:200]))
    return "<br>".join(lines)


def _dag_layout(fig: go.Figure, pos: Mapping[str, tuple[float, float]], n: int) -> None:
    width = max((sum(1 for p in pos.values() if p[0] == x) for x in {p[0] for p in pos.values()}),
                default=1)
    fig.update_layout(
        title={"text": f"DAG: {n} components by topological level (left to right)", "x": 0.01,
               "xanchor": "left"},
        height=int(min(1400, max(360, 130 + 48 * width))), template="plotly_white", font=FONT,
        margin={"l": 20, "r": 20, "t": 80, "b": 40}, hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
    )
    fig.update_xaxes(title_text="level", dtick=1, zeroline=False, showgrid=False)
    fig.update_yaxes(visible=False, zeroline=False, showgrid=False)
