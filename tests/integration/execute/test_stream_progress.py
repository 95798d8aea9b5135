"""Batch progress of a stream on Ray: the driver sees batches and rows leave the last stage
while the stream runs, up to the input's total."""

from __future__ import annotations

import time

import pyarrow as pa

import rayflow as rf
from tests.fns import execute as fns


@rf.workflow
def counted(n: int = 20_000, pause: float = 0.05):
    return fns.tail_stage(fns.slow_square(fns.parse(fns.keyed(n)), pause=pause), pause=pause)


class Unsized:
    """Batches made lazily, without a declared row count (like a generator, but picklable)."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def __iter__(self):
        for i in range(self.batches):
            yield pa.record_batch({"key": [i % 4] * 1000, "x": list(range(i * 1000, (i + 1) * 1000))})


@rf.workflow
def over(source):
    return fns.tail_stage(fns.slow_square(fns.parse(source)))


def test_a_stream_reports_batches_and_rows_up_to_the_total(ray_session, service):
    handle = rf.submit(counted, n=20_000, pause=0.05)
    seen = []
    while handle.status() not in ("SUCCEEDED", "FAILED"):
        seen.extend(s["rows"] for s in handle.stream_progress().values())
        time.sleep(0.05)
    assert handle.result(timeout=120).num_rows == 20_000
    final = handle.stream_progress()["tail_stage"]
    assert final["stages"] == ["parse", "slow_square", "tail_stage"]
    assert (final["rows"], final["total_rows"], final["batches"], final["done"]) == (20_000, 20_000, 20, True)
    assert final["rows_out"] == 20_000 and final["rows_per_s"] > 0
    assert any(0 < rows < 20_000 for rows in seen), f"no report while the stream ran: {seen}"
    assert seen == sorted(seen)   # it only grows


def test_an_input_without_a_length_reports_rows_without_a_total(ray_session, service):
    handle = rf.submit(over, source=Unsized(5))
    assert handle.result(timeout=120).num_rows == 5000
    final = handle.stream_progress()["tail_stage"]
    assert (final["rows"], final["batches"], final["total_rows"]) == (5000, 5, None)


def test_progress_can_be_turned_off(ray_session, service, monkeypatch):
    monkeypatch.setenv("RAYFLOW_STREAM_PROGRESS", "0")
    handle = rf.submit(counted, n=3000, pause=0.0)
    assert handle.result(timeout=120).num_rows == 3000
    assert handle.stream_progress() == {}


def test_the_local_executor_has_no_stream_progress(service):
    handle = rf.submit(counted, executor="local", n=2000, pause=0.0)
    assert handle.result(timeout=60).num_rows == 2000
    assert handle.stream_progress() == {}


def test_a_run_driven_by_the_tracker_reports_through_it(ray_session, service, monkeypatch):
    monkeypatch.setenv("RAYFLOW_TRACKER", "1")   # the cluster's tracker actor drives the run
    handle = rf.submit(counted, n=5000, pause=0.0)
    assert handle.wait(timeout=120) == "SUCCEEDED"
    final = handle.stream_progress()["tail_stage"]
    assert (final["rows"], final["total_rows"], final["done"]) == (5000, 5000, True)
