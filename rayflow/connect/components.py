"""Connector components as calls: what a ``type: sql`` or ``type: http`` component runs.

Both front ends (a spec's component, ``rf.sql``/``rf.http`` in Python) hand their fields
here and get back the function, its arguments and the kind of call:

- a SQL read whose parameters are all known when the workflow is built is a batch
  component over a ``SqlQuery`` source (so it can head a stream: rows flow to the batch
  stages below it batch by batch); a read whose parameters come from upstream is a task
  (``sql_read``); ``mode: execute`` runs a statement (``sql_execute``); ``insert``,
  ``upsert`` and ``copy`` are batch components writing their one input (``sql_write``),
  so a write can be a stream's sink;
- an HTTP component is a task over its input items (``http_call``), or with ``stream``
  a batch component over an Arrow input's rows (``http_batch``).

Checked here, before anything runs: a password or token written as a literal (a URL's
password, a secret-looking header or query parameter) is refused: secrets are
``{$secret: NAME}``, resolved where the component runs. Pure; no I/O, no ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rayflow.connect.secrets import marker_name
from rayflow.core.errors import SpecError
from rayflow.core.redact import has_secret, secret_name

SQL_MODES = ("read", "execute", "insert", "upsert", "copy")
WRITE_MODES = ("insert", "upsert", "copy")
_SECRET_HEADERS = ("authorization", "cookie", "proxy-authorization")


@dataclass(frozen=True)
class ConnectorCall:
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    kind: str                  # "task" | "batch"
    batch_size: int | None     # rows per batch of a batch call


def _no_literal_secret_url(cid: str, url: Any, field: str = "url") -> None:
    if isinstance(url, str) and has_secret(url):
        raise SpecError(f"component {cid!r} field {field!r}: the URL holds a password or token written "
                        "in the spec; put the URL in a secret and write {$secret: NAME}", component=cid)
    if marker_name(url) is None and not isinstance(url, str) and url is not None:
        raise SpecError(f"component {cid!r} field {field!r}: expected a URL or {{$secret: NAME}}, "
                        f"got {type(url).__name__}", component=cid)


def sql_mode(cid: str, fields: dict) -> str:
    mode = fields.get("mode")
    if mode is None:
        mode = "read" if fields.get("query") else "insert"
    if mode not in SQL_MODES:
        raise SpecError(f"component {cid!r} field 'mode': expected one of {', '.join(SQL_MODES)}, got {mode!r}",
                        component=cid)
    if mode in ("read", "execute") and not fields.get("query"):
        raise SpecError(f"component {cid!r} field 'query': mode {mode!r} needs a query", component=cid)
    if mode in WRITE_MODES:
        if fields.get("query"):
            raise SpecError(f"component {cid!r} field 'query': mode {mode!r} writes its input into 'table'; "
                            "it takes no query", component=cid)
        if not fields.get("table"):
            raise SpecError(f"component {cid!r} field 'table': mode {mode!r} needs the table to write",
                            component=cid)
        if mode == "upsert" and not fields.get("key"):
            raise SpecError(f"component {cid!r} field 'key': mode 'upsert' needs the conflict columns",
                            component=cid)
    return mode


def sql_call(cid: str, fields: dict, positional: tuple, has_refs: Callable[[Any], bool]) -> ConnectorCall:
    """The call of a SQL component (module doc). ``fields``: url, query, params, mode,
    table, tables, key, data, read_only, statement_timeout_s, retries, batch_size."""
    from rayflow.connect.sql.read import SqlQuery, rows, sql_execute, sql_read
    from rayflow.connect.sql.write import sql_write
    from rayflow.data.batches import DEFAULT_BATCH_SIZE

    f = {k: v for k, v in fields.items() if v is not None}
    if "url" not in f:
        raise SpecError(f"component {cid!r} field 'url': a SQL component needs a URL or {{$secret: NAME}}",
                        component=cid)
    _no_literal_secret_url(cid, f["url"])
    mode = sql_mode(cid, f)
    tables = f.get("tables")
    if tables is not None:
        tables = list(tables)
        table = f.get("table")
        if isinstance(table, str) and table not in tables:
            raise SpecError(f"component {cid!r} field 'table': {table!r} is not one of the allowed tables "
                            f"({', '.join(tables)})", component=cid)
    batch_size = f.get("batch_size") or DEFAULT_BATCH_SIZE
    common = {"url": f["url"], "component": cid, "retries": f.get("retries"),
              "statement_timeout_s": f.get("statement_timeout_s"), "tables": tables}
    data = f.get("data")
    if mode in WRITE_MODES:
        inputs = list(positional) + ([data] if data is not None else [])
        if len(inputs) != 1:
            raise SpecError(f"component {cid!r}: a SQL write takes one input (the rows to write), "
                            f"got {len(inputs)}", component=cid)
        kwargs = {**common, "table": f["table"], "mode": mode, "key": list(f.get("key") or ()) or None}
        return ConnectorCall(sql_write, (inputs[0],), kwargs, "batch", batch_size)
    if positional or data is not None:
        raise SpecError(f"component {cid!r}: a SQL {mode} takes no input rows; connect upstream values to "
                        "its port 'params' (or 'table')", component=cid)
    params = f.get("params", [])
    if not isinstance(params, (list, tuple)) and not has_refs(params):
        raise SpecError(f"component {cid!r} field 'params': expected a list of values, got "
                        f"{type(params).__name__}", component=cid)
    query = f["query"]
    if mode == "execute":
        return ConnectorCall(sql_execute, (), {**common, "query": query, "params": params,
                                                "table": f.get("table")}, "task", None)
    if has_refs(params) or has_refs(f.get("table")):
        kwargs = {**common, "query": query, "params": params, "table": f.get("table"),
                  "batch_size": batch_size, "read_only": f.get("read_only", True)}
        return ConnectorCall(sql_read, (), kwargs, "task", None)
    source = SqlQuery(f["url"], query, tuple(params), cid, batch_size, f.get("read_only", True),
                      f.get("statement_timeout_s"), f.get("table"),
                      None if tables is None else tuple(tables), f.get("retries"))
    return ConnectorCall(rows, (source,), {}, "batch", batch_size)


HTTP_FIELDS = ("method", "url", "headers", "params", "body", "batch_key", "result_key", "response",
               "rate_limit", "retry", "breaker", "request_timeout_s", "http2", "retry_unsafe")


def check_http(cid: str, fields: dict) -> None:
    url = fields.get("url")
    if url is None:
        raise SpecError(f"component {cid!r} field 'url': an HTTP component needs a URL", component=cid)
    _no_literal_secret_url(cid, url)
    if isinstance(url, str):
        head = urlsplit(url.split("{", 1)[0])
        if "{" in url and (not head.scheme or not head.netloc or "{" in url.split("/", 3)[2]):
            raise SpecError(f"component {cid!r} field 'url': placeholders may fill the path and query only, "
                            "never the scheme or host", component=cid)
        if urlsplit(url).scheme not in ("http", "https"):
            raise SpecError(f"component {cid!r} field 'url': expected an http:// or https:// URL, got {url!r}",
                            component=cid)
    for field in ("headers", "params"):
        for name, value in (fields.get(field) or {}).items():
            secretish = secret_name(str(name)) or str(name).lower() in _SECRET_HEADERS or "key" in str(name).lower()
            if secretish and isinstance(value, str) and value:
                raise SpecError(f"component {cid!r} field '{field}.{name}': a secret written in the spec; "
                                "write {$secret: NAME}", component=cid)


def http_call_of(cid: str, fields: dict, positional: tuple, *, batch_size: int | None,
                 stream: bool, in_flight: int | None) -> ConnectorCall:
    """The call of an HTTP component (module doc)."""
    from rayflow.connect.http import http_batch, http_call

    check_http(cid, fields)
    kwargs = {k: fields[k] for k in HTTP_FIELDS if fields.get(k) is not None}
    kwargs["component"] = cid
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    if in_flight is not None:
        kwargs["concurrency"] = in_flight
    if len(positional) > 1:
        raise SpecError(f"component {cid!r}: an HTTP component takes at most one input (its items), "
                        f"got {len(positional)}", component=cid)
    if stream:
        if not positional:
            raise SpecError(f"component {cid!r} field 'stream': a streamed HTTP component needs an input "
                            "(an Arrow table whose rows are the items)", component=cid)
        kwargs.pop("response", None)
        return ConnectorCall(http_batch, (positional[0],), kwargs, "batch", None)
    return ConnectorCall(http_call, tuple(positional), kwargs, "task", None)
