"""``RemoteRun``: a handle to one run of a rayflow server, over HTTP.

Owns the ``RunHandle`` surface of API.md for a run the server drives: ``run_id``,
``status``, ``wait``, ``result``, ``cancel``, ``metrics``, ``components``, ``logs``,
``record``; plus ``progress`` (component counts) and ``events``. ``wait`` follows the run's
event stream until its terminal event, then confirms with ``GET /v1/runs/{id}``; where
the stream ends early or is refused, it polls that route every 0.2 to 1 s. ``result``
raises ``rf.WorkflowFailed`` (the failed components and their errors) or
``rf.RunCancelled`` as a local handle does. Must not import httpx (the client does the
calls), nor ray or rayflow's server, service, runs or execute layers.
"""

from __future__ import annotations

import html
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from rayflow.client.errors import ClientAuthError, RemoteNotFound, ServerError
from rayflow.core import config
from rayflow.core.errors import RunCancelled, WorkflowFailed
from rayflow.core.states import OWN_FAILURE_STATES, TERMINAL_RUN_STATES, shown_state

POLL_FIRST_S = 0.2
POLL_MAX_S = 1.0


class RemoteRun:
    """One run on a rayflow server. Each call asks the server (nothing is cached but the
    last answer, which ``__repr__`` shows). ``client``: the ``rayflow.client.Client`` that
    made it (not imported here: it imports this module)."""

    def __init__(self, client: Any, run_id: str, record: dict[str, Any] | None = None) -> None:
        self._client = client
        self.run_id = run_id
        self._last: dict[str, Any] = dict(record or {})

    def __repr__(self) -> str:
        status = self._last.get("status", "?")
        return f"RemoteRun(run_id={self.run_id!r}, status={status!r}, server={self._client.url!r})"

    @property
    def client(self) -> Any:
        return self._client

    def record(self) -> dict[str, Any]:
        """The run as the server has it now: its fields, ``components`` and ``metrics``."""
        self._last = self._client.run_detail(self.run_id)
        return self._last

    def status(self) -> str:
        return self.record()["status"]

    def progress(self) -> dict[str, int]:
        """Component counts by state, e.g. ``{"SUCCEEDED": 10, "RUNNING": 2, "QUEUED": 4}``
        (QUEUED: handed over, not begun yet)."""
        return _shown_counts(self.record())

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        """Batch progress of streams: known only to the process driving the run."""
        return {}

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run is final; return its status. TimeoutError once ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        status = self.status()
        if status in TERMINAL_RUN_STATES:
            return status
        try:
            for event in self._client.stream_events(self.run_id, deadline=deadline):
                if _terminal(event):
                    break
        except TimeoutError:
            raise self._timed_out(timeout) from None
        except (RemoteNotFound, ClientAuthError):
            raise
        except ServerError:
            pass                       # no event stream here: polling finds the end as well
        return self._poll(deadline, timeout)

    def _poll(self, deadline: float | None, timeout: float | None) -> str:
        pause = POLL_FIRST_S
        while True:
            status = self.status()
            if status in TERMINAL_RUN_STATES:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timed_out(timeout)
            left = POLL_MAX_S if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(min(pause, left))
            pause = min(POLL_MAX_S, pause * 2)

    def _timed_out(self, timeout: float | None) -> TimeoutError:
        return TimeoutError(f"run {self.run_id} still {self._last.get('status', 'running')} after {timeout:g}s "
                            f"(server {self._client.url})")

    def result(self, timeout: float | None = None) -> Any:
        """The workflow's return value (the run's ``result``: JSON values come back as they
        are, others as null); WorkflowFailed or RunCancelled when it did not succeed."""
        status = self.wait(timeout)
        if status == "CANCELLED":
            raise RunCancelled(self.run_id)
        if status == "FAILED":
            raise self.failure()
        return self._last.get("result")

    def failure(self) -> WorkflowFailed:
        """Why the run failed: its failed components with their errors, every component's state."""
        record = self._last if self._last.get("status") == "FAILED" else self.record()
        comps = record.get("components") or {}
        errors = {cid: c.get("error") or c["state"] for cid, c in comps.items() if c.get("state") in OWN_FAILURE_STATES}
        if not errors:
            errors = {"(run)": record.get("error") or "failed"}
        return WorkflowFailed(self.run_id, errors, {cid: c.get("state") for cid, c in comps.items()})

    def cancel(self) -> None:
        """Ask the run to stop: in-flight components are cancelled, the rest never start."""
        self._last = {**self._last, **self._client.cancel(self.run_id)._last}

    def resume(self) -> RemoteRun:
        """Finish the run, running only the components without a checkpoint (this handle)."""
        self._last = self._client.resume(self.run_id)._last
        return self

    def metrics(self) -> dict[str, Any]:
        """Timings per component, critical path, throughput and queue wait (as ``h.metrics()``)."""
        return self.record().get("metrics") or {}

    def components(self) -> dict[str, dict[str, Any]]:
        """Component id -> state, attempts, queued_s, started_at, ended_at, duration_s, node_id, error."""
        return self.record().get("components") or {}

    def logs(self, component: str, attempt: int | None = None) -> str:
        """What ``component`` printed and logged in its last attempt (or ``attempt``)."""
        return self._client.logs(self.run_id, component, attempt)

    @property
    def page_url(self) -> str:
        """The run's page in the server's web UI."""
        return config.run_page_url(self._client.url, self.run_id)

    def _repr_html_(self) -> str:
        """Jupyter: the run's state, its components by state and a link to its page on the
        server (where the Gantt chart, the DAG and the logs are; the client draws no chart:
        it works without plotly, pyarrow or Ray)."""
        run = self.record()
        cells = "".join(f"<td>{html.escape(s)}: {n}</td>" for s, n in sorted(_shown_counts(run).items()))
        error = f"<p style=\"color:#c62828\">{html.escape(run['error'])}</p>" if run.get("error") else ""
        return (f"<div><b>Run {html.escape(self.run_id)}</b> {html.escape(str(run.get('status')))} "
                f"(workflow {html.escape(str(run.get('name')))}) &middot; "
                f'<a href="{html.escape(self.page_url)}" target="_blank" rel="noopener">open on the server</a>'
                f"<table><tr>{cells}</tr></table>{error}</div>")

    def report(self) -> str:
        """The run's self-contained HTML report."""
        return self._client.report(self.run_id)

    def events(self, after: int = 0) -> Iterator[dict[str, Any]]:
        """The run's events, until the server ends the stream after the terminal one."""
        return self._client.events(self.run_id, after)


def _terminal(event: dict[str, Any]) -> bool:
    if event.get("kind") != "run_state" or not isinstance(event.get("data"), dict):
        return False
    data = event["data"]
    return data.get("status", data.get("state")) in TERMINAL_RUN_STATES


def _shown_counts(record: dict[str, Any]) -> dict[str, int]:
    """A run answer's components counted by shown state (QUEUED: handed over, not begun)."""
    return dict(Counter(shown_state(c["state"], c.get("started_at")) for c in (record.get("components") or {}).values()))
