"""rayflow.metrics.summary: run metrics from component records (no Ray)."""

from __future__ import annotations

import json
import math

import pytest

from rayflow.metrics.summary import percentile, run_metrics
from rayflow.store.port import ComponentRecord, RunRecord


def rec(cid, state="SUCCEEDED", *, start=None, dur=None, queued=None, attempts=1, upstream=(), **kw):
    return ComponentRecord(
        run_id="r1", component_id=cid, state=state, attempts=attempts,
        started_at=start, ended_at=None if start is None or dur is None else start + dur,
        duration_s=dur, queued_s=queued, upstream=list(upstream), **kw,
    )


# -- percentile --------------------------------------------------------------------------------


def test_percentile_linear_interpolation():
    data = [1.0, 2.0, 3.0, 4.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 4.0
    assert percentile(data, 50) == pytest.approx(2.5)
    assert percentile(data, 25) == pytest.approx(1.75)
    assert percentile(list(range(101)), 95) == pytest.approx(95.0)
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)


def test_percentile_order_independent_and_filters_none_and_nan():
    assert percentile([4.0, None, 1.0, math.nan, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([], 50) is None
    assert percentile([None, math.nan], 50) is None
    assert percentile([7.0], 99) == 7.0


# -- run_metrics -------------------------------------------------------------------------------


def make_run(**kw) -> RunRecord:
    return RunRecord(run_id="r1", name="etl", status=kw.pop("status", "SUCCEEDED"), created_at=100.0, **kw)


def test_run_metrics_full():
    # load -> (fast, slow) -> total ; slow dominates the actual critical path
    comps = [
        rec("load", start=100.0, dur=1.0, queued=0.1),
        rec("fast", start=101.0, dur=0.5, queued=0.2, upstream=["load"]),
        rec("slow", start=101.0, dur=4.0, queued=0.3, attempts=3, upstream=["load"], node_id="n1"),
        rec("total", start=105.0, dur=1.0, queued=0.4, upstream=["fast", "slow"]),
    ]
    run = make_run(started_at=100.0, ended_at=110.0)
    m = run_metrics(run, comps)
    assert m["run_id"] == "r1" and m["name"] == "etl" and m["status"] == "SUCCEEDED"
    assert m["wall_s"] == pytest.approx(10.0)
    assert m["critical_path"] == ["load", "slow", "total"]
    assert m["critical_path_s"] == pytest.approx(6.0)
    assert m["throughput_cps"] == pytest.approx(4 / 10.0)
    assert m["queue_wait_s"]["p50"] == pytest.approx(0.25)
    assert m["queue_wait_s"]["p95"] == pytest.approx(0.1 + 0.3 * 0.95)
    assert m["queue_wait_s"]["p99"] == pytest.approx(0.1 + 0.3 * 0.99)
    assert m["duration_s"]["p50"] == pytest.approx(1.0)
    assert m["counts"] == {"SUCCEEDED": 4}
    assert m["attempts"] == 6
    assert m["retries"] == 2
    slow = m["components"]["slow"]
    assert slow["state"] == "SUCCEEDED" and slow["attempts"] == 3 and slow["node_id"] == "n1"
    assert slow["duration_s"] == 4.0 and slow["queued_s"] == 0.3
    assert slow["started_at"] == 101.0 and slow["ended_at"] == 105.0
    assert slow["cached"] is False
    json.dumps(m)  # JSON-serialisable


def test_critical_path_uses_measured_not_structural_length():
    # The long chain is fast; the single heavy component is the critical path.
    comps = [rec("a", dur=0.1), rec("b", dur=0.1, upstream=["a"]), rec("c", dur=0.1, upstream=["b"]),
             rec("heavy", dur=5.0)]
    m = run_metrics(make_run(started_at=100.0, ended_at=106.0), comps)
    assert m["critical_path"] == ["heavy"]
    assert m["critical_path_s"] == pytest.approx(5.0)


def test_a_finished_runs_critical_path_is_the_chain_that_delayed_its_end_queue_wait_included():
    # region_eu runs longest (3.5 s) but is done at 3.8 s; the short components queued behind
    # the CPUs until 7 s delayed the end (8.5 s): the measured path follows them, not durations
    comps = [
        rec("load", start=100.0, dur=0.3, queued=0.0),
        rec("region_eu", start=100.3, dur=3.5, queued=0.0, upstream=["load"]),
        rec("region_us", start=107.0, dur=1.0, queued=6.7, upstream=["load"]),
        rec("merge", start=108.0, dur=0.5, queued=0.0, upstream=["region_us"]),
    ]
    m = run_metrics(make_run(started_at=100.0, ended_at=108.6), comps)
    assert m["critical_path"] == ["load", "region_us", "merge"]
    assert m["critical_path_s"] == pytest.approx(8.5)           # the run's start to merge's end
    durations_only = run_metrics(make_run(status="RUNNING", started_at=100.0),
                                 [*comps, rec("later", "PENDING", upstream=["merge"])], now=109.0)
    assert durations_only["critical_path"][:2] == ["load", "region_eu"]   # live: longest by weights


def test_components_that_did_not_run_weigh_zero_and_are_not_throughput():
    comps = [
        rec("a", "FAILED", start=100.0, dur=2.0, queued=0.5),
        rec("b", "UPSTREAM_FAILED", upstream=["a"]),
        rec("c", "SKIPPED"),
        rec("d", "CANCELLED"),
        rec("e", "TIMED_OUT", start=100.0, dur=1.0, attempts=2),
        rec("f", "CACHED", dur=0.0, cached=True),
    ]
    m = run_metrics(make_run(status="FAILED", started_at=100.0, ended_at=104.0), comps)
    assert m["critical_path"][0] == "a"
    assert m["critical_path_s"] == pytest.approx(2.0)
    assert m["counts"] == {"FAILED": 1, "UPSTREAM_FAILED": 1, "SKIPPED": 1, "CANCELLED": 1,
                           "TIMED_OUT": 1, "CACHED": 1}
    # FAILED, TIMED_OUT and CACHED finished; the rest never ran.
    assert m["throughput_cps"] == pytest.approx(3 / 4.0)
    assert m["queue_wait_s"] == {"p50": 0.5, "p95": 0.5, "p99": 0.5}
    assert m["components"]["f"]["cached"] is True


def test_upstreams_outside_the_records_are_ignored():
    comps = [rec("b", dur=1.0, upstream=["not_recorded"])]
    m = run_metrics(make_run(started_at=100.0, ended_at=101.0), comps)
    assert m["critical_path"] == ["b"]


def test_running_run_measures_wall_to_now():
    run = make_run(status="RUNNING", started_at=100.0)
    m = run_metrics(run, [rec("a", "RUNNING", start=100.0)], now=103.0)
    assert m["wall_s"] == pytest.approx(3.0)
    assert m["throughput_cps"] == 0.0
    assert m["queue_wait_s"] == {"p50": None, "p95": None, "p99": None}


def test_wall_falls_back_to_created_at():
    m = run_metrics(make_run(ended_at=102.5), [])
    assert m["wall_s"] == pytest.approx(2.5)
    assert m["critical_path"] == [] and m["critical_path_s"] == 0.0
    assert m["components"] == {} and m["attempts"] == 0 and m["retries"] == 0


def test_no_start_means_zero_wall():
    run = RunRecord(run_id="r", name="n", created_at=0.0)
    m = run_metrics(run, [rec("a", dur=1.0)], now=50.0)
    assert m["wall_s"] == 0.0
    assert m["throughput_cps"] == 0.0


def test_live_critical_path_adds_running_and_pending_estimates():
    from rayflow.metrics.summary import run_metrics
    from rayflow.store.port import ComponentRecord, RunRecord

    run = RunRecord("r", "wf", "RUNNING", created_at=0.0, started_at=0.0)
    comps = [
        ComponentRecord("r", "a", "SUCCEEDED", started_at=0.0, ended_at=2.0, duration_s=2.0),
        ComponentRecord("r", "b", "SUCCEEDED", started_at=0.0, ended_at=1.0, duration_s=1.0),
        ComponentRecord("r", "c", "RUNNING", submitted_at=0.0, upstream=["a"]),     # ready at 2.0
        ComponentRecord("r", "d", "PENDING", upstream=["c"]),
        ComponentRecord("r", "e", "PENDING", upstream=["b"]),
    ]
    m = run_metrics(run, comps, now=7.0)
    assert m["critical_path"] == ["a", "c", "d"]
    # a measured 2.0, c running for 5.0 so far, d estimated at the median duration 1.5
    assert m["critical_path_s"] == 2.0 + 5.0 + 1.5
    assert m["critical_path_remaining_s"] == 5.0 + 1.5
    done = run_metrics(RunRecord("r", "wf", "SUCCEEDED", created_at=0.0, started_at=0.0, ended_at=3.0), comps[:2])
    assert done["critical_path"] == ["a"] and done["critical_path_remaining_s"] == 0
