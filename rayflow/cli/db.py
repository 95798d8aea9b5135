"""``rayflow db``: database tools. ``rayflow db advise``: the query and index advisor.

Parses the command line, gathers the queries (``rayflow.connect.advise.sources``: a spec
file, a run's recorded spec, the run store's own reads, or one ``--query``), runs the
advisor and prints its report (a table, or ``--json``: one object, ``results.Report``).
Recommendations are not failures: exit 0. Bad usage, an invalid spec, an unknown run or
a database that cannot be reached: one line on stderr, exit 2, no password shown. Light at
import: the advisor and the drivers load when the command runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from rayflow.cli.common import guard, json_opt
from rayflow.core.errors import ConfigError
from rayflow.core.redact import has_secret

STORE_FLAG = "\x00default"      # --store given without a URL
DEFAULT_MIN_ROWS = 10_000       # as rayflow.connect.advise.DEFAULT_MIN_ROWS (not imported: light at import)
VERIFY_WITH = ("auto", "hypopg", "transaction")


def _warn_password(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value and value != STORE_FLAG and has_secret(value):
        click.echo(f"warning: --{param.name} holds a password, which any user of this machine can read in the "
                   "process list; leave it out of the URL and use PGPASSWORD or ~/.pgpass (or a spec's "
                   "{$secret: NAME})", err=True)
    return value


@click.group()
def db() -> None:
    """Database tools: `rayflow db advise` finds slow queries and the indexes they need."""


@db.command()
@click.argument("target", required=False, metavar="[TARGET]")
@click.option("--store", "store", is_flag=False, flag_value=STORE_FLAG, default=None, metavar="[URL]",
              callback=_warn_password,
              help="The run store (default $RAYFLOW_STORE or sqlite:///~/.rayflow/rayflow.db). Alone: "
                   "advise on the store's own reads. With a RUN_ID: where the run is (give TARGET first).")
@click.option("--url", metavar="URL", callback=_warn_password,
              help="A database for --query: postgresql://USER@HOST:PORT/DB or sqlite:///PATH.")
@click.option("--query", metavar="SQL", help="One read query to advise on (placeholders $1... or ?).")
@click.option("--param", "params", multiple=True, metavar="VALUE",
              help="The value of the query's next placeholder, read as YAML (42, text, 2024-01-01). Repeatable.")
@click.option("--analyze", is_flag=True,
              help="Run each query under EXPLAIN ANALYZE (PostgreSQL: with BUFFERS) and show its time.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check each recommended index: hypothetically (hypopg), or built in a transaction "
                   "that is rolled back, with the query timed before and after.")
@click.option("--verify-with", type=click.Choice(VERIFY_WITH), default="auto", show_default=True,
              help="auto: hypopg when it can be created, else a transaction; transaction: always build "
                   "the index (and measure the time).")
@click.option("--min-rows", type=click.IntRange(min=0), default=DEFAULT_MIN_ROWS, show_default=True,
              help="A sequential scan over a table with fewer rows is fine.")
@json_opt
@guard
def advise(target: str | None, store: str | None, url: str | None, query: str | None, params: tuple[str, ...],
           analyze: bool, verify: bool, verify_with: str, min_rows: int, as_json: bool) -> None:
    """Find queries that read whole large tables, recommend the indexes they need (verified),
    and flag unused and duplicate indexes.

    TARGET is a spec file (its `type: sql` reads) or a RUN_ID (the spec the run recorded,
    read from --store). --store alone: the run store's own reads. --url with --query: one
    query. PostgreSQL and SQLite. Nothing the advisor does to the database stays: every
    index it builds to measure is rolled back (building one holds writes to its table
    until then: prefer a replica or a quiet time for large tables).

    Exit code 0 (recommendations included), 2 on bad usage or a database that cannot be reached.
    """
    from rayflow.connect.advise import Options, sources
    from rayflow.connect.advise import advise as run_advisor
    from rayflow.connect.advise.report import print_report

    jobs = _jobs(sources, target, store, url, query, params)
    if not jobs:
        raise ConfigError(f"{target}: no `type: sql` read query to advise on")
    report = run_advisor(jobs, Options(analyze=analyze, verify=verify, verify_with=verify_with, min_rows=min_rows))
    if query is not None and report.queries and report.queries[0].status == "error":
        raise ConfigError(f"{report.queries[0].database}: {report.queries[0].verdict.removeprefix('error: ')}")
    if as_json:
        click.echo(json.dumps(report.to_dict(), default=str))
        return
    from rayflow.cli import render

    print_report(render.console(), report)


def _spec_document(path: str) -> object:
    """A spec file as a plain document, read within the spec limits (size, depth, aliases)."""
    from rayflow.spec import loading

    p = Path(path)
    return loading.parse(loading.read_file(p), source=str(p), fmt="json" if p.suffix == ".json" else "yaml")


def _jobs(sources, target: str | None, store: str | None, url: str | None, query: str | None,
          params: tuple[str, ...]) -> list:
    """The queries the command line names (UsageError for a combination that makes no sense)."""
    store_url = None if store in (None, STORE_FLAG) else store
    if (url is None) != (query is None):
        raise click.UsageError("--url and --query go together")
    if params and query is None:
        raise click.UsageError("--param needs --query")
    if query is not None:
        if target is not None or store is not None:
            raise click.UsageError("--url/--query advise on one query: drop TARGET and --store")
        from rayflow.cli.common import parse_inputs

        values = [parse_inputs((f"p={p}",))["p"] for p in params]
        return sources.direct(url, query, values)
    if target is None:
        if store is None:
            raise click.UsageError("give a TARGET (spec file or RUN_ID), --store, or --url with --query")
        return sources.from_store(store_url)
    if sources.looks_like_spec(target):
        if store is not None:
            raise click.UsageError("--store names where a RUN_ID is; TARGET is a spec file")
        return sources.from_spec(_spec_document(target), os.path.basename(target))
    return sources.from_run(target, store_url)
