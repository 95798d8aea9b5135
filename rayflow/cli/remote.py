"""The commands of ``rayflow --server URL ...``: the same output as the local commands,
over HTTP through ``rf.Client``, with no Ray, no planner and no store in this process.

Owns calling the client for ``run``, ``submit``, ``status``, ``runs``, ``cancel``,
``resume`` and ``report``, following a server's run (the live bar polls ``GET
/v1/runs/{id}``; without the bar the event stream says when it ends), and ``detect``: is
a rayflow server answering on this machine's default port? (``rayflow run`` and
``submit`` use one when no server was named.) Must not import rayflow's service, server,
runs or execute layers, nor ray: ``main`` calls this module in place of the service.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from rayflow.cli import render
from rayflow.cli.common import EXIT_FAILED, Where
from rayflow.client import RemoteRun, ServerError
from rayflow.core import config
from rayflow.core.errors import ConfigError, RunCancelled
from rayflow.core.states import TERMINAL_RUN_STATES, shown_state

BAR_POLL_S = 0.25
PROBE_S = 0.2


def detect(timeout: float | None = None) -> str | None:
    """The default server's URL when a rayflow server answers there within ``timeout``
    (default ``PROBE_S``). A TCP connect first: with nothing listening it is refused at
    once, before any HTTP."""
    timeout = PROBE_S if timeout is None else timeout
    url = config.DEFAULT_SERVER_URL
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout).close()
    except OSError:
        return None
    try:
        with Where(url).client() as client:
            health = client.health(timeout=timeout)
    except ServerError:
        return None
    return url if isinstance(health, dict) and "status" in health else None


def submit(where: Where, target: str, inputs: dict[str, Any], run_id: str | None) -> RemoteRun:
    """Submit on the server; the handle keeps its client open for the command's life."""
    return where.client().submit(target, run_id=run_id, **inputs)


def run(handle: RemoteRun, *, quiet: bool, as_json: bool) -> None:
    """Follow a submitted run to its end and print it as the local ``run`` does."""
    status = follow(handle, show=not quiet and not as_json)
    record = handle.record()
    value = record.get("result") if status == "SUCCEEDED" else None
    render.print_finished(handle.run_id, status, record.get("metrics") or {}, value, quiet=quiet, as_json=as_json)
    if status == "CANCELLED":
        raise RunCancelled(handle.run_id)
    if status != "SUCCEEDED":
        raise handle.failure()


def follow(handle: RemoteRun, *, show: bool) -> str:
    """Wait for the run's end; with ``show``, a live bar of its components."""
    if not show:
        return handle.wait()
    record = handle.record()
    with render.live_bar(handle.run_id, record.get("n_components") or len(record.get("components") or {})) as draw:
        while True:
            draw(dict(Counter(shown_state(c["state"], c.get("started_at"))
                              for c in (record.get("components") or {}).values())))
            if record["status"] in TERMINAL_RUN_STATES:
                return record["status"]
            time.sleep(BAR_POLL_S)
            record = handle.record()


def status(where: Where, run_id: str, *, as_json: bool) -> None:
    with where.client() as client:
        record = client.run_detail(run_id)
    metrics = record.pop("metrics", None) or {}
    record.pop("components", None)
    if as_json:
        click.echo(json.dumps({"run": record, "metrics": metrics}, default=str))
        return
    render.print_run_page(render.console(), render.run_view(record), metrics)


def runs(where: Where, status_filter: str | None, limit: int, *, as_json: bool) -> None:
    if status_filter == "RESUMABLE":
        raise ConfigError("--status RESUMABLE reads a run store; with --server the server resumes orphaned "
                          "runs itself (list them with --status RUNNING)")
    with where.client() as client:
        found = client.list_runs(status=status_filter, limit=limit)
    if as_json:
        click.echo(json.dumps(found, default=str))
        return
    render.console().print(render.runs_table([render.run_view(r) for r in found], f"Runs on {where.url}"))


def cancel(where: Where, run_id: str) -> None:
    with where.client() as client:
        client.cancel(run_id)
    click.echo(f"cancel requested for {run_id}")


def resume(where: Where, run_id: str, *, quiet: bool) -> None:
    """Resume on the server, follow to the end; exit 1 unless it succeeds."""
    with where.client() as client:
        handle = client.resume(run_id)
        final = follow(handle, show=not quiet)
    click.echo(f"{run_id}: {final}")
    if final != "SUCCEEDED":
        raise SystemExit(EXIT_FAILED)


def report(where: Where, run_id: str, *, as_json: bool, html_path: str | None) -> None:
    with where.client() as client:
        if html_path:
            page = client.report(run_id)
            try:
                Path(html_path).write_text(page, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write the report to {html_path}: {exc}") from exc
            click.echo(html_path)
            return
        record = client.run_detail(run_id)
    metrics = record.pop("metrics", None) or {}
    if as_json:
        click.echo(json.dumps(metrics, default=str))
        return
    render.print_run_page(render.console(), render.run_view(record), metrics)
