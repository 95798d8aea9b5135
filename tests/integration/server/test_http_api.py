"""The HTTP API end to end: the real control plane (``build``, local executor, SQLite) behind
FastAPI's TestClient. Each status code of API.md "Server" is produced through the API."""

from __future__ import annotations

import json
import logging
import time

import anyio
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from rayflow.server import tokens
from rayflow.server.http.limits import Limits
from rayflow.server.http.sse import EventStream
from rayflow.server.main import build
from rayflow.store.port import EventRecord

SPEC = {"name": "t", "components": [{"id": "a", "function": "tests.fns.basic:source", "config": {"n": 3}},
                                    {"id": "b", "function": "tests.fns.basic:double"}],
        "connections": [{"from": "a", "to": "b"}]}
SLOW = {"name": "slow", "components": [{"id": "s", "function": "tests.fns.execute:sleepy",
                                        "config": {"seconds": 0.6, "value": 1}}]}
FAILS = {"name": "fails", "components": [{"id": "x", "function": "tests.fns.execute:boom"}]}
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def make_server(tmp_path, *, auth: str = "none", limits: Limits | None = None):
    server = build(f"sqlite:///{tmp_path / 'rf.db'}", executor="local", auth=auth, limits=limits)
    server.start()
    return server


@pytest.fixture
def server(tmp_path):
    server = make_server(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def client(server):
    with TestClient(server.app) as c:
        yield c


def submit(client, spec=SPEC, **body):
    r = client.post("/v1/runs", json={"spec": spec, **body})
    assert r.status_code == 201, r.text
    return r.json()["run_id"]


def wait_final(client, run_id, timeout=20.0, headers=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/v1/runs/{run_id}", headers=headers).json()
        if run["status"] in TERMINAL:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    err = response.json()["error"]
    assert set(err) == {"code", "message", "field"} and err["message"]
    return err


def sse(text: str) -> list[dict]:
    """The events of an SSE body (comments dropped), each {"id", "event", "data"}."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            out.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return out


# -- runs ---------------------------------------------------------------------------------


def test_submit_then_get_shows_components_metrics_and_result(client):
    run_id = submit(client, inputs={})
    run = wait_final(client, run_id)
    assert run["status"] == "SUCCEEDED" and run["result"] == 6 and run["name"] == "t"
    assert set(run["components"]) == {"a", "b"}
    a = run["components"]["a"]
    assert set(a) == {"state", "attempts", "queued_s", "started_at", "ended_at", "duration_s", "node_id", "error",
                      "traceback", "submitted_at", "upstream", "cached", "worker_id"}
    assert a["state"] == "SUCCEEDED" and a["attempts"] == 1
    assert run["metrics"]["critical_path"] == ["a", "b"]
    for key in ("created_at", "started_at", "ended_at", "target", "inputs", "n_components", "owner"):
        assert key in run


def test_idempotency_key_replays_200_and_refuses_another_body_409(client):
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/v1/runs", json={"spec": SPEC}, headers=headers)
    assert first.status_code == 201
    again = client.post("/v1/runs", json={"spec": SPEC}, headers=headers)
    assert again.status_code == 200 and again.json()["run_id"] == first.json()["run_id"]
    other = client.post("/v1/runs", json={"spec": {**SPEC, "name": "t2"}}, headers=headers)
    assert error_of(other, 409)["code"] == "conflict"
    fresh = client.post("/v1/runs", json={"spec": SPEC}, headers={"Idempotency-Key": "k-2"})
    assert fresh.status_code == 201 and fresh.json()["run_id"] != first.json()["run_id"]


def test_a_known_run_id_is_answered_200_with_that_run(client):
    submit(client, run_id="mine-1")
    again = client.post("/v1/runs", json={"spec": SPEC, "run_id": "mine-1"})
    assert again.status_code == 200 and again.json()["run_id"] == "mine-1"


@pytest.mark.parametrize("body, field", [({"inputs": {}}, "body.spec"),
                                         ({"spec": SPEC, "workflow": "t"}, "body.workflow"),
                                         ({"spec": SPEC, "inputs": [1, 2]}, "body.inputs"),
                                         ({"spec": SPEC, "extra": 1}, "body.extra")])
def test_submit_shape_errors_are_422_naming_the_field(client, body, field):
    assert error_of(client.post("/v1/runs", json=body), 422)["field"] == field


def test_an_invalid_spec_is_422_naming_the_spec(client):
    bad = {"name": "t", "components": [{"id": "a", "function": "tests.fns.basic:no_such_fn"}]}
    err = error_of(client.post("/v1/runs", json={"spec": bad}), 422)
    assert err["code"] == "invalid_spec" and err["field"].startswith("spec")
    cycle = {"name": "c", "components": [{"id": "a", "function": "tests.fns.basic:double"},
                                         {"id": "b", "function": "tests.fns.basic:double"}],
             "connections": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]}
    err = error_of(client.post("/v1/runs", json={"spec": cycle}), 422)
    assert err["field"] in ("spec.components.a", "spec.components.b")


def test_malformed_json_is_400(client):
    r = client.post("/v1/runs", content=b'{"spec": ', headers={"content-type": "application/json"})
    err = error_of(r, 400)
    assert err["code"] == "malformed_json" and err["field"] == "body"


def test_unknown_run_and_unknown_route_are_404_json(client):
    err = error_of(client.get("/v1/runs/nope"), 404)
    assert err["code"] == "run_not_found" and err["field"] == "run_id"
    for path in ("/v1/runs/nope/cancel", "/v1/runs/nope/resume", "/v1/runs/nope/retry"):
        assert error_of(client.post(path), 404)["code"] == "run_not_found"
    assert error_of(client.get("/v1/runs/nope/report"), 404)["code"] == "run_not_found"
    assert error_of(client.get("/v1/nothing/here"), 404)["code"] == "not_found"
    assert error_of(client.delete("/v1/runs"), 405)["code"] == "method_not_allowed"


def test_cursor_pagination_walks_every_run_once_newest_first(client):
    made = [submit(client) for _ in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/runs", params=params).json()
        seen += [r["run_id"] for r in page["runs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == sorted(made) and len(set(seen)) == 7
    assert seen == made[::-1]


def test_list_filters_and_bad_query_values(client):
    run_id = submit(client)
    wait_final(client, run_id)
    submit(client, spec={**SPEC, "name": "other"})
    names = {r["name"] for r in client.get("/v1/runs", params={"workflow": "other"}).json()["runs"]}
    assert names == {"other"}
    done = client.get("/v1/runs", params={"status": "SUCCEEDED"}).json()["runs"]
    assert run_id in {r["run_id"] for r in done} and all(r["status"] == "SUCCEEDED" for r in done)
    assert error_of(client.get("/v1/runs", params={"status": "DONE"}), 422)["field"] == "query.status"
    assert error_of(client.get("/v1/runs", params={"limit": 0}), 422)["field"] == "query.limit"
    assert error_of(client.get("/v1/runs", params={"limit": 1001}), 422)["field"] == "query.limit"
    err = error_of(client.get("/v1/runs", params={"cursor": "not-a-cursor"}), 400)
    assert err["code"] == "bad_cursor" and err["field"] == "query.cursor"


def test_cancel_resume_retry_are_202_or_409(client):
    ok = submit(client)
    wait_final(client, ok)
    assert client.post(f"/v1/runs/{ok}/cancel").status_code == 202          # final: returned as it is
    assert error_of(client.post(f"/v1/runs/{ok}/retry"), 409)["field"] == "run_id"
    assert error_of(client.post(f"/v1/runs/{ok}/resume"), 409)["code"] == "conflict"
    failed = submit(client, spec=FAILS)
    assert wait_final(client, failed)["status"] == "FAILED"
    r = client.post(f"/v1/runs/{failed}/retry")
    assert r.status_code == 202 and r.json()["run_id"] == failed
    assert wait_final(client, failed)["status"] == "FAILED"
    slow = submit(client, spec=SLOW)
    r = client.post(f"/v1/runs/{slow}/cancel")
    assert r.status_code == 202 and (r.json()["cancel_requested"] or r.json()["status"] == "CANCELLED")
    assert wait_final(client, slow)["status"] in ("CANCELLED", "SUCCEEDED")   # local: a running call finishes


# -- events -------------------------------------------------------------------------------


def test_events_of_a_finished_run_arrive_in_order_gap_free_and_the_stream_ends(client):
    run_id = submit(client)
    wait_final(client, run_id)
    r = client.get(f"/v1/runs/{run_id}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1)) and len(events) >= 2
    assert all(e["data"]["seq"] == e["id"] and e["data"]["kind"] == e["event"] for e in events)
    last = events[-1]
    assert last["event"] == "run_state" and last["data"]["data"]["state"] == "SUCCEEDED"
    resumed = sse(client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "1"}).text)
    assert [e["id"] for e in resumed] == [e["id"] for e in events[1:]]
    after = sse(client.get(f"/v1/runs/{run_id}/events", params={"after": 1}).text)
    assert after == resumed


def test_events_stream_a_live_run_until_its_terminal_event(client):
    run_id = submit(client, spec=SLOW)
    started = time.monotonic()
    with client.stream("GET", f"/v1/runs/{run_id}/events") as r:
        events = sse("".join(r.iter_text()))
    assert time.monotonic() - started < 15
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"]["data"]["state"] == "SUCCEEDED"
    assert client.get(f"/v1/runs/{run_id}").json()["status"] == "SUCCEEDED"


def test_events_of_an_unknown_run_are_404_before_streaming(client):
    assert error_of(client.get("/v1/runs/nope/events"), 404)["code"] == "run_not_found"
    assert error_of(client.get("/v1/runs/nope/events", headers={"Last-Event-ID": "x"}), 422)["field"] \
        == "header.Last-Event-ID"


class _Events:
    """A stand-in event source for the stream's own rules (gaps, keep-alive, a retried run)."""

    def __init__(self, events: list[EventRecord], final: bool = True) -> None:
        self.events, self.final, self.calls = events, final, 0

    def events_after(self, run_id: str, after_seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        self.calls += 1
        return [e for e in self.events if e.seq > after_seq][:limit]

    def is_final(self, run_id: str) -> bool:
        return self.final


def _stream(source: _Events, after: int = 0, until: float = 5.0, **kw) -> list[str]:
    plane = type("P", (), {"events": staticmethod(source.events_after), "is_final": staticmethod(source.is_final)})
    out: list[str] = []

    async def main() -> None:
        with anyio.move_on_after(until):
            async for chunk in EventStream(plane, "r", after, poll_s=0.01, **kw):
                out.append(chunk)

    anyio.run(main)
    return out


def _ev(seq: int, kind: str = "component_state", **data) -> EventRecord:
    return EventRecord("r", seq, float(seq), kind, None, data)


def test_the_stream_waits_out_a_gap_instead_of_skipping():
    source = _Events([_ev(1), _ev(3), _ev(4, "run_state", state="SUCCEEDED")])
    chunks = _stream(source, until=0.3)
    assert [e["id"] for e in sse("".join(chunks))] == [1]          # 3 and 4 wait for 2
    source.events.insert(1, _ev(2))
    assert [e["id"] for e in sse("".join(_stream(source)))] == [1, 2, 3, 4]


def test_the_stream_sends_keep_alives_and_follows_a_retried_run():
    source = _Events([_ev(1, "run_state", state="FAILED"), _ev(2, "run_state", state="RUNNING")], final=False)
    chunks = _stream(source, until=0.3, keep_alive_s=0.05)
    assert ": keep-alive\n\n" in chunks                             # idle, not final: alive
    source.events.append(_ev(3, "run_state", state="SUCCEEDED"))
    source.final = True
    assert [e["id"] for e in sse("".join(_stream(source)))] == [1, 2, 3]   # did not stop at FAILED


# -- logs, report, workflows, system --------------------------------------------------------


CHATTY = {"name": "chatty", "components": [{"id": "talk", "function": "tests.fns.logs:chatty", "config": {"x": 3}},
                                          {"id": "fails", "function": "tests.fns.logs:fails_loudly"}],
          "connections": [{"from": "talk", "to": "fails"}]}


def test_an_attempts_log_is_text_and_the_report_is_html(client):
    from tests.fns.logs import LINES

    run_id = submit(client, spec=CHATTY)
    run = wait_final(client, run_id)
    assert run["status"] == "FAILED"
    r = client.get(f"/v1/runs/{run_id}/components/talk/logs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert lines[:10] == LINES and lines[10].endswith("WARNING tests.chatty: careful with 3") and len(lines) == 11
    assert client.get(f"/v1/runs/{run_id}/components/talk/logs", params={"attempt": 1}).text == r.text
    assert client.get(f"/v1/runs/{run_id}/components/fails/logs").text == "about to look up 'b'\n"
    detail = client.get(f"/v1/runs/{run_id}").json()["components"]["fails"]
    assert detail["error"] == "KeyError: 'b'" and "return d[key]" in detail["traceback"]
    err = error_of(client.get(f"/v1/runs/{run_id}/components/nope/logs"), 404)
    assert err["code"] == "component_not_found" and "'nope'" in err["message"] and err["field"] == "component_id"
    err = error_of(client.get(f"/v1/runs/{run_id}/components/talk/logs", params={"attempt": 2}), 404)
    assert "no attempt 2" in err["message"]
    error_of(client.get("/v1/runs/no-such-run/components/talk/logs"), 404)
    r = client.get(f"/v1/runs/{run_id}/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and "<html" in r.text


def test_workflows_register_list_and_submit_by_name(client):
    r = client.post("/v1/workflows", json={"name": "doubler", "spec": SPEC})
    assert r.status_code == 201 and r.json()["name"] == "doubler"
    r = client.post("/v1/workflows", json={"name": "etl", "target": "rayflow.examples.etl:pipeline"})
    assert r.status_code == 201 and r.json()["target"] == "rayflow.examples.etl:pipeline"
    assert "doubler" in {w["name"] for w in client.get("/v1/workflows").json()["workflows"]}
    r = client.post("/v1/runs", json={"workflow": "doubler"})
    assert r.status_code == 201
    assert wait_final(client, r.json()["run_id"])["result"] == 6
    assert error_of(client.post("/v1/workflows", json={"name": "x"}), 422)["field"] == "body.spec"
    assert error_of(client.post("/v1/workflows", json={"name": "x", "target": "nomodule"}), 422)["code"] \
        == "invalid_spec"
    assert error_of(client.post("/v1/runs", json={"workflow": "never-registered"}), 422)["code"] == "invalid_spec"


def test_health_ready_and_metrics(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"store": True, "ray": True, "accepting": True}
    run_id = submit(client)
    wait_final(client, run_id)
    deadline = time.monotonic() + 5
    while True:
        r = client.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        found = {(s.name, tuple(sorted(s.labels.items()))): s.value
                 for fam in text_string_to_metric_families(r.text) for s in fam.samples}
        key = ("rayflow_runs_finished_total", (("state", "SUCCEEDED"), ("workflow", "t")))
        if key in found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert found[key] == 1
    assert found[("rayflow_components_finished_total", (("state", "SUCCEEDED"), ("workflow", "t")))] == 2
    assert ("rayflow_runs_in_flight", ()) in found and ("rayflow_runs_queued", ()) in found
    routes = {dict(labels)["route"] for name, labels in found if name == "rayflow_http_requests_total"}
    assert "/v1/runs/{run_id}" in routes and not any(run_id in route for route in routes)


def test_a_stopping_server_is_503_for_new_runs_and_not_ready(client, server):
    server.plane.accepting = False
    r = client.post("/v1/runs", json={"spec": SPEC})
    assert error_of(r, 503)["code"] == "unavailable" and r.headers["Retry-After"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["accepting"] is False


def test_unexpected_errors_are_500_json_and_never_log_the_token(tmp_path, caplog):
    server = make_server(tmp_path, auth="token")
    token, _ = tokens.create(server.plane.store, "read")

    def broken(run_id):
        raise RuntimeError("disk on fire")

    server.plane.report_html = broken
    try:
        with TestClient(server.app, raise_server_exceptions=False) as c, caplog.at_level(logging.ERROR):
            r = c.get("/v1/runs/x/report", headers={"Authorization": f"Bearer {token}"})
            err = error_of(r, 500)
            assert err["code"] == "internal" and "fire" not in err["message"]
    finally:
        server.stop()
    assert "disk on fire" in caplog.text and token not in caplog.text


# -- limits -------------------------------------------------------------------------------


def test_bodies_over_the_limit_are_413_by_length_and_by_stream(tmp_path):
    server = make_server(tmp_path, limits=Limits(max_body_bytes=2_000, max_spec_components=2))
    try:
        with TestClient(server.app) as c:
            big = {"spec": SPEC, "inputs": {"pad": "x" * 3_000}}
            err = error_of(c.post("/v1/runs", json=big), 413)
            assert err["code"] == "body_too_large"

            def chunks():
                for _ in range(10):
                    yield b"x" * 500

            r = c.post("/v1/runs", content=chunks(), headers={"content-type": "application/json"})
            assert error_of(r, 413)["code"] == "body_too_large"
            many = {"name": "many", "components": [{"id": f"c{i}", "function": "tests.fns.basic:source"}
                                                   for i in range(3)]}
            err = error_of(c.post("/v1/runs", json={"spec": many}), 413)
            assert err["code"] == "spec_too_large" and err["field"] == "body.spec.components"
            assert c.post("/v1/runs", json={"spec": SPEC}).status_code == 201
    finally:
        server.stop()


def test_callers_over_their_rate_get_429_with_retry_after(tmp_path):
    server = make_server(tmp_path, limits=Limits(rate_per_s=1.0, burst=3))
    try:
        with TestClient(server.app) as c:
            codes = [c.get("/v1/runs").status_code for _ in range(5)]
            assert codes[:3] == [200, 200, 200] and codes[-1] == 429
            r = c.get("/v1/runs")
            assert error_of(r, 429)["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
            assert c.get("/healthz").status_code == 200                         # probes are exempt
    finally:
        server.stop()


# -- auth ---------------------------------------------------------------------------------


@pytest.fixture
def token_server(tmp_path):
    server = make_server(tmp_path, auth="token")
    made = {scope: tokens.create(server.plane.store, scope)[0] for scope in tokens.SCOPES}
    with TestClient(server.app) as c:
        yield server, c, {scope: {"Authorization": f"Bearer {t}"} for scope, t in made.items()}
    server.stop()


def test_without_a_valid_token_calls_are_401_but_healthz_answers(token_server):
    _, c, _ = token_server
    for r in (c.get("/v1/runs"), c.get("/metrics"), c.get("/openapi.json"), c.post("/v1/runs", json={}),
              c.get("/v1/runs", headers={"Authorization": "Bearer rf_not-a-token"}),
              c.get("/v1/runs", headers={"Authorization": "Basic abc"})):
        err = error_of(r, 401)
        assert err["code"] in ("missing_token", "invalid_token")
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert "rf_not-a-token" not in err["message"]
    assert c.get("/healthz").status_code == 200


def test_each_scope_allows_its_calls_and_refuses_the_others_403(token_server):
    _, c, h = token_server
    assert c.get("/v1/runs", headers=h["read"]).status_code == 200
    assert c.get("/metrics", headers=h["read"]).status_code == 200
    assert c.get("/openapi.json", headers=h["read"]).json()["openapi"].startswith("3.")
    err = error_of(c.post("/v1/runs", json={"spec": SPEC}, headers=h["read"]), 403)
    assert err["code"] == "forbidden" and "submit" in err["message"]
    r = c.post("/v1/runs", json={"spec": SPEC}, headers=h["submit"])
    assert r.status_code == 201
    run_id = r.json()["run_id"]
    assert error_of(c.post(f"/v1/runs/{run_id}/cancel", headers=h["read"]), 403)["code"] == "forbidden"
    assert error_of(c.post("/v1/workflows", json={"name": "w", "spec": SPEC}, headers=h["submit"]), 403)
    assert c.post("/v1/workflows", json={"name": "w", "spec": SPEC}, headers=h["admin"]).status_code == 201
    assert c.get("/v1/workflows", headers=h["read"]).status_code == 200
    assert wait_final(c, run_id, headers=h["read"])["status"] == "SUCCEEDED"


def test_idempotency_keys_are_scoped_by_token(token_server):
    server, c, h = token_server
    other = {"Authorization": f"Bearer {tokens.create(server.plane.store, 'submit')[0]}"}
    key = {"Idempotency-Key": "same"}
    a = c.post("/v1/runs", json={"spec": SPEC}, headers={**h["submit"], **key})
    b = c.post("/v1/runs", json={"spec": SPEC}, headers={**other, **key})
    assert a.status_code == b.status_code == 201 and a.json()["run_id"] != b.json()["run_id"]


def test_a_revoked_token_stops_working_within_five_seconds(token_server):
    server, c, h = token_server
    assert c.get("/v1/runs", headers=h["read"]).status_code == 200
    record = server.plane.store.get_token(tokens.hash_token(h["read"]["Authorization"].split()[1]))
    server.plane.store.revoke_token(record.token_id, time.time())
    deadline = time.monotonic() + 5.0
    while c.get("/v1/runs", headers=h["read"]).status_code == 200:
        assert time.monotonic() < deadline, "a revoked token still worked after 5 s"
        time.sleep(0.1)
    assert error_of(c.get("/v1/runs", headers=h["read"]), 401)["code"] == "invalid_token"
