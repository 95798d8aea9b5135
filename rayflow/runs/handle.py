"""``RunHandle``: the handle users hold to one run (``rf.submit``, ``rf.get_run``, ...).

Owns the public surface of API.md (``run_id``, ``status``, ``wait``, ``result``,
``cancel``, ``metrics``, ...) over one ``RunView`` (``rayflow.runs.views``): where the
run is driven (this process, the cluster's tracker, or elsewhere and read from the
store) is the view's business, never branched on here. Must not import
rayflow.service or rayflow.server, and must not import ray.
"""

from __future__ import annotations

from typing import Any

from rayflow.core import config
from rayflow.core.errors import RunCancelled
from rayflow.runs import progress as _progress
from rayflow.runs.active import ActiveRun, lease_s, owner_id
from rayflow.runs.views import RunView
from rayflow.store.port import RunRecord

__all__ = ["ActiveRun", "RunHandle", "lease_s", "owner_id"]


class RunHandle:
    """A handle to one run: ``status``, ``wait``, ``result``, ``cancel``, ``metrics``."""

    def __init__(self, view: RunView) -> None:
        self._view = view

    @property
    def run_id(self) -> str:
        return self._view.run_id

    @property
    def view(self) -> RunView:
        return self._view

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r}, status={self.status()!r})"

    def record(self) -> RunRecord:
        """The run's row in the store (flushes this process's pending writes first)."""
        return self._view.record()

    def status(self) -> str:
        return self._view.status()

    def progress(self) -> dict[str, int]:
        """Component counts by state, e.g. ``{"SUCCEEDED": 10, "RUNNING": 2, "QUEUED": 4, "PENDING": 5}``:
        QUEUED is handed to the executor but not begun (waiting for a CPU, a worker or a
        slot); RUNNING has begun (told once its call has run half a second on Ray)."""
        return self._view.progress()

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        """Batch progress of the run's streams (chains of batch components run as pipelines),
        by the stream's last stage: ``{"aggregate": {"stages": [...], "batches": 120, "rows":
        7_864_320, "rows_out": 120, "total_rows": 33_554_432, "elapsed_s": 2.1, "rows_per_s":
        3.7e6, "done": False}}``. ``rows`` counts input rows whose batch left the last stage;
        ``total_rows`` is None when the input does not tell its length (a generator);
        ``rows_per_s`` counts from the first batch out (the stages' start-up excluded).
        Known to the process driving the run (or the cluster's tracker): empty elsewhere,
        and with the local executor."""
        return self._view.stream_progress()

    def wait(self, timeout: float | None = None, *, progress: bool = False) -> str:
        """Block until the run is final; return its status. TimeoutError if ``timeout`` passes.

        ``progress=True`` shows a bar of finished components (a widget in notebooks), and
        one of rows per stream while it runs.
        """
        if progress:
            return _progress.follow(self, timeout)
        return self._view.wait(timeout)

    def result(self, timeout: float | None = None, *, progress: bool = False) -> Any:
        """The workflow's return value; WorkflowFailed or RunCancelled otherwise."""
        status = self.wait(timeout, progress=progress)
        if status == "CANCELLED":
            raise RunCancelled(self.run_id)
        if status == "FAILED":
            raise self._view.failure()
        return self._view.result()

    def cancel(self) -> None:
        """Stop the run: in-flight components are cancelled, the rest never start."""
        self._view.cancel()

    def logs(self, component: str, attempt: int | None = None) -> str:
        """What ``component`` printed and logged in its last attempt (or ``attempt``, from
        1); "" when it printed nothing. A component still running shows what it wrote up to
        its log's last flush (every few seconds)."""
        return self._view.logs(component, attempt)

    def metrics(self) -> dict[str, Any]:
        """Timings per component, critical path, throughput and queue wait (JSON-serialisable)."""
        return self._view.metrics()

    def components(self) -> dict[str, dict[str, Any]]:
        return self.metrics()["components"]

    def _repr_html_(self) -> str:
        """Jupyter: summary, Gantt chart and component table (plotly.js inlined, works offline)."""
        from rayflow.report.notebook import run_html  # plotly only when a notebook asks

        server = config.server_url()    # a server configured (RAYFLOW_SERVER): link the run's page there
        return run_html(self, page_url=config.run_page_url(server, self.run_id) if server else None)
