"""``rf.Client`` and ``RemoteRun``: error answers as rayflow errors, the event stream (and
its resume after a dropped connection), the bodies sent, against ``httpx.MockTransport``;
then the same client end to end against a real server on a loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

import rayflow as rf
from rayflow.client import (
    Client,
    ClientAuthError,
    RemoteConflict,
    RemoteNotFound,
    RemoteRun,
    RemoteSpecError,
    ServerError,
)
from rayflow.client.sse import Decoder
from tests.helpers import REPO
from tests.support import server as support

live_server, token_server = support.live_server, support.token_server   # the fixtures, by name

URL = "http://rayflow.test"
SECRET = "rf_not-a-real-token-but-secret"
ETL = REPO / "rayflow" / "examples" / "etl.yaml"


def error(status: int, code: str, message: str, field: str | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "field": field}})


def mock(handler, token: str | None = SECRET) -> Client:
    return Client(URL, token, transport=httpx.MockTransport(handler))


def run_json(run_id: str = "r1", status: str = "RUNNING", **extra) -> dict:
    return {"run_id": run_id, "name": "wf", "status": status, "created_at": 1.0, "started_at": 1.0,
            "ended_at": None, "n_components": 1, "result": None, **extra}


# -- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "cls", "also"), [
    (404, RemoteNotFound, rf.RunNotFound),
    (422, RemoteSpecError, rf.SpecError),
    (409, RemoteConflict, rf.RunBusy),
    (401, ClientAuthError, ServerError),
    (403, ClientAuthError, ServerError),
    (400, ServerError, rf.RayflowError),
    (413, ServerError, rf.RayflowError),
    (500, ServerError, rf.RayflowError),
])
def test_error_answers_become_rayflow_errors_with_the_servers_message(status, cls, also):
    client = mock(lambda request: error(status, "some_code", f"the reason {status}", "spec.components.b"))
    with pytest.raises(cls) as caught:
        client.get_run("r1")
    exc = caught.value
    assert isinstance(exc, also) and isinstance(exc, rf.RayflowError)
    assert str(exc) == f"the reason {status}"
    assert (exc.status, exc.code, exc.field) == (status, "some_code", "spec.components.b")
    if status == 422:
        assert exc.component == "b"
    if status in (404, 409):
        assert exc.run_id == "r1"


def test_an_answer_without_the_error_shape_still_names_the_status():
    client = mock(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(ServerError) as caught:
        client.health()
    assert caught.value.status == 502 and "502" in str(caught.value)


def test_the_token_is_sent_as_a_bearer_header_and_never_shown():
    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return error(401, "invalid_token", "the bearer token was refused: unknown token")

    client = mock(handler)
    with pytest.raises(ClientAuthError) as caught:
        client.list_runs()
    assert seen == [f"Bearer {SECRET}"]
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert SECRET not in repr(client) and "<set>" in repr(client)
    assert SECRET not in repr(RemoteRun(client, "r1"))


def test_no_token_sends_no_authorization(monkeypatch):
    monkeypatch.delenv("RAYFLOW_TOKEN", raising=False)
    seen = []
    client = mock(lambda request: seen.append(dict(request.headers)) or httpx.Response(200, json={"status": "ok"}),
                  token=None)
    client.health()
    assert "authorization" not in seen[0]


def test_a_refused_connection_is_one_line_naming_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]           # nothing listens there once closed
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(ServerError) as caught:
        Client(url, timeout=5).get_run("r1")
    message = str(caught.value)
    assert message.startswith(f"cannot reach rayflow server at {url}: ") and "\n" not in message
    assert caught.value.status is None and time.monotonic() - started < 3


def test_rate_limited_calls_are_sent_again_after_retry_after():
    answers = [httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {}}),
               httpx.Response(200, json=run_json(status="SUCCEEDED", components={}, metrics={}))]
    client = mock(lambda request: answers.pop(0))
    assert client.get_run("r1").run_id == "r1" and not answers


# -- what is sent ----------------------------------------------------------------------

def capture() -> tuple[list[httpx.Request], Client]:
    sent: list[httpx.Request] = []

    def handler(request):
        sent.append(request)
        body = json.loads(request.content)
        return httpx.Response(201, json=run_json(body.get("run_id") or "made"))

    return sent, mock(handler)


def test_submit_sends_a_dict_as_spec_with_inputs_run_id_and_idempotency_key():
    sent, client = capture()
    spec = {"components": [{"id": "a", "function": "tests.fns.basic:source"}]}
    handle = client.submit(spec, run_id="mine", idempotency_key="k-1", n=3)
    assert isinstance(handle, RemoteRun) and handle.run_id == "mine"
    request = sent[0]
    assert request.method == "POST" and request.url.path == "/v1/runs"
    assert request.headers["idempotency-key"] == "k-1"
    assert json.loads(request.content) == {"spec": spec, "inputs": {"n": 3}, "run_id": "mine"}


def test_submit_sends_a_workflow_spec_as_its_json_export_that_validates_back():
    sent, client = capture()
    spec = rf.WorkflowSpec.from_file(ETL)
    client.submit(spec)
    body = json.loads(sent[0].content)
    assert rf.WorkflowSpec.model_validate(body["spec"]) == spec
    assert body["spec"]["connections"][0] == {"from": "load", "to": "clean_even", "port": "table"}


def test_submit_reads_spec_files_here_and_sends_names_as_workflows(tmp_path):
    sent, client = capture()
    as_json = tmp_path / "flow.json"
    as_json.write_text(json.dumps({"components": [{"id": "a", "function": "m:f"}]}))
    client.submit(str(ETL))
    client.submit(as_json)
    client.submit("rayflow.examples.etl:pipeline")
    client.submit("nightly")
    bodies = [json.loads(r.content) for r in sent]
    assert bodies[0]["spec"]["name"] == "etl" and len(bodies[0]["spec"]["components"]) == 4
    assert bodies[1]["spec"] == {"components": [{"id": "a", "function": "m:f"}], "name": "flow"}
    assert bodies[2] == {"workflow": "rayflow.examples.etl:pipeline", "inputs": {}}
    assert bodies[3] == {"workflow": "nightly", "inputs": {}}


def test_a_python_workflow_goes_by_its_import_path():
    from rayflow.examples.etl import pipeline

    sent, client = capture()
    client.submit(pipeline, n=5)
    assert json.loads(sent[0].content) == {"workflow": "rayflow.examples.etl:pipeline", "inputs": {"n": 5}}


def test_a_bad_spec_file_is_a_spec_error_before_any_call(tmp_path):
    sent, client = capture()
    broken = tmp_path / "broken.yaml"
    broken.write_text("components: [\n")
    with pytest.raises(rf.SpecError, match="broken.yaml.*not valid YAML"):
        client.submit(str(broken))
    with pytest.raises(rf.SpecError, match="cannot read spec file"):
        client.submit(str(tmp_path / "missing.yaml"))
    assert sent == []


def test_list_runs_follows_the_cursor_up_to_the_limit():
    pages = {None: (["r5", "r4"], "c1"), "c1": (["r3", "r2"], "c2"), "c2": (["r1"], None)}
    asked = []

    def handler(request):
        cursor = request.url.params.get("cursor")
        asked.append((cursor, request.url.params["limit"], request.url.params.get("status")))
        ids, next_cursor = pages[cursor]
        return httpx.Response(200, json={"runs": [run_json(i) for i in ids], "next_cursor": next_cursor})

    client = mock(handler)
    assert [r["run_id"] for r in client.list_runs(status="SUCCEEDED", limit=3)] == ["r5", "r4", "r3"]
    assert asked == [(None, "3", "SUCCEEDED"), ("c1", "1", "SUCCEEDED")]
    asked.clear()
    assert len(client.list_runs(limit=100)) == 5 and len(asked) == 3


# -- the event stream ------------------------------------------------------------------

def frame(seq: int, kind: str = "component_state", **data) -> bytes:
    event = {"run_id": "r1", "seq": seq, "ts": 1.0, "kind": kind, "component_id": None, "data": data}
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(event)}\n\n".encode()


class Dropped(httpx.SyncByteStream):
    """Sends ``chunks``, then the connection breaks (or ends, with ``drop=False``)."""

    def __init__(self, *chunks: bytes, drop: bool = True) -> None:
        self.chunks, self.drop = chunks, drop

    def __iter__(self):
        yield from self.chunks
        if self.drop:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def test_decoder_follows_the_event_stream_format():
    d = Decoder()
    lines = [": keep-alive", "", "retry: 1500", "id: 7", "event: run_state", "data: {\"a\":", "data:  1}", "",
             "data: again", ""]
    messages = [m for m in map(d.feed, lines) if m is not None]
    assert [(m.id, m.event, m.data) for m in messages] == [("7", "run_state", '{"a":\n 1}'), ("7", "message", "again")]
    assert d.retry_ms == 1500
    d.feed("data: cut off")
    d.reset()                    # a dropped connection loses the half message, keeps the id
    assert d.feed("") is None and d.feed("data: x") is None and d.feed("").id == "7"


def test_events_resume_with_last_event_id_after_a_dropped_stream():
    asked = []

    def handler(request):
        asked.append(request.headers.get("last-event-id"))
        if len(asked) == 1:
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  stream=Dropped(b"retry: 10\n\n", frame(1), frame(2), b"id: 3\ndata: {\"cut"))
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=Dropped(b": keep-alive\n\n", frame(3), frame(4, "run_state", state="SUCCEEDED"),
                                             drop=False))

    events = list(mock(handler).events("r1"))
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert asked == [None, "2"]
    assert events[-1]["data"] == {"state": "SUCCEEDED"}


def test_events_after_a_seq_start_there():
    asked = []

    def handler(request):
        asked.append(request.headers.get("last-event-id"))
        return httpx.Response(200, stream=Dropped(frame(6), drop=False))

    assert [e["seq"] for e in mock(handler).events("r1", after=5)] == [6] and asked == ["5"]


def test_events_of_an_unknown_run_raise_not_found():
    client = mock(lambda request: error(404, "run_not_found", "no run with id 'nope' in the run store", "run_id"))
    with pytest.raises(rf.RunNotFound, match="nope"):
        list(client.events("nope"))


# -- RemoteRun -------------------------------------------------------------------------

def run_server(detail: dict, events: list[bytes] | None = None, calls: list | None = None,
               ended: dict | None = None):
    """A server of one run: ``detail`` answers GETs; ``ended`` updates it once its events
    (``events``; None: the stream route fails) have been asked for."""
    def handler(request):
        if calls is not None:
            calls.append(request.url.path)
        if request.url.path.endswith("/events"):
            if events is None:
                return error(503, "unavailable", "not now")
            detail.update(ended or {})
            return httpx.Response(200, stream=Dropped(*events, drop=False))
        if request.url.path.endswith("/cancel"):
            detail["status"] = "CANCELLED"
            return httpx.Response(202, json=run_json(status="CANCELLED"))
        return httpx.Response(200, json=detail)

    return mock(handler)


def detail(status: str, **extra) -> dict:
    comps = extra.pop("components", {"a": {"state": "SUCCEEDED", "error": None}})
    return run_json(status=status, components=comps, metrics={"wall_s": 1.0, "components": comps}, **extra)


def test_result_of_a_succeeded_run_is_its_result_field():
    client = run_server(detail("SUCCEEDED", result={"rows": 3}))
    handle = client.get_run("r1")
    assert handle.result() == {"rows": 3}
    assert handle.metrics()["wall_s"] == 1.0 and handle.components()["a"]["state"] == "SUCCEEDED"
    assert handle.progress() == {"SUCCEEDED": 1}
    assert "r1" in repr(handle) and "SUCCEEDED" in repr(handle)


def test_result_of_a_failed_run_raises_workflow_failed_with_the_components_errors():
    comps = {"a": {"state": "SUCCEEDED", "error": None}, "b": {"state": "FAILED", "error": "ValueError: boom"},
             "c": {"state": "UPSTREAM_FAILED", "error": None}}
    client = run_server(detail("FAILED", components=comps))
    with pytest.raises(rf.WorkflowFailed) as caught:
        client.get_run("r1").result()
    assert caught.value.errors == {"b": "ValueError: boom"} and caught.value.failed == ["b"]
    assert caught.value.states["c"] == "UPSTREAM_FAILED"


def test_result_of_a_cancelled_run_raises_run_cancelled():
    client = run_server(detail("RUNNING"))
    handle = client.get_run("r1")
    handle.cancel()
    with pytest.raises(rf.RunCancelled, match="r1"):
        handle.result()


def test_wait_follows_the_event_stream_to_the_terminal_event():
    calls: list[str] = []
    client = run_server(detail("RUNNING"), [frame(1, "run_state", state="RUNNING"),
                                            frame(2, "run_state", state="SUCCEEDED")], calls, {"status": "SUCCEEDED"})
    assert client.get_run("r1").wait() == "SUCCEEDED"
    assert calls == ["/v1/runs/r1", "/v1/runs/r1", "/v1/runs/r1/events", "/v1/runs/r1"]


def test_wait_polls_when_there_is_no_event_stream_and_times_out_naming_the_run():
    client = run_server(detail("RUNNING"))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="run r1 still RUNNING after 0.5s"):
        client.get_run("r1").wait(timeout=0.5)
    assert time.monotonic() - started < 3


# -- against a real server -------------------------------------------------------------

SPEC = {"name": "pair", "inputs": {"n": 3},
        "components": [{"id": "a", "function": "tests.fns.basic:source", "config": {"n": {"$input": "n"}}},
                       {"id": "b", "function": "tests.fns.basic:double"}],
        "connections": [{"from": "a", "to": "b"}]}
SLOW = {"name": "slow",   # the local executor lets an in-flight component finish: s2 never starts
        "components": [{"id": "s1", "function": "tests.fns.execute:sleepy", "config": {"seconds": 0.5, "value": 1}},
                       {"id": "s2", "function": "tests.fns.execute:sleepy", "config": {"seconds": 60}}],
        "connections": [{"from": "s1", "to": "s2", "port": "value"}]}
FAILS = {"name": "fails", "components": [{"id": "x", "function": "tests.fns.execute:boom"}]}


def test_a_real_server_runs_specs_to_their_results(live_server):
    from tests.integration.test_cli import expected_etl

    with Client(live_server.url) as client:
        assert client.health()["status"] == "ok"
        pair = client.submit(SPEC, n=4)
        assert pair.result(timeout=30) == 8
        etl = client.submit(str(ETL), n=300)
        assert etl.result(timeout=30) == expected_etl(300)
        assert set(etl.components()) == {"load", "clean_even", "clean_odd", "total"}
        assert etl.metrics()["critical_path"]
        listed = [r["run_id"] for r in client.list_runs(limit=10)]
        assert listed[:2] == [etl.run_id, pair.run_id]
        assert [r["run_id"] for r in client.list_runs(limit=1)] == [etl.run_id]
        events = list(client.events(pair.run_id))
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["kind"] == "run_state" and events[-1]["data"]["state"] == "SUCCEEDED"
        assert "<html" in client.report(pair.run_id).lower()
        assert client.get_run(pair.run_id).status() == "SUCCEEDED"


def test_a_real_server_reports_failures_cancels_and_refusals(live_server):
    with Client(live_server.url) as client:
        with pytest.raises(rf.WorkflowFailed) as failed:
            client.submit(FAILS).result(timeout=30)
        assert "x" in failed.value.errors and "boom" in failed.value.errors["x"]
        slow = client.submit(SLOW)
        slow.cancel()
        with pytest.raises(rf.RunCancelled):
            slow.result(timeout=30)
        with pytest.raises(rf.RunNotFound, match="nope"):
            client.get_run("nope")
        bad = {"components": [{"id": "a", "function": "tests.fns.basic:source"},
                              {"id": "b", "function": "tests.fns.basic:double"}],
               "connections": [{"from": "a", "to": "zzz"}]}
        with pytest.raises(RemoteSpecError) as invalid:
            client.submit(bad)
        assert invalid.value.status == 422 and "zzz" in str(invalid.value)
        first = client.submit(SPEC, idempotency_key="same", n=1)
        assert client.submit(SPEC, idempotency_key="same", n=1).run_id == first.run_id
        with pytest.raises(RemoteConflict):
            client.submit(SPEC, idempotency_key="same", n=2)


def test_a_real_server_takes_workflows_by_name(live_server):
    with Client(live_server.url) as client:
        client.register_workflow("pair", spec=SPEC)
        assert "pair" in [w["name"] for w in client.workflows()]
        assert client.submit("pair", n=5).result(timeout=30) == 10


def test_a_real_server_with_tokens_checks_them(token_server):
    admin, read = token_server.token("admin"), token_server.token("read")
    with pytest.raises(ClientAuthError) as missing:
        Client(token_server.url, "").list_runs()
    assert missing.value.status == 401
    with pytest.raises(ClientAuthError) as short:
        Client(token_server.url, read).submit(SPEC)
    assert short.value.status == 403 and read not in str(short.value)
    handle = Client(token_server.url, admin).submit(SPEC, n=2)
    assert Client(token_server.url, read).get_run(handle.run_id).result(timeout=30) == 4


# -- the package ------------------------------------------------------------------------

def loaded_after(code: str) -> list[str]:
    probe = (f"{code}\nimport sys, json\nprint(json.dumps(sorted(m for m in sys.modules if m == 'ray' or "
             "m.startswith(('ray.', 'pyarrow', 'fastapi', 'rayflow.')))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_rf_client_loads_the_client_alone():
    loaded = loaded_after("import rayflow as rf\nassert rf.Client.__module__ == 'rayflow.client.http'")
    assert not [m for m in loaded if not m.startswith(("rayflow.client", "rayflow.core"))], loaded


def test_the_first_public_name_loads_the_api_and_wires_the_run_host():
    loaded = loaded_after("import rayflow as rf\nrf.component\nfrom rayflow.service import hosting\n"
                          "assert hosting._factory is not None")
    assert "rayflow.api" in loaded and "ray" not in loaded
