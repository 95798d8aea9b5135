"""Terminal rendering for the CLI: plans, run tables, progress, a finished run. Formatting
only: the live bar is a rich renderer of ``rayflow.runs.progress.poll`` (the one polling
loop) for a local run, and of the remote commands' polling for a server's run. A run is
anything with a ``RunRecord``'s attributes (a record, or a server's JSON run as a
namespace: ``run_view``). Imports no planner, service or runs module at import time, so
the commands that only talk to a server stay light.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rayflow.core.states import FAILED_COMPONENT_STATES, FINAL_COMPONENT_STATES, shown_state

if TYPE_CHECKING:
    from rayflow.plan import Plan
    from rayflow.runs.handle import RunHandle
    from rayflow.store.port import RunRecord

FINAL = FINAL_COMPONENT_STATES
BAD = FAILED_COMPONENT_STATES
STATE_STYLE = {"SUCCEEDED": "green", "CACHED": "cyan", "FAILED": "red", "TIMED_OUT": "red",
               "UPSTREAM_FAILED": "yellow", "SKIPPED": "dim", "CANCELLED": "magenta", "RUNNING": "blue",
               "QUEUED": "dim"}
MAX_ROWS = 40


def console(err: bool = False) -> Console:
    return Console(stderr=err, highlight=False, soft_wrap=True)


def note(text: str) -> None:
    """One dim line on stderr (taken as it is: no rich markup)."""
    console(err=True).print(text, style="dim", markup=False)


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f}ms"
    return f"{value:.2f}s"


def _ts(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"


def print_plan(out: Console, plan: Plan) -> None:
    out.print(f"[bold]{plan.name}[/bold]: {len(plan.tasks)} components, {plan.dag.edge_count()} connections, "
              f"{len(plan.levels)} levels, failure_strategy={plan.failure_strategy}, "
              f"max_concurrency={plan.max_concurrency or 'unbounded'}")
    table = Table(title="Levels (components that may run at the same time)", show_lines=False)
    table.add_column("level", justify="right")
    table.add_column("components")
    for i, level in enumerate(plan.levels[:MAX_ROWS]):
        shown = ", ".join(level[:12]) + (f", ... (+{len(level) - 12})" if len(level) > 12 else "")
        table.add_row(str(i), shown)
    out.print(table)
    if len(plan.levels) > MAX_ROWS:
        out.print(f"... {len(plan.levels) - MAX_ROWS} more levels")
    out.print(f"Parallel groups: {len(plan.parallel_groups)} "
              f"(widest {plan.analysis.max_parallelism} components)")
    for stream in plan.streams:
        out.print(f"Stream (pipelined on Ray): {' -> '.join(stream)}")
    for group in plan.groups:
        members = ", ".join(group.members[:12]) + (f", ... (+{len(group.members) - 12})" if len(group.members) > 12 else "")
        out.print(f"Group {group.name}: max_concurrency={group.max_concurrency or 'unbounded'}, "
                  f"failure_strategy={group.failure_strategy or plan.failure_strategy}: {members}")
    print_fused(out, plan)
    path = plan.critical_path
    shown = " -> ".join(path[:20]) + (f" -> ... ({len(path)} in all)" if len(path) > 20 else "")
    out.print(f"Critical path ({plan.critical_path_length:g} estimated units): {shown}")
    if plan.bottlenecks:
        bt = Table(title="Bottlenecks")
        for col in ("component", "reason", "share of critical path", "fan-in", "fan-out"):
            bt.add_column(col)
        for b in plan.bottlenecks:
            bt.add_row(b.id, b.reason, f"{b.share:.0%}" if b.share else "-", str(b.fan_in), str(b.fan_out))
        out.print(bt)


FUSED_SHOWN = 5


def print_fused(out: Console, plan: Plan) -> None:
    """One line for the fused groups (one Ray task each on Ray), then the first few."""
    if not plan.fused:
        return
    members = sum(len(g) for g in plan.fused)
    out.print(f"Fused (each group one Ray task): {len(plan.fused):,} group{'s' if len(plan.fused) > 1 else ''}, "
              f"{members:,} components; "
              f"largest {max(len(g) for g in plan.fused):,}")
    for group in plan.fused[:FUSED_SHOWN]:
        shown = ", ".join(group[:6]) + (f", ... ({len(group)} in all)" if len(group) > 6 else "")
        out.print(f"  {shown}")
    if len(plan.fused) > FUSED_SHOWN:
        out.print(f"  ... {len(plan.fused) - FUSED_SHOWN:,} more groups")


RUN_DEFAULTS = {"run_id": "", "name": "", "status": "", "created_at": None, "started_at": None,
                "ended_at": None, "target": "", "inputs": {}, "error": None, "owner": "", "n_components": 0}


def run_view(run: dict[str, Any]) -> SimpleNamespace:
    """A server's JSON run with the attributes of a ``RunRecord`` that the pages read."""
    return SimpleNamespace(**{**RUN_DEFAULTS, **run})


def print_run(out: Console, run: RunRecord) -> None:
    style = STATE_STYLE.get(run.status, "")
    out.print(f"run [bold]{run.run_id}[/bold] ({run.name}): [{style}]{run.status}[/{style}]" if style
              else f"run [bold]{run.run_id}[/bold] ({run.name}): {run.status}")
    out.print(f"  target: {run.target or '-'}   inputs: {run.inputs}")
    wall = (run.ended_at or time.time()) - run.started_at if run.started_at else None
    out.print(f"  created {_ts(run.created_at)}   started {_ts(run.started_at)}   "
              f"ended {_ts(run.ended_at)}   wall {_fmt_s(wall)}   driver {run.owner or '-'}")
    if run.error:
        out.print(f"  error: {run.error}")


def component_table(metrics: dict[str, Any], title: str = "Components") -> Table:
    comps: dict[str, dict] = metrics["components"]
    table = Table(title=title)
    for col in ("component", "state", "attempts", "queued", "duration", "node"):
        table.add_column(col, no_wrap=True)
    table.add_column("error", overflow="fold")
    items = list(comps.items())
    if len(items) > MAX_ROWS:  # show failures first, then the slowest
        items.sort(key=lambda kv: (kv[1]["state"] not in BAD, -(kv[1]["duration_s"] or 0)))
        items = items[:MAX_ROWS]
    for cid, c in items:
        state = shown_state(c["state"], c.get("started_at"))
        style = STATE_STYLE.get(state, "")
        table.add_row(cid, f"[{style}]{state}[/{style}]" if style else state, str(c["attempts"]),
                      _fmt_s(c["queued_s"]), _fmt_s(c["duration_s"]), (c["node_id"] or "-")[:8],
                      (c.get("error") or "")[:120])
    if len(comps) > MAX_ROWS:
        table.caption = f"{MAX_ROWS} of {len(comps)} components shown (failures, then the slowest)"
    return table


def print_run_page(out: Console, run: RunRecord, metrics: dict[str, Any]) -> None:
    """``rayflow status`` / ``report``: the run, its components, the summary line."""
    print_run(out, run)
    out.print(component_table(metrics))
    print_metrics_summary(out, metrics)


def print_metrics_summary(out: Console, metrics: dict[str, Any]) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(metrics.get("counts", {}).items()))
    q = metrics["queue_wait_s"]
    out.print(f"wall {_fmt_s(metrics['wall_s'])}   throughput {metrics['throughput_cps']:.1f} components/s   "
              f"queue wait p50 {_fmt_s(q['p50'])} p95 {_fmt_s(q['p95'])} p99 {_fmt_s(q['p99'])}   [{counts}]")
    path = metrics["critical_path"]
    shown = " -> ".join(path[:15]) + (f" -> ... ({len(path)} in all)" if len(path) > 15 else "")
    out.print(f"critical path ({_fmt_s(metrics['critical_path_s'])}): {shown or '-'}")


def follow(handle: RunHandle, total: int, *, show: bool, poll_s: float = 0.1) -> str:
    """Wait for the run, with a live bar (done/total, failures, elapsed, and each stream's
    rows through its last stage) when ``show``."""
    if not show:
        return handle.wait()
    from rayflow.runs.progress import poll, stream_postfix

    with live_bar(handle.run_id, total) as draw:
        return poll(handle, lambda snap: draw(snap.counts, stream_postfix(snap.streams)), poll_s=poll_s)


@contextmanager
def live_bar(run_id: str, total: int) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr; yields ``draw(counts, streams=None)``: component counts by
    state, and each stream's postfix text by its last stage."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console(err=True), transient=False) as bar:
        task = bar.add_task(run_id, total=total, detail="")

        def draw(counts: dict[str, int], streams: dict[str, str] | None = None) -> None:
            done = sum(n for state, n in counts.items() if state in FINAL)
            failed = sum(n for state, n in counts.items() if state in BAD)
            shown = "".join(f"  {k}: {v}" for k, v in (streams or {}).items())
            bar.update(task, completed=done, detail=f"running {counts.get('RUNNING', 0)}  queued {counts.get('QUEUED', 0)}  "
                                                        f"failed {failed}{shown}")

        yield draw


def jsonish(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def print_finished(run_id: str, status: str, metrics: dict[str, Any], value: Any, *, quiet: bool,
                   as_json: bool) -> None:
    """What ``rayflow run`` prints at the end: JSON, the bare result (``--quiet``), or the
    component table, the summary and the result."""
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "status": status, "result": jsonish(value), "metrics": metrics},
                              default=str))
    elif quiet:
        if status == "SUCCEEDED":
            click.echo(jsonish(value) if isinstance(value, str) else json.dumps(jsonish(value), default=str))
    else:
        out = console()
        out.print(component_table(metrics, title=f"Run {run_id}: {status}"))
        print_metrics_summary(out, metrics)
        if status == "SUCCEEDED":
            out.print(f"result: {value!r}"[:2000])


def runs_table(runs: list[Any], title: str, width: int | None = None) -> Table:
    """``rayflow runs``: one row per run (records, or ``run_view`` namespaces). A run id is
    what a user copies into the next command: it is never cut. Where the terminal is too
    narrow for every column, the name (the run id's first part) is left out and the other
    columns wrap."""
    longest = max((len(r.run_id) for r in runs), default=6)
    width = width if width is not None else console().width
    narrow = width < longest + 60
    table = (Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True) if narrow
             else Table(title=title))
    table.add_column("run id", no_wrap=True, min_width=longest)
    if not narrow:
        table.add_column("name", overflow="fold")
    table.add_column("status", min_width=9)
    table.add_column("created", min_width=10)   # the date above the time where narrow
    table.add_column("wall", overflow="fold")
    table.add_column("n" if narrow else "components", overflow="fold")
    for r in runs:
        wall = r.ended_at - r.started_at if r.ended_at and r.started_at else None
        cells = [r.run_id, *([] if narrow else [r.name]), r.status, _ts(r.created_at), _fmt_s(wall), str(r.n_components)]
        table.add_row(*cells)
    return table


def allocations_table(allocations: list[Any]) -> Table:
    """``rayflow report``: components whose requests were far from what they used."""
    table = Table(title="Over- and under-allocated components (requested vs used)")
    for col in ("component", "cpus req", "cores used p90", "cpu", "mem req", "peak p90", "memory", "advice"):
        table.add_column(col, overflow="fold")
    for a in allocations:
        used = "-" if a.used_cpus_p90 is None else f"{a.used_cpus_p90:.2f}"
        table.add_row(a.component_id, f"{a.requested_cpus:g}", used, a.cpu_verdict, _mib(a.requested_memory),
                      _mib(a.peak_memory_p90), a.memory_verdict, a.recommendation)
    return table


def _mib(value: float | None) -> str:
    return "-" if not value else f"{value / 2**20:.0f} MiB"


def print_stats(out: Console, data: dict[str, Any]) -> None:
    """The ``rayflow stats`` page: totals, percentiles, and requested vs used per component."""
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(data["runs_by_status"].items())) or "none"
    out.print(f"{data['runs']} runs ({by_status}), {data['components']} components over {_fmt_s(data['window_s'])}: "
              f"{data['workflows_per_s']:.2f} workflows/s, {data['components_per_s']:.1f} components/s")
    for label, key in (("run latency", "run_latency_s"), ("component latency", "component_latency_s"),
                       ("queue wait", "queue_wait_s")):
        p = data[key]
        out.print(f"{label:18} p50 {_fmt_s(p['p50'])}  p95 {_fmt_s(p['p95'])}  p99 {_fmt_s(p['p99'])}")
    depth = data["queue_depth"]
    out.print(f"queue depth        max {depth['max']}  mean {depth['mean']:.1f}   "
              f"errors {data['errors']}   retries {data['retries']}")
    pool = data.get("store", {}).get("pool")
    if pool:
        out.print("store pool         " + "  ".join(f"{k} {v}" for k, v in pool.items()))
    table = Table(title="Requested vs used, per component (workflow/component)")
    table.add_column("component", overflow="fold", min_width=14)
    for col in ("runs", "p50", "p95", "cpu-s req", "cpu-s used", "util", "mem req", "peak mem"):
        table.add_column(col, no_wrap=True, justify="right")
    rows = sorted(data["by_component"].items(), key=lambda kv: -kv[1]["requested_cpu_s"])[:MAX_ROWS]
    for cid, r in rows:
        util = r["cpu_utilization"]
        table.add_row(cid, str(r["runs"]), _fmt_s(r["duration_s"]["p50"]), _fmt_s(r["duration_s"]["p95"]),
                      f"{r['requested_cpu_s']:.2f}", f"{r['used_cpu_s']:.2f}", "-" if util is None else f"{util:.0%}",
                      _mib(r["requested_memory"]), _mib(r["peak_rss_bytes"]))
    out.print(table)
    if data.get("connectors"):
        _print_connectors(out, data["connectors"])


def _print_connectors(out: Console, rows: dict[str, dict[str, Any]]) -> None:
    """Connector components: SQL statements and HTTP requests (calls), retries, rows read and
    written, circuit openings, the largest pool (``--json`` has failures and rate-limit waits)."""
    table = Table(title="Connectors, per component (workflow/component)")
    table.add_column("component", overflow="fold", min_width=12)
    for col in ("kind", "runs", "calls", "retries", "rows in", "rows out", "opened", "pool"):
        table.add_column(col, no_wrap=True, justify="right")
    for cid, r in sorted(rows.items())[:MAX_ROWS]:
        table.add_row(cid, r["kind"], str(r["runs"]), str(int(r["statements"] + r["requests"])), str(int(r["retries"])),
                      str(int(r["rows_read"])), str(int(r["rows_written"])), str(int(r["breaker_opened"])),
                      str(r["pool_size"]))
    out.print(table)
