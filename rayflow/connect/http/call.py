"""The code of HTTP components: ``http_call`` (a plain component) and ``http_batch`` (a
batch-kind stage).

Owns a call from its arguments to its result: revealing the secrets of its URL, headers,
query parameters and body where it runs; cutting its items into requests
(``rayflow.connect.http.template``); sending up to ``concurrency`` of them at once, each
through ``rayflow.connect.http.request`` (rate limit, circuit breaker, retries) over the
process's pooled client of the host; reading each answer (``json``, ``text``, ``bytes``
or ``arrow``) and putting the results back in the items' order, a batch's results split
back one per item. No ray.
"""

from __future__ import annotations

import json as _json
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyarrow as pa

from rayflow.connect.http import breaker as _breaker
from rayflow.connect.http import client
from rayflow.connect.http import ratelimit as _ratelimit
from rayflow.connect.http.errors import HttpConfigError, HttpError
from rayflow.connect.http.request import Policy, body_excerpt, parse_retry, send, shown_url
from rayflow.connect.http.template import Unit, UrlTemplate, rows_of, units
from rayflow.connect.secrets import Revealed
from rayflow.core import notes

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RESPONSES = ("json", "text", "bytes", "arrow")
RESULT_COLUMN = "result"     # the column of a result that is no JSON object (response="arrow")

T = TypeVar("T")
R = TypeVar("R")


def http_call(items: Any = None, *, method: str = "GET", url: Any, headers: dict | None = None,
              params: dict | None = None, body: Any = None, batch_size: int | None = None,
              batch_key: str | None = None, result_key: str | None = None, response: str = "json",
              rate_limit: dict | None = None, retry: dict | None = None,
              breaker: dict | bool | None = None, request_timeout_s: float = 30.0,
              concurrency: int = 4, http2: bool = False, retry_unsafe: bool = False,
              component: str = "") -> Any:
    """Send a component's HTTP requests and return their results.

    ``items``: None (one request, ``body`` its JSON body if given), a list of items, or a
    ``pyarrow.Table``/``RecordBatch`` (its rows as dicts). Without ``batch_size`` each item
    is one request: its values fill the ``{name}`` placeholders of ``url`` (each quoted as
    one segment), and it is the JSON body of a POST, PUT or PATCH. With ``batch_size=N``
    the items go N per request as a JSON list (``{batch_key: [...], **body}`` with
    ``batch_key``); the answer (its ``result_key`` field with ``result_key``) must be a list
    of as many results, one per item. ``result_key`` also picks the result out of each
    answer of a per-item or single request.

    Returns the single answer without items; with items, one result per item, in order
    (one ``pyarrow.Table`` of them for ``response="arrow"``: a result that is no JSON object
    becomes a row ``{"result": value}``).

    ``rate_limit={"per_second": 50, "burst": 50}``: the host's token bucket in this
    process. ``retry={"retries": 5, "base_s": 0.1, "cap_s": 10, "retry_after_cap_s": 60}``.
    ``breaker={"failures": 5, "reset_s": 30, "wait_s": 60}`` (``wait_s``: how long a
    request waits for an open circuit, default ``reset_s * 2``; ``False``: no breaker).
    ``retry_unsafe``: retry POST and PATCH like idempotent methods. ``component``: whose
    call this is; its requests, retries, failures, rate-limit waits and the breaker's
    state go into the call's outcome (``rayflow.core.notes``).
    """
    before = client.stats() if component else None
    try:
        return _call(items, method, url, headers, params, body, batch_size, batch_key, result_key, response,
                     rate_limit, retry, breaker, request_timeout_s, concurrency, http2, retry_unsafe)
    finally:
        if before is not None:
            _report(component, before, client.stats())


_COUNTED = ("requests", "retries", "failures", "rate_limit_wait_s", "breaker_opened")


def _report(component: str, before: dict[str, dict], after: dict[str, dict]) -> None:
    """What this call added to each host's counters, and the host's breaker state now."""
    sums: dict[str, float] = {}
    breakers: dict[str, Any] = {}
    for host, row in after.items():
        old = before.get(host, {})
        delta = {k: row.get(k, 0) - old.get(k, 0) for k in _COUNTED}
        if any(delta.values()):
            for k, v in delta.items():
                sums[k] = round(sums.get(k, 0) + v, 6)
            breakers[host] = row.get("breaker")
    if sums:
        notes.add(component, "http", sums=sums, latest={"breaker": breakers})


def _call(items: Any, method: str, url: Any, headers: dict | None, params: dict | None, body: Any,
          batch_size: int | None, batch_key: str | None, result_key: str | None, response: str,
          rate_limit: dict | None, retry: dict | None, breaker: dict | bool | None, request_timeout_s: float,
          concurrency: int, http2: bool, retry_unsafe: bool) -> Any:
    method = _method(method)
    if response not in RESPONSES:
        raise HttpConfigError(f"response: expected one of {', '.join(RESPONSES)}, not {response!r}")
    if result_key is not None and response not in ("json", "arrow"):
        raise HttpConfigError(f"result_key: the field of a JSON answer, so not with response={response!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise HttpConfigError(f"concurrency: expected an integer >= 1, not {concurrency!r}")
    try:
        timeout_s = float(request_timeout_s)
    except (TypeError, ValueError):
        timeout_s = -1.0
    if not timeout_s > 0:
        raise HttpConfigError(f"request_timeout_s: expected seconds > 0, not {request_timeout_s!r}")

    revealed = Revealed()
    url = revealed.reveal(url)
    template = UrlTemplate(url)
    client.origin(template.url)                     # an absolute http(s) URL
    backoff, cap_after = parse_retry(retry)
    policy = Policy(method=method, headers=_headers(revealed.reveal(headers)),
                    params=_params(revealed.reveal(params)), backoff=backoff,
                    retry_after_cap_s=cap_after, rate=_ratelimit.parse(rate_limit),
                    breaker=_breaker.parse(breaker), timeout_s=timeout_s, http2=bool(http2),
                    retry_unsafe=bool(retry_unsafe))
    rows = rows_of(items)
    work = units(rows, template, method, body=revealed.reveal(body), batch_size=batch_size,
                 batch_key=batch_key)

    def one(unit: Unit) -> Any:
        reply = send(unit.url, unit.json, unit.has_json, policy, revealed)
        return _results(unit, reply, response, result_key, policy, revealed)

    outs = run_ordered(one, work, concurrency)
    if rows is None:
        value = outs[0]
        if response == "arrow":
            return _table(value if isinstance(value, list) else [value], revealed)
        return value
    results = [r for out in outs for r in out]
    if len(results) != len(rows):       # a bug, never a server's answer (checked per batch)
        raise HttpError(f"{method} {shown_url(template.url, policy.params, revealed)}: "
                        f"{len(results)} results for {len(rows)} items")
    return _table(results, revealed) if response == "arrow" else results


def http_batch(batch: pa.RecordBatch | pa.Table, **config: Any) -> pa.Table:
    """A batch-kind stage: ``batch``'s rows are the items of ``http_call(**config)``, the
    response read as ``arrow``; a table with one row per row of ``batch``, in order."""
    if not isinstance(batch, (pa.RecordBatch, pa.Table)):
        raise HttpConfigError(f"http_batch: expected a pyarrow.RecordBatch, not {type(batch).__name__}")
    response = config.pop("response", "arrow")
    if response != "arrow":
        raise HttpConfigError(f"http_batch: the response of a batch stage is read as 'arrow', "
                              f"not {response!r}")
    return http_call(batch, response="arrow", **config)


def run_ordered(fn: Callable[[T], R], work: Sequence[T], concurrency: int) -> list[R]:
    """``[fn(w) for w in work]`` on up to ``concurrency`` threads, results in order; the
    first failure (by position) is raised once every thread stopped, and stops the rest."""
    n = min(concurrency, len(work))
    if n <= 1:
        return [fn(w) for w in work]
    results: list[Any] = [None] * len(work)
    errors: list[tuple[int, BaseException]] = []
    lock = threading.Lock()
    stop = threading.Event()
    position = iter(range(len(work)))

    def worker() -> None:
        while not stop.is_set():
            with lock:
                i = next(position, None)
            if i is None:
                return
            try:
                results[i] = fn(work[i])
            except BaseException as e:   # noqa: BLE001 - raised again by the caller's thread
                with lock:
                    errors.append((i, e))
                stop.set()
                return

    threads = [threading.Thread(target=worker, name=f"rayflow-http-{k}", daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:
        stop.set()
        raise
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results


def _method(method: Any) -> str:
    m = str(method).upper()
    if m not in METHODS:
        raise HttpConfigError(f"method: expected one of {', '.join(sorted(METHODS))}, not {method!r}")
    return m


def _headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise HttpConfigError(f"headers: expected a mapping of names to values, not {type(headers).__name__}")
    out = {}
    for k, v in headers.items():
        if v is None:
            continue
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise HttpConfigError(f"headers: the value of {str(k)!r} must be a string or a number")
        out[str(k)] = str(v)
    return out


def _params(params: Any) -> dict[str, Any] | None:
    if params is None:
        return None
    if not isinstance(params, dict):
        raise HttpConfigError(f"params: expected a mapping of query parameters, not {type(params).__name__}")
    return {str(k): v for k, v in params.items() if v is not None}


def _results(unit: Unit, reply: client.Reply, response: str, result_key: str | None,
             policy: Policy, revealed: Revealed) -> Any:
    """An answer's results: a list (one per item) for items, else the one value."""
    if response == "text":
        value: Any = reply.text
    elif response == "bytes":
        value = reply.content
    else:
        value = _decoded(unit, reply, policy, revealed)
        if result_key is not None:
            if not isinstance(value, dict) or result_key not in value:
                raise HttpError(revealed.scrub(
                    f"{policy.method} {shown_url(unit.url, policy.params, revealed)}: the answer has "
                    f"no field {result_key!r} (result_key): {body_excerpt(reply)}"), reply.status)
            value = value[result_key]
    if unit.batched:
        if not isinstance(value, list) or len(value) != unit.count:
            got = f"{len(value)} results" if isinstance(value, list) else f"a {type(value).__name__}"
            raise HttpError(revealed.scrub(
                f"{policy.method} {shown_url(unit.url, policy.params, revealed)}: sent a batch of "
                f"{unit.count} items (from item {unit.start}), got {got} back; expected a list of "
                f"{unit.count} results, one per item, in order"), reply.status)
        return value
    return [value] if unit.count else value


def _decoded(unit: Unit, reply: client.Reply, policy: Policy, revealed: Revealed) -> Any:
    if not reply.content.strip():
        return None
    try:
        return _json.loads(reply.content)
    except ValueError:
        raise HttpError(revealed.scrub(
            f"{policy.method} {shown_url(unit.url, policy.params, revealed)}: status {reply.status}, "
            f"the answer is not JSON: {body_excerpt(reply)}"), reply.status) from None


def _table(results: list[Any], revealed: Revealed) -> pa.Table:
    rows = [r if isinstance(r, dict) else {RESULT_COLUMN: r} for r in results]
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise HttpError(revealed.scrub(f"response='arrow': the results do not make a table: "
                                       f"{' '.join(str(e).split())[:200]}")) from None
