"""``rayflow server``, ``rayflow token create|list|revoke`` and ``rayflow gc``: running the
control plane, managing who may call it, and removing what finished runs left behind.

Owns parsing these commands' options and formatting their output; serving is
``rayflow.server.main.serve`` and the token format, hashing and scopes are
``rayflow.server.tokens`` (both imported when a command runs, so other commands never
load them). A token is printed once, by ``token create``, and never logged; the store
keeps its hash alone, which ``token list`` never shows. What ``gc`` removes is decided by
``rayflow.service.retention``.
"""

from __future__ import annotations

import json
import time

import click

from rayflow.cli import render
from rayflow.cli.common import address_opt, configure, guard, json_opt, store_opt
from rayflow.core.errors import ConfigError

SCOPES = ("read", "submit", "admin")   # as rayflow.server.tokens.SCOPES, without importing it here


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs --auth token (and a token in the store).")
@click.option("--port", default=8470, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@address_opt
@store_opt
@click.option("--auth", type=click.Choice(("auto", "token", "none")), default="auto", show_default=True,
              help="token: every call but /healthz needs `Authorization: Bearer <token>`; none: no check "
                   "(loopback only); auto: token once the store holds a token, else none.")
@click.option("--max-runs", default=64, show_default=True, type=click.IntRange(1),
              help="Runs this server drives at once; more wait queued in the store.")
@click.option("--lease-s", type=click.FloatRange(0.3), metavar="SECONDS",
              help="A run's lease: another server takes over a run whose lease lapses "
                   "(default $RAYFLOW_LEASE_S or 30).")
@click.option("--executor", type=click.Choice(("ray", "local")), default="ray", show_default=True, hidden=True,
              help="'local': run components in the server's process, one at a time (tests, debugging).")
@guard
def server(host: str, port: int, address: str | None, store: str | None, auth: str, max_runs: int,
           lease_s: float | None, executor: str) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /openapi.json) and drive the runs it is given.

    One long-lived process that is the cluster's control plane: it takes runs over HTTP
    (`rayflow --server URL submit ...`, rf.Client) and from `rayflow submit` on the same
    store, drives them on Ray, and keeps Ray's workers warm. Runs until SIGTERM or
    Ctrl-C, then hands the runs it drives back (another server on the store resumes them).
    Needs the server extras (FastAPI, uvicorn).
    """
    import rayflow.api  # noqa: F401 - the composition root, as every local command loads it

    try:
        from rayflow.server.main import serve
    except ImportError as exc:
        raise ConfigError(f"rayflow server needs FastAPI and uvicorn: {exc}") from None
    extra = {"executor": executor} if executor != "ray" else {}
    serve(host=host, port=port, address=address, store_url=store, auth=auth, max_runs=max_runs,
          lease_s=lease_s, **extra)


@click.group()
def token() -> None:
    """API tokens of `rayflow server --auth token`: create (shown once), list, revoke.

    The store (--store, default $RAYFLOW_STORE) keeps each token's SHA-256 only; use the
    store the server uses. Scopes: read (GETs), submit (+ runs: submit, cancel, resume,
    retry), admin (+ workflows).
    """


@token.command("create")
@click.option("--scope", type=click.Choice(SCOPES), required=True, help="What the token may do.")
@click.option("--name", default="", metavar="NAME", help="A label for `token list` (default: the scope).")
@store_opt
@guard
def token_create(scope: str, name: str, store: str | None) -> None:
    """Make a token and print it, once, alone on stdout (for TOKEN=$(rayflow token create ...)).

    Its id (what `token list` shows and `token revoke` takes) goes to stderr.
    """
    from rayflow.server import tokens

    secret, record = tokens.create(configure(store, None).store, scope, name)
    click.echo(secret)
    click.echo(f"token id {record.token_id} (scope {record.scope}, name {record.name!r}); the token is shown "
               "this once: keep it", err=True)


@token.command("list")
@store_opt
@json_opt
@guard
def token_list(store: str | None, as_json: bool) -> None:
    """Every token: id, name, scope, created, revoked (never the token or its hash)."""
    records = configure(store, None).store.list_tokens()
    rows = [{"token_id": t.token_id, "name": t.name, "scope": t.scope, "created_at": t.created_at,
             "revoked_at": t.revoked_at} for t in records]
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = render.Table(title="API tokens")
    for col in ("id", "name", "scope", "created", "revoked"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(r["token_id"], r["name"], r["scope"], render._ts(r["created_at"]), render._ts(r["revoked_at"]))
    render.console().print(table)


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@store_opt
@guard
def token_revoke(token_id: str, store: str | None) -> None:
    """Revoke token ID: servers refuse it within seconds (they trust a checked token 2 s)."""
    if not configure(store, None).store.revoke_token(token_id, time.time()):
        raise ConfigError(f"no live token with id {token_id!r} (see `rayflow token list`)")
    click.echo(f"revoked {token_id}")


@click.command()
@click.option("--older-than", metavar="AGE",
              help="Remove what finished runs that ended more than AGE ago left (30m, 12h, 7d, 2w). "
                   "Default $RAYFLOW_RETENTION, else 7d.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--rows", is_flag=True,
              help="Also delete those runs' rows (run, components, events) from the store.")
@store_opt
@click.option("--checkpoints", "checkpoints_url", metavar="URL",
              help="The checkpoint location (default $RAYFLOW_CHECKPOINTS or ~/.rayflow/checkpoints).")
@json_opt
@guard
def gc(older_than: str | None, dry_run: bool, rows: bool, store: str | None, checkpoints_url: str | None,
       as_json: bool) -> None:
    """Remove the checkpoints of finished runs (SUCCEEDED, FAILED, CANCELLED) that ended
    before the cutoff, leftover temporary files (*.tmp-*) untouched for an hour, and the
    folders of runs the store does not know, once untouched for as long as the cutoff.

    Unfinished runs (PENDING, RUNNING) are never touched: they may be resumed. A finished
    run whose checkpoints are removed can no longer be resumed from them. Use the store the
    runs were recorded in: a folder its store does not know counts as an orphan.
    Prints what it removed (counts and bytes). See docs/operations.md.

    \b
    Examples:
      rayflow gc --dry-run              what would go, with the default retention
      rayflow gc --older-than 1d        what runs that ended over a day ago left
      RAYFLOW_RETENTION=30d rayflow gc  the retention from the environment (cron)
    """
    from rayflow.service.retention import gc as collect

    done = collect(configure(store, None), older_than=older_than, checkpoints_url=checkpoints_url, rows=rows,
                   dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(done.to_dict(), default=str))
        return
    if dry_run:
        for item in done.removed:
            click.echo(f"would remove {item.kind:<11} {_size(item.bytes):>9}  {item.what}")
    verb = "would remove" if dry_run else "removed"
    totals = done.totals()
    parts = [f"{n} {_NOUNS[kind]} ({_size(size)})" if kind != "rows" else f"{n} runs' rows"
             for kind, (n, size) in totals.items() if n or kind == "checkpoints"]
    kept = f"; kept {done.kept_unfinished} unfinished run(s)" if done.kept_unfinished else ""
    click.echo(f"{verb} " + ", ".join(parts) + kept)


_NOUNS = {"checkpoints": "finished runs' checkpoints", "temporary": "temporary files",
          "orphan": "orphan folders"}


def _size(n: float) -> str:
    """Bytes as people read them: 512 B, 3.4 KiB, 12.0 MiB, 1.5 GiB."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"
