"""``rayflow`` commands: run, submit, status, runs, cancel, resume, explain, report; ``rayflow.cli.logs`` logs; and
from ``rayflow.cli.insight`` stats, cache and predict, from ``rayflow.cli.admin`` server,
token and gc.

Each command parses its options, calls the service, and formats (computing nothing
of its own: sizing and cache figures come from the service). With ``--server URL`` (or
$RAYFLOW_SERVER) run, submit, status, runs, cancel, resume and report go over HTTP
through ``rayflow.cli.remote`` instead, and neither the service nor ray is loaded; with
no server named, ``run`` and ``submit`` use a rayflow server that answers on this
machine's default port (``--local``: never). Nothing heavy is imported at import time, so
that path stays fast. The ``rayflow`` process is one rayflow owns, so ``main`` marks it
for garbage-collector tuning (``rayflow.core.gcpause``). Errors in what the user gave (an
invalid spec, a bad URL, an unknown run, a refused token) print one line and exit 2; a
run that fails exits 1; never a bare traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import click

from rayflow.cli import admin, db, insight, render
from rayflow.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Where,
    address_opt,
    configure,
    failure_message,
    guard,
    input_opt,
    json_opt,
    local_opt,
    parse_inputs,
    refuse_with_server,
    service,
    status_opt,
    store_opt,
    target_arg,
    valid_run_id,
    where,
)
from rayflow.cli.interrupts import Stopping
from rayflow.cli.logs import logs as logs_command
from rayflow.core import config, gcpause
from rayflow.core.errors import ConfigError, WorkflowFailed
from rayflow.core.paths import path_name

EXECUTORS = ("ray", "local")   # as rayflow.service.settings.EXECUTORS (not imported: it loads the service)
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
COMMANDLINE = click.core.ParameterSource.COMMANDLINE


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--server", "server_url", metavar="URL",
              help="A rayflow server (`rayflow server`): run, submit, status, runs, cancel, resume and report "
                   "go to it over HTTP, with no Ray here. Default $RAYFLOW_SERVER.")
@click.option("--token", metavar="TOKEN",
              help="The server's bearer token (`rayflow token create`). Default $RAYFLOW_TOKEN. Never printed.")
@click.version_option(package_name="rayflow")
@click.pass_context
def cli(ctx: click.Context, server_url: str | None, token: str | None) -> None:
    """rayflow: run DAGs of Python components on Ray, tracked and resource-aware.

    TARGET is a spec file (YAML/JSON) or a Python workflow as module:attribute,
    e.g. rayflow/examples/etl.yaml or rayflow.examples.etl:pipeline.
    """
    url = (server_url or "").strip().rstrip("/") or config.server_url()
    ctx.obj = Where(url, token if token is not None else config.token())


cli.add_command(admin.server)
cli.add_command(admin.token)
cli.add_command(admin.gc)
cli.add_command(logs_command)
cli.add_command(db.db)
for _command in insight.COMMANDS:
    cli.add_command(_command)


def _auto_target(target: str) -> bool:
    """A spec file or ``module:attr``: what a server on this machine could run as well."""
    return target.lower().endswith(SPEC_SUFFIXES) or os.path.isfile(target) or ":" in target


def _server_for(ctx: click.Context, target: str, *, force_local: bool, quiet: bool) -> Where | None:
    """Where ``run``/``submit`` go: the server named, else one answering on this machine
    (unless ``--local``, $RAYFLOW_SERVER=local, or an option only a local run honours)."""
    named = where(ctx)
    if named.url:
        return named
    local_only = any(ctx.get_parameter_source(n) == COMMANDLINE for n in ("store", "address"))
    if force_local or local_only or ctx.params.get("executor") == "local" or not config.server_probe() \
            or not _auto_target(target):
        return None
    from rayflow.cli import remote

    url = remote.detect()
    if url is None:
        return None
    if not quiet:
        render.note(f"via rayflow server at {url}")
    return Where(url, named.token, auto=True)


def _submit_remote(found: Where, target: str, inputs: dict, run_id: str | None, *, quiet: bool):
    """Submit on ``found``; None when a server found by probing cannot take it (it needs a
    token, cannot import the workflow's modules, or is shutting down): then it runs here."""
    from rayflow.cli import remote
    from rayflow.client import ClientAuthError, RemoteSpecError, ServerError

    try:
        return remote.submit(found, target, inputs, run_id)
    except ServerError as exc:
        cannot = isinstance(exc, ClientAuthError) or exc.status == 503 or (
            isinstance(exc, RemoteSpecError) and "No module named" in str(exc))
        if not found.auto or not cannot:
            raise
        if not quiet:
            render.note(f"the rayflow server at {found.url} cannot run it ({exc}); running here")
        return None


@cli.command()
@target_arg
@input_opt
@address_opt
@store_opt
@click.option("--executor", type=click.Choice(EXECUTORS), default="ray", show_default=True,
              help="'local' runs every component in this process, one at a time (debugging).")
@click.option("--run-id", metavar="ID", callback=valid_run_id,
              help="Use this run id (an existing run's id returns that run).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no tables; print the result only.")
@json_opt
@local_opt
@click.pass_context
@guard
def run(ctx: click.Context, target: str, inputs: tuple[str, ...], address: str | None, store: str | None,
        executor: str, run_id: str | None, quiet: bool, as_json: bool, force_local: bool) -> None:
    """Run TARGET to the end, with a live progress bar and a summary table.

    Exit code 0 when the run succeeds, 1 when it fails, 2 for an invalid workflow. Ctrl-C
    (SIGINT) or SIGTERM cancels the run (`rayflow resume RUN_ID` finishes it later) and
    exits 130 or 143; a second Ctrl-C exits at once.
    """
    values = parse_inputs(inputs)
    found = _server_for(ctx, target, force_local=force_local, quiet=quiet or as_json)
    if found is not None:
        if not found.auto:
            refuse_with_server(ctx, "store", "address", "executor")
        handle = _submit_remote(found, target, values, run_id, quiet=quiet or as_json)
        if handle is not None:
            from rayflow.cli import remote

            remote.run(handle, quiet=quiet, as_json=as_json)
            return
    svc = configure(store, address)
    with Stopping(svc) as stop:   # SIGINT/SIGTERM: the run is cancelled, one line, exit 130/143
        handle = svc.submit(target, values, executor=executor, run_id=run_id, background=executor != "local")
        stop.install()   # again: ray.init installs a SIGTERM handler of its own
        stop.follow(handle)
        stop.check()
        total = len(handle.components()) if handle.status() != "SUCCEEDED" else 0
        status = render.follow(handle, total, show=not quiet and not as_json and executor != "local")
        stop.check()
    metrics = handle.metrics()
    value = handle.result() if status == "SUCCEEDED" else None
    render.print_finished(handle.run_id, status, metrics, value, quiet=quiet, as_json=as_json)
    if status != "SUCCEEDED":
        handle.result()  # raises WorkflowFailed / RunCancelled with the reasons
        sys.exit(EXIT_FAILED)


@cli.command()
@target_arg
@input_opt
@address_opt
@store_opt
@click.option("--run-id", metavar="ID", callback=valid_run_id, help="Use this run id.")
@local_opt
@click.pass_context
@guard
def submit(ctx: click.Context, target: str, inputs: tuple[str, ...], address: str | None, store: str | None,
           run_id: str | None, force_local: bool) -> None:
    """Validate TARGET, start it in the background, print the run id, return at once.

    With a server (--server, $RAYFLOW_SERVER, or one answering at http://127.0.0.1:8470)
    the server runs it. Otherwise, on a cluster (--address or RAY_ADDRESS) the cluster's
    run tracker drives the run, else a detached local process does (its log in
    $RAYFLOW_HOME/logs/, ~/.rayflow/logs/ by default). Follow it with `rayflow status
    RUN_ID` from anywhere that reads the same store (or with the same --server).
    """
    values = parse_inputs(inputs)
    found = _server_for(ctx, target, force_local=force_local, quiet=False)
    if found is not None:
        if not found.auto:
            refuse_with_server(ctx, "store", "address")
        handle = _submit_remote(found, target, values, run_id, quiet=False)
        if handle is not None:
            click.echo(handle.run_id)
            return
    svc = configure(store, address)
    if address:
        svc.connect_ray()
        if svc.use_tracker():
            click.echo(svc.submit(target, values, run_id=run_id).run_id)
            return
    from rayflow.service.operations import new_run_id

    plan = svc.explain(target, values)
    if any(t.fn is None for t in plan.tasks.values()):
        svc.plan(target, values, "local")  # raises the missing-function error
    run_id = run_id or new_run_id(plan.name)
    if svc.store.get_run(run_id) is None:
        record = svc.record_new_run(plan, run_id, queued=True)   # the driver started next claims it
        _spawn_driver(record.run_id, plan.target or target, svc.store_url_for_others(), address)
    click.echo(run_id)


def _spawn_driver(run_id: str, target: str, store_url: str, address: str | None) -> None:
    logs = config.home() / "logs"
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "rayflow.cli.main", "drive", run_id, target]
    # the store and the cluster through the environment, never the command line (which any
    # user of the machine reads): either may hold a password (docs/security.md)
    env = {**os.environ, config.STORE_VAR: store_url, **({"RAY_ADDRESS": address} if address else {})}
    with open(logs / f"{path_name(run_id)}.log", "ab") as log:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, cwd=os.getcwd(), env=env)


@cli.command(hidden=True)
@click.argument("run_id")
@target_arg
@address_opt
@store_opt
@guard
def drive(run_id: str, target: str, address: str | None, store: str | None) -> None:
    """Drive a PENDING run recorded by `rayflow submit` (internal)."""
    handle = configure(store, address).adopt(run_id, target)
    sys.exit(EXIT_OK if handle.status() == "SUCCEEDED" else EXIT_FAILED)


def _remote(ctx: click.Context, *local_only: str) -> Where | None:
    """The server named for this command (None: run here); options only a local run
    honours are refused beside it."""
    named = where(ctx)
    if named.url:
        refuse_with_server(ctx, *local_only)
        return named
    return None


@cli.command()
@click.argument("run_id")
@store_opt
@json_opt
@click.pass_context
@guard
def status(ctx: click.Context, run_id: str, store: str | None, as_json: bool) -> None:
    """Show a run's state and every component's state and timings."""
    found = _remote(ctx, "store")
    if found is not None:
        from rayflow.cli import remote

        remote.status(found, run_id, as_json=as_json)
        return
    handle = configure(store, None).get_run(run_id)
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
@click.pass_context
@guard
def runs(ctx: click.Context, status_filter: str | None, limit: int, store: str | None, as_json: bool) -> None:
    """List runs in the store (or on the --server), newest first."""
    wanted = status_filter.upper() if status_filter else None
    found = _remote(ctx, "store")
    if found is not None:
        from rayflow.cli import remote

        remote.runs(found, wanted, limit, as_json=as_json)
        return
    svc = configure(store, None)
    records = svc.list_runs(status=wanted, limit=limit)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], default=str))
        return
    render.console().print(render.runs_table(records, f"Runs in {svc.store.url}"))


@cli.command()
@click.argument("run_id")
@store_opt
@click.pass_context
@guard
def cancel(ctx: click.Context, run_id: str, store: str | None) -> None:
    """Ask a run to stop: in-flight components are cancelled, the rest never start."""
    found = _remote(ctx, "store")
    if found is not None:
        from rayflow.cli import remote

        remote.cancel(found, run_id)
        return
    configure(store, None).get_run(run_id).cancel()
    click.echo(f"cancel requested for {run_id}")


@cli.command()
@click.argument("run_id", required=False)
@click.option("--all", "resume_all", is_flag=True, help="Resume every RESUMABLE run (see `rayflow runs`).")
@click.option("--force", is_flag=True, help="Take the run over even if its driver still heartbeats.")
@address_opt
@store_opt
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no tables.")
@click.pass_context
@guard
def resume(ctx: click.Context, run_id: str | None, resume_all: bool, force: bool, address: str | None,
           store: str | None, quiet: bool) -> None:
    """Finish a run that did not succeed, running only the components without a checkpoint.

    For a run whose driver crashed or was killed, that failed, or that was cancelled.
    With --server, the server resumes it (it adopts orphaned runs by itself).
    Exit code 0 when every resumed run succeeds, 1 otherwise. Ctrl-C (SIGINT) or SIGTERM
    cancels the run being resumed (resume it again later) and exits 130 or 143.
    """
    if resume_all == bool(run_id):
        raise click.UsageError("give a RUN_ID or --all (not both)")
    found = _remote(ctx, "store", "address", "force", "resume_all")
    if found is not None:
        from rayflow.cli import remote

        remote.resume(found, run_id or "", quiet=quiet)
        return
    svc = configure(store, address)
    ids = [r.run_id for r in svc.resumable(limit=10_000)] if resume_all else [run_id]
    if not ids:
        click.echo("no resumable runs")
        return
    failed = 0
    with Stopping(svc) as stop:   # SIGINT/SIGTERM: the run being resumed is cancelled, exit 130/143
        for rid in ids:
            handle = svc.resume(rid, force=force)
            stop.install()   # again: ray.init installs a SIGTERM handler of its own
            stop.follow(handle)
            stop.check()
            status = handle.status()
            if status not in ("SUCCEEDED",):
                total = len(handle.components())
                status = render.follow(handle, total, show=not quiet)
            stop.check()
            _finished(handle, status, quiet=quiet)
            failed += status != "SUCCEEDED"
    if failed:
        sys.exit(EXIT_FAILED)


def _finished(handle: Any, status: str, *, quiet: bool) -> None:
    """A resumed run's end, as ``run`` shows one (the table and the result, or why it
    failed), then ``RUN_ID: STATUS`` (alone with ``--quiet``)."""
    if not quiet:
        value = handle.result() if status == "SUCCEEDED" else None
        render.print_finished(handle.run_id, status, handle.metrics(), value, quiet=False, as_json=False)
    click.echo(f"{handle.run_id}: {status}")
    if status == "FAILED":
        try:
            handle.result()
        except WorkflowFailed as exc:
            click.echo(failure_message(exc), err=True)


@cli.command()
@target_arg
@input_opt
@json_opt
@guard
def explain(target: str, inputs: tuple[str, ...], as_json: bool) -> None:
    """Show the plan without running: levels, parallel groups, critical path, bottlenecks."""
    plan = service().explain(target, parse_inputs(inputs))
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
@click.pass_context
@guard
def report(ctx: click.Context, run_id: str, store: str | None, as_json: bool, html_path: str | None) -> None:
    """Per-component table, the measured critical path and the slowest components.

    Reads the store only, so it works after the cluster is gone (with --server: the
    server's report and metrics).
    """
    found = _remote(ctx, "store")
    if found is not None:
        from rayflow.cli import remote

        remote.report(found, run_id, as_json=as_json, html_path=html_path)
        return
    svc = configure(store, None)
    handle = svc.get_run(run_id)
    metrics = handle.metrics()
    if html_path:
        from rayflow.report import write_html  # plotly is imported only when a page is asked for

        try:
            out = write_html(html_path, handle.record(), metrics, svc.store.get_components(run_id))
        except OSError as exc:
            raise ConfigError(f"cannot write the report to {html_path}: {exc}") from exc
        click.echo(str(out))
        return
    allocations = svc.allocations(run_id)
    if as_json:
        click.echo(json.dumps({**metrics, "allocations": [a.__dict__ for a in allocations]}, default=str))
        return
    render.print_run_page(render.console(), handle.record(), metrics)
    if allocations:
        render.console().print(render.allocations_table(allocations))


def main() -> None:
    gcpause.own_process()   # the rayflow command's own process: the collector is ours to tune
    cli(prog_name="rayflow")


if __name__ == "__main__":
    main()
