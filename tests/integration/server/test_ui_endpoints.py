"""What the web UI reads beyond API.md's routes, end to end through the real control plane
(``build``: local executor, SQLite) and FastAPI's TestClient: the page and its assets,
``/v1/whoami``, ``/v1/counts``, ``/v1/cluster``, the runs list's time filters, and the
component fields the Gantt chart and the DAG draw from."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from rayflow.server.http.routes.ui import ASSETS
from tests.integration.server.test_http_api import FAILS, SPEC, make_server, submit, wait_final


@pytest.fixture
def client(tmp_path):
    server = make_server(tmp_path)
    with TestClient(server.app) as c:
        yield c
    server.stop()


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/ui/app.js"' in page.text and 'href="/ui/app.css"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    for name in ("app.js", "common.js", "run.js", "charts.js"):
        r = client.get(f"/ui/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), name
        assert r.content == ASSETS[name]
    assert client.get("/ui/app.css").headers["content-type"].startswith("text/css")
    assert client.get("/ui/nope.js").status_code == 404
    assert client.get("/ui/..%2Fapp.py").status_code == 404
    assert "/" not in client.get("/openapi.json").json()["paths"]      # the UI is not part of the API


def test_whoami_counts_and_time_filters(client):
    assert client.get("/v1/whoami").json() == {"id": "anonymous", "scope": "admin", "auth": "none"}
    assert client.get("/v1/counts").json() == {"runs": {}, "total": 0}
    ok = submit(client)
    wait_final(client, ok)
    between = time.time()
    time.sleep(0.05)
    bad = submit(client, FAILS)
    wait_final(client, bad)
    assert client.get("/v1/counts").json() == {"runs": {"SUCCEEDED": 1, "FAILED": 1}, "total": 2}
    assert client.get("/v1/counts", params={"workflow": "fails"}).json()["runs"] == {"FAILED": 1}
    assert client.get("/v1/counts", params={"since": between}).json()["runs"] == {"FAILED": 1}
    ids = lambda **q: [r["run_id"] for r in client.get("/v1/runs", params=q).json()["runs"]]  # noqa: E731
    assert ids(since=between) == [bad]
    assert ids(until=between) == [ok]
    assert ids(since=between, until=between) == []
    first = client.get("/v1/runs", params={"limit": 1}).json()
    assert ids(limit=1, cursor=first["next_cursor"], until=time.time() + 60) == [ok]   # a cursor and until


def test_components_carry_what_the_gantt_and_the_dag_draw(client):
    run = wait_final(client, submit(client))
    a, b = run["components"]["a"], run["components"]["b"]
    assert b["upstream"] == ["a"] and a["upstream"] == []
    for c in (a, b):
        assert c["submitted_at"] <= c["started_at"] <= c["ended_at"]
        assert c["cached"] is False and c["worker_id"]
    assert run["metrics"]["critical_path"] == ["a", "b"]


def test_cluster_shows_servers_leases_store_and_cache(tmp_path):
    server = make_server(tmp_path)
    try:
        with TestClient(server.app) as client:
            view = client.get("/v1/cluster").json()
            assert all(view[part]["ok"] for part in ("servers", "ray", "store", "cache")), view
            (me,) = view["servers"]["servers"]
            assert me["server_id"] == server.runner.server_id and me["this"] and me["leases"] == []
            assert view["ray"] == {"ok": True, "executor": "local", "connected": False, "nodes": [], "total": {},
                                   "available": {}, "dashboard_url": None}
            assert view["store"]["kind"] == "SqliteStore" and view["store"]["latency_ms"] >= 0
            assert set(view["cache"]) >= {"hits", "misses", "tiers"}
    finally:
        server.stop()


def test_a_read_token_reads_the_ui_endpoints_and_the_page_needs_none(tmp_path):
    from rayflow.server import tokens

    server = make_server(tmp_path, auth="token")
    try:
        with TestClient(server.app) as client:
            read = tokens.create(server.service.store, "read", "ui")[0]
            assert client.get("/").status_code == 200                       # the page holds no data
            assert client.get("/v1/whoami").status_code == 401
            headers = {"Authorization": f"Bearer {read}"}
            who = client.get("/v1/whoami", headers=headers).json()
            assert who["scope"] == "read" and who["auth"] == "token" and who["id"] != "anonymous"
            assert client.get("/v1/counts", headers=headers).status_code == 200
            assert client.get("/v1/cluster", headers=headers).status_code == 200
            run = client.post("/v1/runs", json={"spec": SPEC}, headers=headers)
            assert run.status_code == 403
    finally:
        server.stop()


def test_a_remote_runs_notebook_view_links_its_page_on_the_server(tmp_path):
    import rayflow as rf
    from tests.support.server import start_server

    live = start_server(f"sqlite:///{tmp_path / 'server.db'}")
    try:
        client = rf.Client(live.url)
        h = client.submit(SPEC)
        h.wait(timeout=60)
        assert h.page_url == f"{live.url}/#/run/{h.run_id}"
        html = h._repr_html_()
        assert f'href="{h.page_url}"' in html and h.run_id in html
    finally:
        live.stop()


def test_a_summary_answer_leaves_the_components_out_of_the_metrics_only(client):
    run_id = submit(client)
    full = wait_final(client, run_id)
    summary = client.get(f"/v1/runs/{run_id}", params={"metrics": "summary"}).json()
    assert set(full["metrics"]["components"]) == {"a", "b"} and "components" not in summary["metrics"]
    assert summary["components"] == full["components"]
    assert {k: v for k, v in full["metrics"].items() if k not in ("components", "wall_s", "throughput_cps")} == {
        k: v for k, v in summary["metrics"].items() if k not in ("wall_s", "throughput_cps")}
    again = client.get(f"/v1/runs/{run_id}").json()          # each variant is cached on its own
    assert "components" in again["metrics"]
    assert client.get(f"/v1/runs/{run_id}", params={"metrics": "nope"}).status_code == 422
