"""``rf.sql``, ``rf.http`` and ``rf.secret``: connector components in Python.

Inside a ``@rf.workflow`` function, ``rf.sql(...)`` and ``rf.http(...)`` record a node (an
upstream's output may be a read's ``params``, a write's ``data``, an HTTP component's
``items``) and return its handle; anywhere else they run at once and return the value,
as calling a component does. What each runs is ``rayflow.connect.components``'; the
fields are the spec's (docs/connectors.md). Component options (``id``, ``num_cpus``,
``max_retries``, ``timeout_s``, ...) are keyword arguments too. Must not import ray.
"""

from __future__ import annotations

from typing import Any

from rayflow.connect.components import ConnectorCall, http_call_of, sql_call
from rayflow.connect.secrets import Secret
from rayflow.core.options import ComponentOptions
from rayflow.data.batches import BatchFunction
from rayflow.dsl.component import Component
from rayflow.dsl.tracing import current_builder
from rayflow.dsl.workflow import NodeHandle

__all__ = ["http", "secret", "sql"]


def secret(name: str) -> Secret:
    """A secret by name, resolved where the component runs: the environment, then the
    secrets file (``RAYFLOW_SECRETS_FILE``). Only the name is recorded or sent."""
    return Secret(name)


def _has_handles(value: Any) -> bool:
    if isinstance(value, NodeHandle):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_handles(v) for v in value)
    if isinstance(value, dict):
        return any(_has_handles(v) for v in value.values())
    return False


def _component_id(given: str | None, base: str) -> str:
    """The node's id, known before the call is built (its code reports under it): the one
    given, else the next free ``sql``, ``sql_1``, ... of the workflow being traced."""
    if given:
        return given
    builder = current_builder()
    return builder._auto_id(base) if builder is not None else base


def _run(made: ConnectorCall, cid: str, options: dict[str, Any]) -> Any:
    opts = {"kind": made.kind, **options, "id": cid}
    if made.kind == "batch":
        opts.setdefault("batch_size", made.batch_size)
    comp = Component(made.fn, ComponentOptions().merged(opts, component=cid))
    builder = current_builder()
    if builder is not None:
        return comp(*made.args, **made.kwargs)
    if made.kind == "batch":   # outside a workflow: over the whole input, as the component would
        return BatchFunction(made.fn, comp.default_options.batch_size or made.batch_size)(*made.args, **made.kwargs)
    return made.fn(*made.args, **made.kwargs)


def sql(url: Any, query: str | None = None, *, params: Any = (), mode: str | None = None,
        table: Any = None, tables: list[str] | None = None, key: list[str] | None = None,
        data: Any = None, read_only: bool = True, statement_timeout_s: float | None = None,
        retries: int | None = None, batch_size: int | None = None, id: str | None = None,
        **options: Any) -> Any:
    """A SQL component: a read (``query`` with bound ``params``; an Arrow table), a
    statement (``mode="execute"``; its row count) or a write of ``data`` into ``table``
    (``mode="insert" | "upsert" | "copy"``; one row per batch written). ``url``: a URL
    without a password, or ``rf.secret("NAME")``."""
    cid = _component_id(id, "sql")
    fields = {"url": url, "query": query, "params": list(params) if isinstance(params, tuple) else params,
              "mode": mode, "table": table, "tables": tables, "key": key, "data": data,
              "read_only": read_only, "statement_timeout_s": statement_timeout_s, "retries": retries,
              "batch_size": batch_size}
    made = sql_call(cid, fields, (), _has_handles)
    return _run(made, cid, options)


def http(method: str, url: Any, items: Any = None, *, headers: dict | None = None, params: dict | None = None,
         body: Any = None, batch_size: int | None = None, batch_key: str | None = None,
         result_key: str | None = None, response: str = "json", rate_limit: dict | None = None,
         retry: dict | None = None, breaker: dict | None = None, request_timeout_s: float = 30.0,
         in_flight: int | None = None, http2: bool = False, retry_unsafe: bool = False,
         stream: bool = False, id: str | None = None, **options: Any) -> Any:
    """An HTTP component: one request, or one per item of ``items`` (``batch_size`` items
    per request where the endpoint takes a list); retries with backoff, a circuit breaker
    and a rate limit per host (docs/connectors.md)."""
    cid = _component_id(id, "http")
    fields = {"method": method.upper(), "url": url, "headers": headers, "params": params, "body": body,
              "batch_key": batch_key, "result_key": result_key, "response": response, "rate_limit": rate_limit,
              "retry": retry, "breaker": breaker, "request_timeout_s": request_timeout_s, "http2": http2,
              "retry_unsafe": retry_unsafe}
    positional = () if items is None else (items,)
    made = http_call_of(cid, {k: v for k, v in fields.items() if v is not None}, positional,
                        batch_size=batch_size, stream=stream, in_flight=in_flight)
    return _run(made, cid, options)
