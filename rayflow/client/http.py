"""``rf.Client``: a ``rayflow server`` over HTTP, from any machine, without Ray.

Owns the calls of the server's ``/v1`` API (API.md, "Server") and what they answer: runs
submitted, read, listed (following ``next_cursor``), cancelled, resumed, retried; a run's
event stream (``text/event-stream``, resumed with ``Last-Event-ID`` after a dropped
connection, ended by the server after the run's terminal event); its logs and report;
registered workflows; health. Error answers become the exceptions of
``rayflow.client.errors``; an unreachable server is one ``ServerError`` line naming the
URL. A 429, and a 503 to a GET, are retried after their ``Retry-After`` (up to
``RETRY_AFTER_MAX_S``); nothing else is retried but a dropped event stream.

The bearer token is sent in the ``Authorization`` header and nowhere else: no message,
repr or log line holds it. httpx is imported here (and by ``rayflow.client`` alone).
Must not import ray, FastAPI, nor rayflow's server, service, runs or execute layers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from rayflow.client import sse
from rayflow.client.errors import ServerError, from_answer
from rayflow.client.handle import RemoteRun
from rayflow.client.specs import spec_document, submit_body
from rayflow.core import config

PAGE_MAX = 1000             # the most runs the server answers per page
RETRY_STATUSES = (429, 503)
MAX_RETRIES = 3
RETRY_AFTER_MAX_S = 5.0
STREAM_READ_S = 30.0        # the server sends a keep-alive every 10 s: a read this long is a stall
RECONNECT_S = 0.2           # first wait before reconnecting a dropped event stream (doubles, to 2 s)
MAX_RECONNECTS = 8          # consecutive failed reconnects before the stream gives up
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class Client:
    """A rayflow server at ``url`` (default $RAYFLOW_SERVER, else http://127.0.0.1:8470).

    ``token``: a bearer token from ``rayflow token create`` (default $RAYFLOW_TOKEN; ``""``:
    none), for a server run with ``--auth token``. ``timeout``: seconds for each call. ``transport``: an
    ``httpx`` transport (tests pass ``httpx.MockTransport``). Thread-safe; close it (or use
    it as a context manager) to free its connections.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = (url or config.server_url() or config.DEFAULT_SERVER_URL).rstrip("/")
        token = token if token is not None else config.token()
        self.timeout = timeout
        headers = {"User-Agent": "rayflow-client", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._has_token = bool(token)
        # a proxy from the environment is for reaching other hosts, not this machine's server
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport,
                                  trust_env=urlsplit(self.url).hostname not in LOOPBACK_HOSTS)

    def __repr__(self) -> str:
        return f"Client({self.url!r}, token={'<set>' if self._has_token else None})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- runs ---------------------------------------------------------------------------

    def submit(self, target: Any, /, run_id: str | None = None, idempotency_key: str | None = None,
               **inputs: Any) -> RemoteRun:
        """Start a run on the server; returns its handle at once.

        ``target``: a spec (dict, ``rf.WorkflowSpec``, or a .yaml/.yml/.json file read here),
        an ``@rf.workflow`` of an installed module, a registered workflow's name, or an
        installed ``module:attr``. ``idempotency_key``: the same key and body again answer
        the same run (another body with it: ``RemoteConflict``)."""
        body: dict[str, Any] = {**submit_body(target), "inputs": inputs}
        if run_id is not None:
            body["run_id"] = run_id
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        run = self._json("POST", "/v1/runs", json=body, headers=headers)
        return RemoteRun(self, run["run_id"], run)

    def get_run(self, run_id: str) -> RemoteRun:
        """A handle for any run the server's store holds (``RemoteNotFound`` otherwise)."""
        return RemoteRun(self, run_id, self.run_detail(run_id))

    def run_detail(self, run_id: str) -> dict[str, Any]:
        """``GET /v1/runs/{id}``: the run with its ``components`` and ``metrics``."""
        return self._json("GET", _run_path(run_id), run_id=run_id)

    def list_runs(self, status: str | None = None, limit: int = 100, *,
                  workflow: str | None = None) -> list[dict[str, Any]]:
        """Runs newest first (at most ``limit``, following the server's pages)."""
        runs: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(runs) < limit:
            params = {"status": status, "workflow": workflow, "cursor": cursor, "limit": min(PAGE_MAX, limit - len(runs))}
            page = self._json("GET", "/v1/runs", params={k: v for k, v in params.items() if v is not None})
            runs.extend(page.get("runs") or [])
            cursor = page.get("next_cursor")
            if not cursor or not page.get("runs"):
                break
        return runs[:limit]

    def cancel(self, run_id: str) -> RemoteRun:
        """Ask the run to stop: in-flight components are cancelled, the rest never start."""
        return self._act(run_id, "cancel")

    def resume(self, run_id: str) -> RemoteRun:
        """Finish a run that did not succeed, running only what has no checkpoint."""
        return self._act(run_id, "resume")

    def retry(self, run_id: str) -> RemoteRun:
        """Run a finished run's failed components again."""
        return self._act(run_id, "retry")

    def _act(self, run_id: str, action: str) -> RemoteRun:
        run = self._json("POST", f"{_run_path(run_id)}/{action}", run_id=run_id)
        return RemoteRun(self, run_id, run)

    def report(self, run_id: str) -> str:
        """The run's self-contained HTML report."""
        return self._request("GET", f"{_run_path(run_id)}/report", run_id=run_id,
                             headers={"Accept": "text/html"}).text

    def logs(self, run_id: str, component: str, attempt: int | None = None) -> str:
        """What ``component`` printed and logged (its last attempt, or ``attempt``)."""
        params = {"attempt": attempt} if attempt is not None else None
        path = f"{_run_path(run_id)}/components/{quote(component, safe='')}/logs"
        return self._request("GET", path, params=params, run_id=run_id, headers={"Accept": "text/plain"}).text

    # -- events -------------------------------------------------------------------------

    def events(self, run_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """The run's events in order (``seq``, ``kind``, ``component_id``, ``data``, ``ts``),
        from after ``after``, until the server ends the stream after the terminal event.
        A dropped connection is resumed where it broke (``Last-Event-ID``)."""
        return self.stream_events(run_id, after)

    def stream_events(self, run_id: str, after: int = 0, *,
                      deadline: float | None = None) -> Iterator[dict[str, Any]]:
        """``events``, and a ``time.monotonic()`` deadline: TimeoutError once it passes."""
        last, failures, decoder = after, 0, sse.Decoder()
        while True:
            try:
                for message in self._stream_once(run_id, last, deadline, decoder):
                    if message.id is not None and message.id.isdigit():
                        last = int(message.id)
                    failures = 0
                    yield message.decoded()
                return                                   # the server ended it: the run is final
            except httpx.TransportError as exc:          # dropped, reset or stalled: resume
                failures += 1
                if failures > MAX_RECONNECTS:
                    raise _unreachable(self.url, exc) from None
                _check_deadline(deadline, run_id)
                decoder.reset()
                delay = decoder.retry_ms / 1000 if decoder.retry_ms is not None else RECONNECT_S
                time.sleep(min(delay * 2 ** (failures - 1), 2.0))

    def _stream_once(self, run_id: str, after: int, deadline: float | None,
                     decoder: sse.Decoder) -> Iterator[sse.Message]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if after:
            headers["Last-Event-ID"] = str(after)
        read_s = STREAM_READ_S if deadline is None else max(0.05, min(STREAM_READ_S, deadline - time.monotonic()))
        timeout = httpx.Timeout(self.timeout, read=read_s)
        with self._http.stream("GET", f"{_run_path(run_id)}/events", headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise self._error(response, run_id)
            for line in response.iter_lines():
                _check_deadline(deadline, run_id)
                message = decoder.feed(line)
                if message is not None:
                    yield message

    # -- workflows and the server -------------------------------------------------------

    def workflows(self) -> list[dict[str, Any]]:
        """The workflows registered with the server (name, spec, target, times)."""
        return self._json("GET", "/v1/workflows").get("workflows", [])

    def register_workflow(self, name: str, spec: Any = None, target: str | None = None) -> dict[str, Any]:
        """Register ``spec`` (a dict, an ``rf.WorkflowSpec`` or a spec file) or ``target``
        (an installed ``module:attr``) under ``name``; submit it by name afterwards."""
        if (spec is None) == (target is None):
            raise TypeError("register_workflow: give spec= or target= (one of them)")
        body: dict[str, Any] = {"name": name}
        if spec is not None:
            body["spec"] = spec_document(spec)
        else:
            body["target"] = target
        return self._json("POST", "/v1/workflows", json=body)

    def health(self, *, timeout: float | None = None) -> dict[str, Any]:
        """``GET /healthz`` (needs no token)."""
        return self._json("GET", "/healthz", timeout=timeout)

    # -- plumbing -----------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"{self.url}{path} answered {response.status_code} without JSON; is {self.url} "
                              "a rayflow server?", status=response.status_code) from None

    def _request(self, method: str, path: str, *, run_id: str | None = None, timeout: float | None = None,
                 **kwargs: Any) -> httpx.Response:
        for attempt in range(MAX_RETRIES + 1):
            try:
                response = self._http.request(method, path, timeout=timeout or self.timeout, **kwargs)
            except httpx.TimeoutException:
                raise ServerError(f"the rayflow server at {self.url} did not answer {method} {path} within "
                                  f"{timeout or self.timeout:g}s") from None
            except httpx.TransportError as exc:
                raise _unreachable(self.url, exc) from None
            wait = _retry_after(response, method)
            if wait is None or attempt == MAX_RETRIES:
                break
            time.sleep(wait)
        if response.status_code >= 400:
            raise self._error(response, run_id)
        return response

    def _error(self, response: httpx.Response, run_id: str | None) -> ServerError:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return from_answer(response.status_code, payload, reason=response.reason_phrase, run_id=run_id)


def _run_path(run_id: str) -> str:
    return f"/v1/runs/{quote(run_id, safe='')}"


def _retry_after(response: httpx.Response, method: str) -> float | None:
    """Seconds to wait before sending again, when the answer says to; else None."""
    status = response.status_code
    if status not in RETRY_STATUSES or (status == 503 and method != "GET"):
        return None
    try:
        wait = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        return None
    return wait if 0 <= wait <= RETRY_AFTER_MAX_S else None


def _unreachable(url: str, exc: Exception) -> ServerError:
    reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
    return ServerError(f"cannot reach rayflow server at {url}: {reason}")


def _check_deadline(deadline: float | None, run_id: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(f"run {run_id}: no end of its events before the deadline")
