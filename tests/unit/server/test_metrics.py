"""ServerMetrics: what observe_run and the callbacks put in the Prometheus text, exactly."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from rayflow.server.http.metrics import ServerMetrics
from rayflow.store.port import ComponentRecord, RunRecord


def samples(metrics: ServerMetrics) -> dict[tuple[str, tuple], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def comp(cid: str, state: str = "SUCCEEDED", *, attempts: int = 1, dur: float | None = 1.0,
         queued: float | None = 0.2, outcome: dict | None = None) -> ComponentRecord:
    return ComponentRecord("r1", cid, state=state, attempts=attempts, duration_s=dur, queued_s=queued,
                           outcome=outcome or {})


def run(status: str = "SUCCEEDED", name: str = "etl") -> RunRecord:
    return RunRecord("r1", name, status=status, created_at=90.0, started_at=100.0, ended_at=112.5)


def test_observe_run_counts_runs_components_retries_and_durations():
    m = ServerMetrics()
    comps = [comp("a"), comp("b", attempts=3, dur=4.0, queued=2.0), comp("c", "FAILED", dur=0.5, queued=None),
             comp("d", "UPSTREAM_FAILED", attempts=0, dur=None, queued=None),
             comp("e", outcome={"oom_reruns": 2})]
    m.observe_run(run("FAILED"), comps)
    m.observe_run(run("SUCCEEDED"), [comp("a")])
    s = samples(m)
    wf = ("workflow", "etl")
    assert s[("rayflow_runs_finished_total", (("state", "FAILED"), wf))] == 1
    assert s[("rayflow_runs_finished_total", (("state", "SUCCEEDED"), wf))] == 1
    assert s[("rayflow_components_finished_total", (("state", "SUCCEEDED"), wf))] == 4
    assert s[("rayflow_components_finished_total", (("state", "FAILED"), wf))] == 1
    assert s[("rayflow_components_finished_total", (("state", "UPSTREAM_FAILED"), wf))] == 1
    assert s[("rayflow_component_retries_total", (wf,))] == 2
    assert s[("rayflow_oom_reruns_total", (wf,))] == 2
    assert s[("rayflow_run_duration_seconds_count", (wf,))] == 2
    assert s[("rayflow_run_duration_seconds_sum", (wf,))] == 25.0
    assert s[("rayflow_component_duration_seconds_count", (wf,))] == 5      # d has no duration
    assert s[("rayflow_component_duration_seconds_sum", (wf,))] == 1.0 + 4.0 + 0.5 + 1.0 + 1.0
    assert s[("rayflow_component_queue_wait_seconds_count", (wf,))] == 4    # c and d never queued
    assert s[("rayflow_component_queue_wait_seconds_bucket", (("le", "1.0"), wf))] == 3


def test_cache_counts_by_tier_and_result():
    m = ServerMetrics()
    m.observe_run(run(), [], cache={"memory": {"hits": 3, "misses": 1}, "redis": {"hits": 0, "misses": 4}})
    m.observe_run(run(), [], cache={"memory": {"hits": 2}})
    s = samples(m)
    assert s[("rayflow_cache_requests_total", (("result", "hit"), ("tier", "memory")))] == 5
    assert s[("rayflow_cache_requests_total", (("result", "miss"), ("tier", "memory")))] == 1
    assert s[("rayflow_cache_requests_total", (("result", "miss"), ("tier", "redis")))] == 4
    assert ("rayflow_cache_requests_total", (("result", "hit"), ("tier", "redis"))) not in s


def test_gauges_read_their_callbacks_at_scrape():
    m = ServerMetrics()
    assert ("rayflow_runs_in_flight", ()) not in samples(m)          # no source yet: no sample
    counts = {"runs_driven": 2, "runs_queued": 7}
    m.set_sources(lambda: counts, lambda: {"idle": 3, "busy": 1})
    s = samples(m)
    assert s[("rayflow_runs_in_flight", ())] == 2 and s[("rayflow_runs_queued", ())] == 7
    assert s[("rayflow_store_pool_connections", (("state", "busy"),))] == 1
    counts["runs_driven"] = 5
    assert samples(m)[("rayflow_runs_in_flight", ())] == 5


def test_a_failing_source_leaves_its_gauge_out():
    m = ServerMetrics()

    def down() -> dict:
        raise ConnectionError("store down")

    m.set_sources(down, None)
    s = samples(m)
    assert ("rayflow_runs_in_flight", ()) not in s


def test_checkpoints_http_and_loop_lag():
    m = ServerMetrics()
    m.observe_checkpoint(1000, 0.25)
    m.observe_checkpoint(24, 0.5)
    m.observe_http("GET", "/v1/runs/{run_id}", 200, 0.003)
    m.observe_http("GET", "/v1/runs/{run_id}", 404, 0.001)
    m.observe_http("BREW", "unmatched", 405, 0.001)
    m.set_loop_lag(0.02)
    s = samples(m)
    assert s[("rayflow_checkpoint_bytes_total", ())] == 1024
    assert s[("rayflow_checkpoint_seconds_total", ())] == 0.75
    route = ("route", "/v1/runs/{run_id}")
    assert s[("rayflow_http_requests_total", (("method", "GET"), route, ("status", "200")))] == 1
    assert s[("rayflow_http_requests_total", (("method", "GET"), route, ("status", "404")))] == 1
    assert s[("rayflow_http_requests_total", (("method", "other"), ("route", "unmatched"), ("status", "405")))] == 1
    assert s[("rayflow_http_request_duration_seconds_count", (("method", "GET"), route))] == 2
    assert s[("rayflow_event_loop_lag_seconds", ())] == 0.02


def test_each_instance_has_its_own_registry():
    a, b = ServerMetrics(), ServerMetrics()
    a.observe_checkpoint(5, 0.1)
    assert samples(b)[("rayflow_checkpoint_bytes_total", ())] == 0


def test_connector_figures_of_ended_runs_are_counted():
    m = ServerMetrics()
    sql = {"connector": {"sql": {"statements": 3, "retries": 2, "rows_read": 1000, "pool": {"size": 1}}}}
    sink = {"connector": {"sql": {"statements": 2, "rows_written": 900}}}
    http = {"connector": {"http": {"requests": 12, "retries": 4, "failures": 0, "breaker_opened": 1,
                                   "breaker": {"http://h:80": "closed"}}}}
    m.observe_run(run(), [comp("src", outcome=sql), comp("sink", outcome=sink), comp("api", outcome=http),
                          comp("odd", outcome={"connector": {"sql": {"statements": "x"}, "http": None}})])
    s = samples(m)
    wf = ("workflow", "etl")
    assert s[("rayflow_connector_requests_total", (("kind", "sql"), wf))] == 5
    assert s[("rayflow_connector_requests_total", (("kind", "http"), wf))] == 12
    assert s[("rayflow_connector_retries_total", (("kind", "sql"), wf))] == 2
    assert s[("rayflow_connector_retries_total", (("kind", "http"), wf))] == 4
    assert s[("rayflow_connector_rows_total", (("direction", "read"), wf))] == 1000
    assert s[("rayflow_connector_rows_total", (("direction", "written"), wf))] == 900
    assert s[("rayflow_connector_breaker_opened_total", (wf,))] == 1
