"""Where the advisor's queries come from: one given directly, a spec's ``type: sql`` reads,
a run's recorded spec, or the run store's own statements.

Owns turning each into ``Job``s. A spec is a plain YAML/JSON document (the command reads the
file within the spec limits), not the spec model: a component of
``type: sql`` gives its ``url`` (a URL or ``{$secret: NAME}``, revealed here), ``query``
(``{table}`` filled with a literal ``table``) and ``params`` (literals, or ``{$input:
NAME}`` from the spec's ``inputs`` defaults, or the run's inputs). A read whose
parameters or table come from upstream components cannot be planned with values: it is
skipped with a note. The run store's statements are those of ``rayflow.store.pgschema``
(PostgreSQL) and of ``rayflow.store.sqlite`` (SQLite), planned generically (no values).
"""

from __future__ import annotations

import os
from typing import Any

from rayflow.connect.advise.job import Job
from rayflow.connect.secrets import Revealed, marker_name
from rayflow.connect.sql.statements import fill_table, table_name
from rayflow.core import config
from rayflow.core.errors import ConfigError, RayflowError, RunNotFound, SpecError
from rayflow.core.redact import redact

SQL_FIELDS = ("url", "query", "params", "mode", "table", "tables")
SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def direct(url: str, query: str, params: list[Any]) -> list[Job]:
    return [Job("--query", url, redact(url), query, list(params))]


def _param(value: Any, inputs: dict[str, Any], i: int) -> tuple[Any, str | None]:
    """A parameter's value, or why it cannot be known."""
    if isinstance(value, dict):
        if set(value) == {"$input"}:
            name = value["$input"]
            if name in inputs:
                return inputs[name], None
            return None, f"parameter {i + 1} reads input {name!r}, which has no default"
        if marker_name(value) is not None:
            return None, f"parameter {i + 1} is a secret"
        return None, f"parameter {i + 1} comes from an upstream component"
    return value, None


def _component(comp: dict[str, Any], where: str, inputs: dict[str, Any], fed: dict[str, list[str]],
               revealed: Revealed) -> Job | None:
    cid = str(comp.get("id", "?"))
    block = comp.get("sql") if isinstance(comp.get("sql"), dict) else {}
    fields = {**block, **{k: comp[k] for k in SQL_FIELDS if k in comp}}
    query = fields.get("query")
    mode = fields.get("mode") or ("read" if query else "insert")
    source = f"{where}: {cid}"
    if mode != "read":
        return None if mode != "execute" else Job(source, "", "-", str(query or ""), skip="mode 'execute': a statement")
    url = revealed.reveal(fields.get("url"))
    if not isinstance(url, str) or "://" not in url:
        raise SpecError(f"{source}: field 'url': expected a URL or {{$secret: NAME}}")
    job = Job(source, url, redact(url), str(query))
    if cid in fed:
        job.skip = f"its parameters come from upstream component(s) {', '.join(fed[cid])}"
        return job
    table = fields.get("table")
    if isinstance(table, dict) and set(table) == {"$input"}:
        table = inputs.get(table["$input"], table)
    if isinstance(table, dict):
        job.skip = "its table comes from an upstream component"
        return job
    dialect = "postgresql" if url.lower().startswith(("postgres://", "postgresql://")) else "sqlite"
    try:
        checked = None if table is None else table_name(table, fields.get("tables"), component=cid)
        job.query = fill_table(str(query), checked, dialect, component=cid)
    except RayflowError as exc:
        job.skip = str(exc)
        return job
    params = fields.get("params", [])
    if not isinstance(params, (list, tuple)):
        job.skip = "its parameters are not a list of values"
        return job
    for i, value in enumerate(params):
        got, why = _param(value, inputs, i)
        if why is not None:
            job.skip = why
            return job
        job.params.append(got)
    return job


def from_spec(data: Any, where: str, inputs: dict[str, Any] | None = None,
              revealed: Revealed | None = None) -> list[Job]:
    """The read queries of a spec document's ``type: sql`` components."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping at the top level")
    values = {**(data.get("inputs") or {}), **(inputs or {})}
    fed: dict[str, list[str]] = {}
    for c in data.get("connections") or []:
        if isinstance(c, dict) and "to" in c:
            fed.setdefault(str(c["to"]), []).append(str(c.get("from", "?")))
    revealed = revealed or Revealed()
    jobs = []
    for comp in data.get("components") or []:
        if isinstance(comp, dict) and comp.get("type") == "sql":
            job = _component(comp, where, values, fed, revealed)
            if job is not None:
                jobs.append(job)
    return jobs


def looks_like_spec(target: str) -> bool:
    return target.lower().endswith(SPEC_SUFFIXES) or os.path.isfile(target)


def store_url(url: str | None) -> str:
    from rayflow.store.urls import DEFAULT_STORE_URL

    return (url or config.store_url() or DEFAULT_STORE_URL).strip()


def from_run(run_id: str, store: str | None, revealed: Revealed | None = None) -> list[Job]:
    """The read queries of the spec a run recorded (with the run's inputs)."""
    from rayflow.store.urls import open_store

    url = store_url(store)
    opened = open_store(url)
    try:
        run = opened.get_run(run_id)
    finally:
        opened.close()
    if run is None:
        raise RunNotFound(run_id)
    if not run.spec:
        raise ConfigError(f"run {run_id!r} recorded no spec (it ran from Python code, {run.target or 'no target'}); "
                          "give the spec file instead")
    return from_spec(run.spec, f"run {run_id}", dict(run.inputs or {}), revealed)


# -- the run store's own statements ---------------------------------------------------------

def _pg_store_queries() -> list[tuple[str, str]]:
    from rayflow.store import pgschema as sql

    page, _ = sql.runs_where(name="x", before=(0.0, "x"))
    return [("get a run", sql.GET_RUN),
            ("list runs, newest first", sql.LIST_RUNS),
            ("list runs by status, newest first", sql.LIST_RUNS_BY_STATUS),
            ("a workflow's runs, a page", f"{sql.RUNS.select}{page} ORDER BY created_at DESC, run_id DESC LIMIT $4"),
            ("a run's components", sql.GET_COMPONENTS),
            ("a run's events after a seq", sql.GET_EVENTS),
            ("cancel requested", sql.CANCEL_REQUESTED),
            ("a token by its hash", sql.GET_TOKEN),
            ("a cache entry", sql.CACHE_GET)]


def _sqlite_store_queries() -> list[tuple[str, str]]:
    from rayflow.store import sqlrows as q

    newest = "ORDER BY created_at DESC, run_id DESC LIMIT ?"
    return [("get a run", f"{q.RUNS.select} WHERE run_id = ?"),
            ("list runs, newest first", f"{q.RUNS.select} {newest}"),
            ("list runs by status, newest first", f"{q.RUNS.select} WHERE status = ? {newest}"),
            ("a workflow's runs, a page",
             f"{q.RUNS.select} WHERE name = ? AND (created_at, run_id) < (?, ?) {newest}"),
            ("a run's components", f"{q.COMPONENTS.select} WHERE run_id = ? ORDER BY component_id"),
            ("a run's events after a seq", f"{q.EVENTS.select} WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
            ("cancel requested", "SELECT cancel_requested FROM runs WHERE run_id = ?"),
            ("a token by its hash", f"{q.TOKENS.select} WHERE token_hash = ?"),
            ("a cache entry", "SELECT data, expires_at FROM cache_entries WHERE key = ?")]


STORE_TABLES = ("runs", "components", "events", "tokens", "cache_entries", "workflows", "servers",
                "idempotency", "models")


def from_store(store: str | None) -> list[Job]:
    """The run store's representative reads (module doc), planned generically."""
    url = store_url(store)
    shown = redact(url)
    if url.startswith(("postgresql://", "postgres://")):
        from rayflow.store.pgurl import parse_postgres_url

        target = parse_postgres_url(url)
        return [Job(f"store: {what}", target.dsn, shown, text, generic=True, search_path=target.settings.schema,
                    store=True)
                for what, text in _pg_store_queries()]
    if url.startswith("sqlite:///"):
        from rayflow.store.urls import sqlite_path

        path = os.path.abspath(sqlite_path(url))
        if not os.path.isfile(path):
            raise ConfigError(f"no run store at {path} ({shown})")
        return [Job(f"store: {what}", f"sqlite:///{path}", shown, text, generic=True, store=True)
                for what, text in _sqlite_store_queries()]
    raise ConfigError(f"run store {shown!r}: the advisor reads PostgreSQL and SQLite stores")
