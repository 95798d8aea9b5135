"""``rayflow`` commands: run, submit, status, runs, cancel, resume, explain, report.

Each command parses its options, calls the service, and formats (computing nothing
of its own: sizing and cache figures come from the service). The ``rayflow`` process
is one rayflow owns, so ``main`` marks it for garbage-collector tuning
(``rayflow.core.gcpause``). Errors in what the user gave (an invalid spec, a bad URL, an unknown run) print one line and exit 2;
a run that fails exits 1; never a bare traceback.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from rayflow.cli import render
from rayflow.core import config, gcpause
from rayflow.core.errors import ConfigError, RayflowError, RunNotFound, SpecError, WorkflowFailed
from rayflow.core.states import RunStatus
from rayflow.service import get_service
from rayflow.service.operations import new_run_id
from rayflow.service.settings import EXECUTORS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="-i/--input")
        try:
            inputs[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            inputs[key] = raw
    return inputs


def _guard(fn):
    """Turn rayflow errors into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SpecError, ConfigError, RunNotFound) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except WorkflowFailed as exc:
            click.echo(f"failed: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except RayflowError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper


def _configure(store: str | None, address: str | None) -> None:
    get_service().configure(store=store, address=address)


target_arg = click.argument("target", metavar="TARGET")
input_opt = click.option("-i", "--input", "inputs", multiple=True, metavar="KEY=VALUE",
                         help="A workflow input; VALUE is read as YAML (100, true, [1,2], text). Repeatable.")
store_opt = click.option("--store", metavar="URL",   # unset: the service reads $RAYFLOW_STORE
                         help="Run store URL (default $RAYFLOW_STORE or sqlite:///~/.rayflow/rayflow.db).")
address_opt = click.option("--address", envvar="RAY_ADDRESS", metavar="ADDR",
                           help="Ray cluster to join: 'auto', 'ray://host:10001', host:port (default: local Ray).")
json_opt = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
status_opt = click.option("--status", "status_filter", metavar="STATE",
                          type=click.Choice([*(s.value for s in RunStatus), "RESUMABLE"], case_sensitive=False),
                          help="Only runs in this state; RESUMABLE: not finished, and their driver "
                               "stopped heartbeating (it crashed or was killed).")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rayflow")
def cli() -> None:
    """rayflow: run DAGs of Python components on Ray, tracked and resource-aware.

    TARGET is a spec file (YAML/JSON) or a Python workflow as module:attribute,
    e.g. rayflow/examples/etl.yaml or rayflow.examples.etl:pipeline.
    """


@cli.command()
@target_arg
@input_opt
@address_opt
@store_opt
@click.option("--executor", type=click.Choice(EXECUTORS), default="ray", show_default=True,
              help="'local' runs every component in this process, one at a time (debugging).")
@click.option("--run-id", metavar="ID", help="Use this run id (an existing run's id returns that run).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no tables; print the result only.")
@json_opt
@_guard
def run(target: str, inputs: tuple[str, ...], address: str | None, store: str | None, executor: str,
        run_id: str | None, quiet: bool, as_json: bool) -> None:
    """Run TARGET to the end, with a live progress bar and a summary table.

    Exit code 0 when the run succeeds, 1 when it fails, 2 for an invalid workflow.
    """
    _configure(store, address)
    service = get_service()
    handle = service.submit(target, _parse_inputs(inputs), executor=executor, run_id=run_id,
                            background=executor != "local")
    total = len(handle.components()) if handle.status() != "SUCCEEDED" else 0
    status = render.follow(handle, total, show=not quiet and not as_json and executor != "local")
    _finish(handle, status, quiet=quiet, as_json=as_json)


def _finish(handle, status: str, *, quiet: bool, as_json: bool) -> None:
    out = render.console()
    metrics = handle.metrics()
    value = handle.result() if status == "SUCCEEDED" else None
    if as_json:
        click.echo(json.dumps({"run_id": handle.run_id, "status": status, "result": _jsonish(value),
                               "metrics": metrics}, default=str))
    elif quiet:
        if status == "SUCCEEDED":
            click.echo(_jsonish(value) if isinstance(value, str) else json.dumps(_jsonish(value), default=str))
    else:
        out.print(render.component_table(metrics, title=f"Run {handle.run_id}: {status}"))
        render.print_metrics_summary(out, metrics)
        if status == "SUCCEEDED":
            out.print(f"result: {value!r}"[:2000])
    if status != "SUCCEEDED":
        handle.result()  # raises WorkflowFailed / RunCancelled with the reasons
        sys.exit(EXIT_FAILED)


def _jsonish(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


@cli.command()
@target_arg
@input_opt
@address_opt
@store_opt
@click.option("--run-id", metavar="ID", help="Use this run id.")
@_guard
def submit(target: str, inputs: tuple[str, ...], address: str | None, store: str | None,
           run_id: str | None) -> None:
    """Validate TARGET, start it in the background, print the run id, return at once.

    On a cluster (--address or RAY_ADDRESS) the cluster's run tracker drives the run;
    otherwise a detached local process does (log under ~/.rayflow/logs/). Follow it with
    `rayflow status RUN_ID` from anywhere that reads the same store.
    """
    _configure(store, address)
    service = get_service()
    values = _parse_inputs(inputs)
    if address:
        service.connect_ray()
        if service.use_tracker():
            click.echo(service.submit(target, values, run_id=run_id).run_id)
            return
    plan = service.explain(target, values)
    if any(t.fn is None for t in plan.tasks.values()):
        service.plan(target, values, "local")  # raises the missing-function error
    run_id = run_id or new_run_id(plan.name)
    if service.store.get_run(run_id) is None:
        record = service.record_new_run(plan, run_id)
        _spawn_driver(record.run_id, plan.target or target, service.store_url_for_others(), address)
    click.echo(run_id)


def _spawn_driver(run_id: str, target: str, store_url: str, address: str | None) -> None:
    logs = Path(os.path.expanduser("~/.rayflow/logs"))
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "rayflow.cli.main", "drive", run_id, target]
    if address:
        cmd += ["--address", address]
    env = {**os.environ, config.STORE_VAR: store_url}   # not on the command line: it may hold a password
    with open(logs / f"{run_id}.log", "ab") as log:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, cwd=os.getcwd(), env=env)


@cli.command(hidden=True)
@click.argument("run_id")
@target_arg
@address_opt
@store_opt
@_guard
def drive(run_id: str, target: str, address: str | None, store: str | None) -> None:
    """Drive a PENDING run recorded by `rayflow submit` (internal)."""
    _configure(store, address)
    handle = get_service().adopt(run_id, target)
    sys.exit(EXIT_OK if handle.status() == "SUCCEEDED" else EXIT_FAILED)


@cli.command()
@click.argument("run_id")
@store_opt
@json_opt
@_guard
def status(run_id: str, store: str | None, as_json: bool) -> None:
    """Show a run's state and every component's state and timings."""
    _configure(store, None)
    handle = get_service().get_run(run_id)
    metrics = handle.metrics()
    if as_json:
        click.echo(json.dumps({"run": handle.record().to_dict(), "metrics": metrics}, default=str))
        return
    render.print_run_page(render.console(), handle.record(), metrics)


@cli.command()
@status_opt
@click.option("--limit", default=20, show_default=True, help="At most this many runs, newest first.")
@store_opt
@json_opt
@_guard
def runs(status_filter: str | None, limit: int, store: str | None, as_json: bool) -> None:
    """List runs in the store, newest first."""
    _configure(store, None)
    records = get_service().list_runs(status=status_filter.upper() if status_filter else None, limit=limit)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], default=str))
        return
    table = render.Table(title=f"Runs in {get_service().store.url}")
    table.add_column("run id", no_wrap=True)
    for col in ("name", "status", "created", "wall", "components"):
        table.add_column(col, no_wrap=True)
    for r in records:
        wall = r.ended_at - r.started_at if r.ended_at and r.started_at else None
        table.add_row(r.run_id, r.name, r.status, render._ts(r.created_at), render._fmt_s(wall), str(r.n_components))
    render.console().print(table)


@cli.command()
@click.argument("run_id")
@store_opt
@_guard
def cancel(run_id: str, store: str | None) -> None:
    """Ask a run to stop: in-flight components are cancelled, the rest never start."""
    _configure(store, None)
    get_service().get_run(run_id).cancel()
    click.echo(f"cancel requested for {run_id}")


@cli.command()
@click.argument("run_id", required=False)
@click.option("--all", "resume_all", is_flag=True, help="Resume every RESUMABLE run (see `rayflow runs`).")
@click.option("--force", is_flag=True, help="Take the run over even if its driver still heartbeats.")
@address_opt
@store_opt
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no tables.")
@_guard
def resume(run_id: str | None, resume_all: bool, force: bool, address: str | None, store: str | None,
           quiet: bool) -> None:
    """Finish a run that did not succeed, running only the components without a checkpoint.

    For a run whose driver crashed or was killed, that failed, or that was cancelled.
    Exit code 0 when every resumed run succeeds, 1 otherwise.
    """
    _configure(store, address)
    service = get_service()
    if resume_all == bool(run_id):
        raise click.UsageError("give a RUN_ID or --all (not both)")
    ids = [r.run_id for r in service.resumable(limit=10_000)] if resume_all else [run_id]
    if not ids:
        click.echo("no resumable runs")
        return
    failed = 0
    for rid in ids:
        handle = service.resume(rid, force=force)
        status = handle.status()
        if status not in ("SUCCEEDED",):
            total = len(handle.components())
            status = render.follow(handle, total, show=not quiet)
        click.echo(f"{rid}: {status}")
        failed += status != "SUCCEEDED"
    if failed:
        sys.exit(EXIT_FAILED)


@cli.command()
@target_arg
@input_opt
@json_opt
@_guard
def explain(target: str, inputs: tuple[str, ...], as_json: bool) -> None:
    """Show the plan without running: levels, parallel groups, critical path, bottlenecks."""
    plan = get_service().explain(target, _parse_inputs(inputs))
    if as_json:
        click.echo(json.dumps(plan.to_dict(), default=str))
    else:
        render.print_plan(render.console(), plan)


@cli.command()
@click.argument("run_id")
@store_opt
@json_opt
@click.option("--html", "html_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report (summary, Gantt chart, DAG, table) to FILE.")
@_guard
def report(run_id: str, store: str | None, as_json: bool, html_path: str | None) -> None:
    """Per-component table, the measured critical path and the slowest components.

    Reads the store only, so it works after the cluster is gone.
    """
    _configure(store, None)
    handle = get_service().get_run(run_id)
    metrics = handle.metrics()
    if html_path:
        from rayflow.report import write_html  # plotly is imported only when a page is asked for

        try:
            out = write_html(html_path, handle.record(), metrics, get_service().store.get_components(run_id))
        except OSError as exc:
            raise ConfigError(f"cannot write the report to {html_path}: {exc}") from exc
        click.echo(str(out))
        return
    allocations = get_service().allocations(run_id)
    if as_json:
        click.echo(json.dumps({**metrics, "allocations": [a.__dict__ for a in allocations]}, default=str))
        return
    render.print_run_page(render.console(), handle.record(), metrics)
    if allocations:
        table = render.Table(title="Over- and under-allocated components (requested vs used)")
        for col in ("component", "cpus req", "cores used p90", "cpu", "mem req", "peak p90", "memory", "advice"):
            table.add_column(col, overflow="fold")
        for a in allocations:
            used = "-" if a.used_cpus_p90 is None else f"{a.used_cpus_p90:.2f}"
            table.add_row(a.component_id, f"{a.requested_cpus:g}", used, a.cpu_verdict, render._mib(a.requested_memory),
                          render._mib(a.peak_memory_p90), a.memory_verdict, a.recommendation)
        render.console().print(table)


@cli.command()
@click.option("--limit", default=100, show_default=True, help="The newest this many runs.")
@click.option("--name", metavar="WORKFLOW", help="Only runs of this workflow.")
@status_opt
@store_opt
@json_opt
@_guard
def stats(limit: int, name: str | None, status_filter: str | None, store: str | None, as_json: bool) -> None:
    """Metrics across runs: throughput, latency and queue wait, errors, and per component the
    CPU and memory requested against what was used."""
    _configure(store, None)
    data = get_service().stats(limit=limit, name=name, status=status_filter.upper() if status_filter else None)
    if as_json:
        click.echo(json.dumps(data, default=str))
        return
    render.print_stats(render.console(), data)


@cli.group()
def cache() -> None:
    """The result cache: statistics and clearing (tiers from $RAYFLOW_CACHE or --cache)."""


cache_opt = click.option("--cache", "cache_url", metavar="URLS",   # unset: the service reads $RAYFLOW_CACHE
                         help="Cache tiers, comma-separated top-down (default $RAYFLOW_CACHE or memory://).")


@cache.command("stats")
@cache_opt
@store_opt
@click.option("--limit", default=1000, show_default=True, help="Sum the lookups of this many newest runs.")
@json_opt
@_guard
def cache_stats(cache_url: str | None, store: str | None, limit: int, as_json: bool) -> None:
    """Hits, misses and hit ratio of recent runs (from the run store), and what each tier
    holds now (entries, bytes; evictions and errors as this process sees them)."""
    service = get_service()
    service.configure(store=store, cache=cache_url)
    out = service.cache_stats(limit)
    runs, hits, misses, by_tier, tiers = out["runs"], out["hits"], out["misses"], out["hits_by_tier"], out["tiers"]
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    ratio = "-" if out["hit_ratio"] is None else f"{out['hit_ratio']:.1%}"
    click.echo(f"{runs} runs with cached components: {hits} hits, {misses} misses, hit ratio {ratio}")
    table = render.Table(title="Cache tiers")
    for col in ("tier", "hits (runs)", "entries", "bytes", "evictions", "errors", "state"):
        table.add_column(col, no_wrap=True)
    for name, t in tiers.items():
        table.add_row(name, str(by_tier.get(name, 0)), str(t.get("entries", "-")), str(t.get("bytes", "-")),
                      str(t.get("evictions", 0)), str(t.get("errors", 0)), str(t.get("breaker", "ok")))
    render.console().print(table)


@cache.command("clear")
@cache_opt
@click.option("--component", metavar="ID", help="Only this component's entries.")
@_guard
def cache_clear(cache_url: str | None, component: str | None) -> None:
    """Remove cached results from every tier (or only one component's)."""
    service = get_service()
    service.configure(cache=cache_url)
    removed = service.cache().clear(component=component)
    click.echo(", ".join(f"{tier}: {n} removed" for tier, n in removed.items()) or "no cache tiers")


@cli.group()
def predict() -> None:
    """The resource model: train it from run history, and see what it would request."""


@predict.command("train")
@store_opt
@_guard
def predict_train(store: str | None) -> None:
    """Train the model from the store's recent runs and save it (~/.rayflow/model.bin)."""
    from rayflow.predict import history

    _configure(store, None)
    model = history.train(get_service().store)
    click.echo(f"trained on {model.n_samples} attempts; the model answers for {len(model.components())} "
               f"components (the rules for the others, under 5 samples); saved to {history.model_path()}")


@predict.command("show")
@click.argument("component", metavar="COMPONENT")
@store_opt
@json_opt
@_guard
def predict_show(component: str, store: str | None, as_json: bool) -> None:
    """What COMPONENT ("module:function", or a part of it) would request, and why."""
    _configure(store, None)
    out = get_service().sizing_preview(component)
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    for item in out:
        p = item["prediction"]
        click.echo(f"{item['component']}: from the {p['source']} ({p['n_samples']} samples) "
                   f"duration p50 {p['duration_p50']:.3g}s p90 {p['duration_p90']:.3g}s, "
                   f"memory p90 {render._mib(p['memory_p90'])}, cores p90 {p['cpu_util_p90']:.2f}")
        click.echo(f"  would request num_cpus={item['request']['num_cpus']:g}, "
                   f"memory={render._mib(item['request']['memory'])}: {item['why']}")


def main() -> None:
    gcpause.own_process()   # the rayflow command's own process: the collector is ours to tune
    cli(prog_name="rayflow")


if __name__ == "__main__":
    main()
