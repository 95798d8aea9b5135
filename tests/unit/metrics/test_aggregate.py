"""Metrics across runs, from hand-made records."""

from __future__ import annotations

from rayflow.metrics.aggregate import aggregate, queue_depth, usage_by_component
from rayflow.store.port import ComponentRecord, RunRecord


def comp(run, cid, start, dur, queued=0.0, state="SUCCEEDED", attempts=1, cpu=None, peak=None, cpus=1.0, mem=None):
    res = {"num_cpus": cpus, **({"memory": mem} if mem else {})}
    return ComponentRecord(run, cid, state=state, attempts=attempts, started_at=start, ended_at=start + dur,
                           duration_s=dur, queued_s=queued, resources=res, cpu_s=cpu, peak_rss_bytes=peak)


def test_queue_depth_counts_overlapping_waits():
    comps = [comp("r", "a", 10.0, 1.0, queued=4.0), comp("r", "b", 12.0, 1.0, queued=4.0), comp("r", "c", 20.0, 1.0)]
    depth = queue_depth(comps)
    assert depth["max"] == 2          # a waits 6-10, b waits 8-12: both during 8-10
    assert 0 < depth["mean"] <= 2


def test_usage_compares_requested_and_used():
    comps = [comp("r1", "io", 0.0, 10.0, cpu=0.5, cpus=1.0, mem=2**30, peak=100 * 2**20),
             comp("r2", "io", 0.0, 10.0, cpu=0.5, cpus=1.0, mem=2**30, peak=300 * 2**20)]
    row = usage_by_component(comps)["io"]
    assert row["runs"] == 2
    assert row["requested_cpu_s"] == 20.0 and row["used_cpu_s"] == 1.0
    assert row["cpu_utilization"] == 0.05
    assert row["requested_memory"] == 2**30 and row["peak_rss_bytes"] == 300 * 2**20


def test_aggregate_over_runs():
    runs = [RunRecord("r1", "wf", "SUCCEEDED", created_at=0.0, started_at=0.0, ended_at=10.0),
            RunRecord("r2", "wf", "FAILED", created_at=5.0, started_at=5.0, ended_at=20.0)]
    comps = [comp("r1", "a", 1.0, 2.0), comp("r2", "a", 6.0, 3.0, state="FAILED", attempts=3)]
    out = aggregate(runs, comps)
    assert out["runs"] == 2 and out["runs_by_status"] == {"SUCCEEDED": 1, "FAILED": 1}
    assert out["window_s"] == 20.0
    assert out["workflows_per_s"] == 0.1 and out["components_per_s"] == 0.1
    assert out["run_latency_s"]["p50"] == 12.5
    assert out["errors"] == 1 and out["retries"] == 2
    assert set(out["by_component"]) == {"wf/a"}


def test_components_of_different_workflows_that_share_an_id_stay_apart():
    runs = [RunRecord("r1", "etl", "SUCCEEDED", created_at=0.0, started_at=0.0, ended_at=10.0),
            RunRecord("r2", "train", "SUCCEEDED", created_at=0.0, started_at=0.0, ended_at=10.0),
            RunRecord("r3", "etl", "SUCCEEDED", created_at=0.0, started_at=0.0, ended_at=10.0)]
    comps = [comp("r1", "load", 0.0, 1.0), comp("r2", "load", 0.0, 7.0), comp("r3", "load", 0.0, 3.0)]
    by = aggregate(runs, comps)["by_component"]
    assert set(by) == {"etl/load", "train/load"}
    assert by["etl/load"]["runs"] == 2 and by["train/load"]["runs"] == 1
    assert by["train/load"]["duration_s"]["p50"] == 7.0


def test_connector_figures_add_up_per_workflow_component():
    from rayflow.metrics.aggregate import connectors
    from rayflow.store.port import ComponentRecord

    def rec(run: str, cid: str, outcome: dict) -> ComponentRecord:
        return ComponentRecord(run, cid, state="SUCCEEDED", attempts=1, duration_s=1.0, outcome=outcome)

    comps = [rec("r1", "src", {"connector": {"sql": {"statements": 1, "rows_read": 100, "retries": 2,
                                                     "pool": {"size": 2}}}}),
             rec("r2", "src", {"connector": {"sql": {"statements": 1, "rows_read": 50, "pool": {"size": 1}}}}),
             rec("r1", "api", {"connector": {"http": {"requests": 7, "retries": 1, "breaker_opened": 1,
                                                      "rate_limit_wait_s": 0.5}}}),
             rec("r1", "plain", {"oom_reruns": 1})]
    out = connectors(comps, {"r1": "etl", "r2": "etl"})
    assert set(out) == {"etl/src", "etl/api"}
    src, api = out["etl/src"], out["etl/api"]
    assert (src["kind"], src["runs"], src["statements"], src["rows_read"], src["retries"], src["pool_size"]) == \
        ("sql", 2, 2, 150, 2, 2)
    assert (api["kind"], api["requests"], api["breaker_opened"], api["rate_limit_wait_s"]) == ("http", 7, 1, 0.5)
