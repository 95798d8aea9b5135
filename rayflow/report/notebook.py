"""Rich display of a run in Jupyter: an HTML snippet with summary, Gantt chart and table.

Owns the notebook view (``RunHandle._repr_html_`` calls ``run_html``). The snippet
inlines plotly.js (``include_plotlyjs=True``), so it renders offline, in classic
Notebook and in JupyterLab, without a CDN or require.js. Styles are scoped to the
snippet. Must not import ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from rayflow.report.common import colour_of, esc
from rayflow.report.figures import gantt
from rayflow.report.html import CSS, components_table_html, figure_html, summary_html

NOTEBOOK_TABLE_ROWS = 50


class HasMetrics(Protocol):
    """Anything with ``metrics()`` returning the run-metrics dict, such as a ``RunHandle``."""

    def metrics(self) -> dict[str, Any]: ...


def handle_html(metrics: Mapping[str, Any], *, max_rows: int = NOTEBOOK_TABLE_ROWS,
                with_gantt: bool = True, page_url: str | None = None) -> str:
    """The notebook snippet for one run's metrics dict (``run_metrics`` / ``RunHandle.metrics()``);
    ``page_url``: the run's page on a rayflow server, linked under the title."""
    status = str(metrics.get("status") or "-")
    link = (f' &middot; <a href="{esc(page_url)}" target="_blank" rel="noopener">open on the server</a>'
            if page_url and page_url.startswith(("http://", "https://")) else "")
    head = (f"<h2 style=\"margin-top:4px\">Run {esc(metrics.get('run_id') or '-')} "
            f"<span class=\"badge\" style=\"background:{colour_of(status)}\">{esc(status)}</span></h2>"
            f"<p class=\"meta\">workflow <b>{esc(metrics.get('name') or '-')}</b>{link}</p>")
    parts = [f"<style>{CSS}</style>", '<div class="rayflow-report">', head, summary_html(metrics)]
    if with_gantt and metrics.get("components"):
        parts.append(figure_html(gantt(metrics), include_plotlyjs=True))
    parts += [components_table_html(metrics, max_rows=max_rows), "</div>"]
    return "\n".join(parts)


def run_html(handle: HasMetrics, **options: Any) -> str:
    """``handle_html`` of a live or stored run handle (reads its metrics once)."""
    return handle_html(handle.metrics(), **options)
