"""A real Prometheus scrapes a real server: what it stores is what the server ran.

The server is built in-process (``build``: local executor, SQLite, no auth) and served by
uvicorn on a free loopback port in a thread (``tests.support.server.start_server``). It runs a known set of runs (3 that succeed,
2 that fail); Debian's ``prometheus`` (its own process, its own config with a 1 s scrape
of the server's port, a temporary TSDB) scrapes ``/metrics``, and PromQL over its HTTP API
must give back those counts. Without ``/usr/bin/prometheus`` (``apt-get install -y
prometheus``) the test skips with a one-line reason, or fails where
``RAYFLOW_REQUIRE_SERVICES=1``. Prometheus is stopped at the end, even on failure.

The same Prometheus also evaluates every query of the Grafana dashboard
(``cluster/grafana/rayflow.json``), and ``promtool`` checks the example scrape config
(``cluster/prometheus.yml``): the shipped monitoring must parse and name metrics the server has.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import REPO, free_port, unavailable, wait_until
from tests.support.server import LiveServer, start_server

pytestmark = pytest.mark.slow

OK = {"name": "prom_ok", "components": [{"id": "a", "function": "tests.fns.basic:source", "config": {"n": 3}},
                                        {"id": "b", "function": "tests.fns.basic:double"}],
      "connections": [{"from": "a", "to": "b"}]}
FAILS = {"name": "prom_fail", "components": [{"id": "a", "function": "tests.fns.basic:source"},
                                             {"id": "x", "function": "tests.fns.execute:boom"}],
         "connections": [{"from": "a", "to": "x"}]}
N_OK, N_FAIL = 3, 2
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
PROMETHEUS = "/usr/bin/prometheus"
DASHBOARD = REPO / "cluster" / "grafana" / "rayflow.json"
SCRAPE_CONFIG = REPO / "cluster" / "prometheus.yml"


def prometheus_binary() -> str:
    found = PROMETHEUS if Path(PROMETHEUS).exists() else shutil.which("prometheus")
    if not found:
        unavailable("Prometheus is not installed (/usr/bin/prometheus; `apt-get install -y prometheus`)")
    return found


class PrometheusProc:
    """Prometheus scraping ``target`` (host:port) every second, on its own loopback port."""

    def __init__(self, binary: str, folder: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: rayflow\n"
            "    scrape_interval: 1s\n"
            "    scrape_timeout: 1s\n"
            "    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        self.log = folder / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited ({self.proc.returncode}):\n{self.tail()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{promql}: {body}"
        return body["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        """The value of a one-series result; None when the result is empty."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def target_up(self) -> bool:
        return self.scalar('up{job="rayflow"}') == 1.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def served(tmp_path) -> Iterator[LiveServer]:
    server = start_server(f"sqlite:///{tmp_path / 'rf.db'}", auth="none", executor="local")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus(tmp_path, served) -> Iterator[PrometheusProc]:
    binary = prometheus_binary()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    prom = PrometheusProc(binary, folder, served.url.removeprefix("http://"))
    try:
        wait_until(prom.ready, timeout=60, poll_s=0.2, what="prometheus to be ready")
        yield prom
    finally:
        prom.stop()


def run_all(url: str) -> dict[str, dict]:
    """Submit the known runs, wait for every one to end; {run_id: the run as GET shows it}."""
    with httpx.Client(base_url=url, timeout=10) as c:
        ids = []
        for spec in [OK] * N_OK + [FAILS] * N_FAIL:
            r = c.post("/v1/runs", json={"spec": spec})
            assert r.status_code == 201, r.text
            ids.append(r.json()["run_id"])

        def final() -> dict[str, dict] | None:
            runs = {i: c.get(f"/v1/runs/{i}").json() for i in ids}
            return runs if all(r["status"] in TERMINAL for r in runs.values()) else None

        return wait_until(final, timeout=60, poll_s=0.1, what="the runs to end")


def test_prometheus_scrapes_what_the_server_ran(served, prometheus):
    try:
        wait_until(prometheus.target_up, timeout=30, poll_s=0.25, what="the server's target to be up")
        runs = run_all(served.url)
        statuses = sorted(r["status"] for r in runs.values())
        assert statuses == ["FAILED"] * N_FAIL + ["SUCCEEDED"] * N_OK
        n_components = sum(len(r["components"]) for r in runs.values())
        assert n_components == N_OK * len(OK["components"]) + N_FAIL * len(FAILS["components"])
        by_state: dict[str, int] = {}
        for r in runs.values():
            for c in r["components"].values():
                by_state[c["state"]] = by_state.get(c["state"], 0) + 1

        expected = {
            'sum(rayflow_runs_finished_total{state="SUCCEEDED"})': N_OK,
            'sum(rayflow_runs_finished_total{state="FAILED"})': N_FAIL,
            'sum(rayflow_runs_finished_total{workflow="prom_ok"})': N_OK,
            'sum(rayflow_runs_finished_total{workflow="prom_fail",state="FAILED"})': N_FAIL,
            "sum(rayflow_components_finished_total)": n_components,
            "sum(rayflow_run_duration_seconds_count)": N_OK + N_FAIL,
            **{f'sum(rayflow_components_finished_total{{state="{s}"}})': n for s, n in by_state.items()},
        }

        def scraped() -> bool:
            return all(prometheus.scalar(q) == v for q, v in expected.items())

        deadline = time.monotonic() + 30
        while not scraped():
            if time.monotonic() > deadline:
                got = {q: prometheus.scalar(q) for q in expected}
                raise AssertionError(f"Prometheus holds {got}, expected {expected}")
            time.sleep(0.5)

        # the HTTP metrics are labelled by route template, never a raw path with a run id
        routes = {s["metric"].get("route") for s in prometheus.query("rayflow_http_requests_total")}
        assert "/v1/runs/{run_id}" in routes and "/v1/runs" in routes
        assert not any(run_id in (route or "") for route in routes for run_id in runs)
        assert prometheus.scalar('sum(rayflow_http_requests_total{route="/v1/runs",method="POST",'
                                 'status="201"})') == N_OK + N_FAIL
        # the buckets make a histogram PromQL can read (over the counts so far: no rate window to fill)
        p95 = prometheus.scalar("histogram_quantile(0.95, sum by (le) (rayflow_run_duration_seconds_bucket))")
        assert p95 is not None and 0 < p95 <= 60, p95
        assert prometheus.query("rayflow_runs_in_flight") and prometheus.query("rayflow_event_loop_lag_seconds")
    except BaseException:
        print(f"prometheus log:\n{prometheus.tail()}")
        raise


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel of the dashboard, Grafana's variables filled in."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = (target["expr"].replace("$__rate_interval", "1m").replace("$__interval", "15s")
                    .replace("$instance", ".*").replace("$workflow", ".*"))
            found.append((panel["title"], expr))
    return found


def test_the_dashboard_queries_run_and_name_metrics_the_server_has(served, prometheus):
    wait_until(prometheus.target_up, timeout=30, poll_s=0.25, what="the server's target to be up")
    run_all(served.url)
    exposed = httpx.get(f"{served.url}/metrics", timeout=10).text
    families = set(re.findall(r"^# TYPE (\S+) ", exposed, re.M))
    queries = dashboard_queries()
    assert len(queries) >= 15
    named = set()
    for title, expr in queries:
        assert "$" not in expr, f"{title}: a Grafana variable left unfilled in {expr}"
        prometheus.query(expr)                       # parses and evaluates (raises with Prometheus' error)
        named |= set(re.findall(r"\b(rayflow_[a-z_]+)", expr))
    for metric in sorted(named):
        family = re.sub(r"_(bucket|count|sum|total)$", "", metric)
        assert metric in families or family in families, f"the dashboard reads {metric}; the server has no such metric"
    for needed in ("rayflow_runs_finished_total", "rayflow_run_duration_seconds_bucket",
                   "rayflow_component_queue_wait_seconds_bucket", "rayflow_http_requests_total",
                   "rayflow_http_request_duration_seconds_bucket", "rayflow_cache_requests_total",
                   "rayflow_store_pool_connections", "rayflow_event_loop_lag_seconds", "rayflow_runs_in_flight"):
        assert needed in named, f"the dashboard shows no panel over {needed}"
    wait_until(lambda: prometheus.query('sum by (state) (rayflow_runs_finished_total{workflow=~".*"})'),
               timeout=30, poll_s=0.5, what="the runs' counters to be scraped")


def test_the_example_scrape_config_passes_promtool(tmp_path):
    binary = prometheus_binary()
    promtool = Path(binary).with_name("promtool")
    if not promtool.exists():
        unavailable(f"promtool is not installed beside {binary} (Debian's prometheus package has it)")
    token_file = tmp_path / "rayflow-token"
    token_file.write_text("rf_example\n")
    config = tmp_path / "prometheus.yml"
    config.write_text(SCRAPE_CONFIG.read_text().replace("/etc/prometheus/rayflow-token", str(token_file)))
    done = subprocess.run([str(promtool), "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
