"""Terminal rendering for the CLI: plans, run tables, progress. Formatting only: the live
bar is a rich renderer of ``rayflow.runs.progress.poll`` (the one polling loop)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rayflow.core.states import FAILED_COMPONENT_STATES, FINAL_COMPONENT_STATES
from rayflow.plan import Plan
from rayflow.runs.handle import RunHandle
from rayflow.runs.progress import Snapshot, poll, stream_postfix
from rayflow.store.port import RunRecord

FINAL = FINAL_COMPONENT_STATES
BAD = FAILED_COMPONENT_STATES
STATE_STYLE = {"SUCCEEDED": "green", "CACHED": "cyan", "FAILED": "red", "TIMED_OUT": "red",
               "UPSTREAM_FAILED": "yellow", "SKIPPED": "dim", "CANCELLED": "magenta", "RUNNING": "blue"}
MAX_ROWS = 40


def console(err: bool = False) -> Console:
    return Console(stderr=err, highlight=False, soft_wrap=True)


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
    out.print(f"Fused (each group one Ray task): {len(plan.fused):,} groups, {members:,} components; "
              f"largest {max(len(g) for g in plan.fused):,}")
    for group in plan.fused[:FUSED_SHOWN]:
        shown = ", ".join(group[:6]) + (f", ... ({len(group)} in all)" if len(group) > 6 else "")
        out.print(f"  {shown}")
    if len(plan.fused) > FUSED_SHOWN:
        out.print(f"  ... {len(plan.fused) - FUSED_SHOWN:,} more groups")


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
        style = STATE_STYLE.get(c["state"], "")
        table.add_row(cid, f"[{style}]{c['state']}[/{style}]" if style else c["state"], str(c["attempts"]),
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
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console(err=True), transient=False) as bar:
        task = bar.add_task(handle.run_id, total=total, detail="")

        def draw(snap: Snapshot) -> None:
            streams = "".join(f"  {k}: {v}" for k, v in stream_postfix(snap.streams).items())
            bar.update(task, completed=snap.done, detail=f"running {snap.running}  failed {snap.failed}{streams}")

        return poll(handle, draw, poll_s=poll_s)


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
    table = Table(title="Requested vs used, per component")
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
