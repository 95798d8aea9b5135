"""``rayflow logs RUN_ID [COMPONENT] [--attempt N] [--follow]``: what attempts printed and logged.

Reads the run's log location in this process, or asks the ``--server`` over HTTP; the
same output either way. Without COMPONENT, every component's last attempt that wrote
anything, each under a header. ``--follow`` prints what a running component adds (its
log is flushed every few seconds while it runs) until it ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from rayflow.cli.common import configure, guard, refuse_with_server, store_opt, where
from rayflow.core.states import FINAL_COMPONENT_STATES, TERMINAL_RUN_STATES

FOLLOW_POLL_S = 1.0


class _Source:
    """One run, read here or over HTTP: its components and its attempts' logs."""

    def __init__(self, logs: Callable[[str, int | None], str], components: Callable[[], dict[str, Any]],
                 status: Callable[[], str]) -> None:
        self.logs, self.components, self.status = logs, components, status


@click.command()
@click.argument("run_id")
@click.argument("component", required=False)
@click.option("--attempt", type=click.IntRange(min=1), metavar="N",
              help="This attempt (from 1) instead of the last one.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what the component adds until it ends.")
@store_opt
@click.pass_context
@guard
def logs(ctx: click.Context, run_id: str, component: str | None, attempt: int | None, follow: bool,
         store: str | None) -> None:
    """Show what a component's attempt printed and logged (every component's without COMPONENT)."""
    if attempt is not None and component is None:
        raise click.UsageError("--attempt needs a COMPONENT")
    named = where(ctx)
    if named.url:
        refuse_with_server(ctx, "store")
        with named.client() as client:
            handle = client.get_run(run_id)
            _show(_Source(lambda c, a: client.logs(run_id, c, a), handle.components, handle.status),
                  component, attempt, follow)
        return
    handle = configure(store, None).get_run(run_id)
    _show(_Source(handle.logs, lambda: handle.metrics().get("components") or {}, handle.status),
          component, attempt, follow)


def _show(source: _Source, component: str | None, attempt: int | None, follow: bool) -> None:
    if component is not None:
        if follow:
            _follow(source, component)
        else:
            _write(source.logs(component, attempt))
        return
    while True:
        shown = 0
        for cid, comp in sorted(source.components().items()):
            text = source.logs(cid, None) if comp.get("attempts") else ""
            if text:
                click.secho(f"=== {cid} (attempt {comp.get('attempts')}, {comp.get('state')}) ===", bold=True)
                _write(text)
                shown += 1
        if not follow or source.status() in TERMINAL_RUN_STATES:
            break
        time.sleep(FOLLOW_POLL_S * 2)
        click.secho("--- again, as of now ---", dim=True)
    if not shown:
        click.echo("(no component of this run printed or logged anything)", err=True)


def _follow(source: _Source, component: str) -> None:
    """Print the log as it grows; stop once the component (or the run) is final."""
    printed = ""
    while True:
        comp = source.components().get(component) or {}
        final = comp.get("state") in FINAL_COMPONENT_STATES or source.status() in TERMINAL_RUN_STATES
        text = source.logs(component, None)
        if text.startswith(printed):
            _write(text[len(printed):], newline=False)
        else:   # a new attempt (or a log cut at its head): from its start
            click.secho(f"--- attempt {comp.get('attempts')} ---", dim=True)
            _write(text, newline=False)
        printed = text
        if final:
            return
        time.sleep(FOLLOW_POLL_S)


def _write(text: str, *, newline: bool = True) -> None:
    sys.stdout.write(text if not newline or not text or text.endswith("\n") else text + "\n")
    sys.stdout.flush()
