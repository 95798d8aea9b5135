"""Run reports: plotly figures, a self-contained HTML page and the notebook view of a run.

The only package that imports plotly. Everything works from the store's records and
the metrics dict, so a report can be made after the cluster is gone. Must not import ray.
"""

from rayflow.report.figures import dag_figure, gantt
from rayflow.report.html import render_html, write_html
from rayflow.report.notebook import handle_html, run_html

__all__ = ["dag_figure", "gantt", "handle_html", "render_html", "run_html", "write_html"]
