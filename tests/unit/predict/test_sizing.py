"""Sizing: buckets, buffers, caps, fractional CPUs, the OOM retry and the report."""

from __future__ import annotations

import pytest

from rayflow.core.options import ComponentOptions
from rayflow.predict import Declared, Prediction, oom_retry_memory, report, size
from rayflow.predict.sizing import cpu_bucket, memory_bucket
from rayflow.store.port import ComponentRecord

MIB, GIB = 1 << 20, 1 << 30
NODE_CPUS, NODE_MEMORY = 16.0, 64 * GIB


def predicted(*, util: float = 1.0, memory: float = 300 * MIB, p99: float | None = None,
              source: str = "model", reason: str = "", duration: float = 1.0,
              from_rules: tuple[str, ...] = ()) -> Prediction:
    return Prediction(duration, duration * 2, memory / 2, memory, p99 or memory * 1.5, util / 2, util, 50, source,
                      reason, from_rules)


@pytest.mark.parametrize(("cpus", "bucket"), [
    (0.0, 0.05), (0.05, 0.05), (0.06, 0.1), (0.2, 0.25), (0.3, 0.5), (0.9, 1.0), (1.01, 2.0),
    (2.0, 2.0), (3.5, 4.0), (9.0, 16.0),
])
def test_cpu_buckets(cpus, bucket):
    assert cpu_bucket(cpus) == bucket


@pytest.mark.parametrize(("nbytes", "bucket"), [
    (1, 64 * MIB), (64 * MIB, 64 * MIB), (65 * MIB, 96 * MIB), (96 * MIB, 96 * MIB), (97 * MIB, 128 * MIB),
    (300 * MIB, 384 * MIB), (384 * MIB, 384 * MIB), (1.1 * GIB, int(1.5 * GIB)), (3 * GIB, 3 * GIB),
    (3 * GIB + 1, 4 * GIB),
])
def test_memory_buckets(nbytes, bucket):
    assert memory_bucket(nbytes) == bucket


def test_few_distinct_memory_classes():
    sizes = {memory_bucket(n * MIB) for n in range(1, 4097)}
    assert len(sizes) == 13        # 64, 96, ..., 3 GiB, 4 GiB


def test_model_prediction_is_buffered_and_bucketed():
    s = size(predicted(util=1.8, memory=300 * MIB), Declared(num_cpus=1.0), NODE_CPUS, NODE_MEMORY)
    assert s.num_cpus == 2.0            # 1.8 busy cores: two
    assert s.memory == 384 * MIB        # 300 MiB x 1.1 = 330 MiB -> 384 MiB
    assert "CPU-bound" in s.reason


@pytest.mark.parametrize("util", [0.85, 0.91, 1.0, 1.05])
def test_the_buffer_never_adds_a_core_to_a_single_core_component(util):
    # a CPU-bound loop on a busy 2-core node measures 0.5-0.95 cores busy: x 1.2 would make
    # it a 2-CPU request, and only half as many would run at once
    s = size(predicted(util=util), Declared(num_cpus=1.0), 2.0, NODE_MEMORY)
    assert s.num_cpus == 1.0


def test_io_bound_component_gets_a_fraction_of_a_core():
    s = size(predicted(util=0.1, duration=3.0), Declared(num_cpus=1.0), NODE_CPUS, NODE_MEMORY)
    assert s.num_cpus == 0.25           # 0.1 x 1.2 = 0.12 -> 0.25
    assert "fractional" in s.reason and "pays for a worker start" in s.reason


def test_a_short_task_keeps_a_whole_core_and_says_why():
    # a 40 ms task: a fraction of a core would make Ray start a worker process (about a
    # second of CPU) per extra task running at once, for 40 ms of work
    s = size(predicted(util=0.05, duration=0.04), Declared(num_cpus=1.0), 2.0, NODE_MEMORY)
    assert s.num_cpus == 1.0
    assert s.reason.startswith("kept num_cpus=1: a fractional request would start extra worker processes "
                               "for a 40 ms task")
    wide = size(predicted(util=0.05, duration=0.04), Declared(num_cpus=1.0), 2.0, NODE_MEMORY, concurrent=16)
    assert wide.num_cpus == 1.0


def test_a_fraction_costs_no_worker_when_no_more_tasks_than_cpus_run_at_once():
    s = size(predicted(util=0.05, duration=0.04), Declared(num_cpus=1.0), 2.0, NODE_MEMORY, concurrent=2)
    assert s.num_cpus == 0.1 and "at most 2 at once" in s.reason
    s = size(predicted(util=0.05, duration=0.04), Declared(num_cpus=1.0), 2.0, NODE_MEMORY, concurrent=3)
    assert s.num_cpus == 1.0


def test_the_floor_is_the_declared_request_when_below_a_core_and_duration_unknown_keeps_it():
    s = size(predicted(util=0.05, duration=0.04), Declared(num_cpus=0.5), 2.0, NODE_MEMORY)
    assert s.num_cpus == 0.5 and s.reason.startswith("kept num_cpus=0.5")
    unknown = size(predicted(util=0.05, duration=30.0, from_rules=("duration",)), Declared(num_cpus=1.0), 2.0,
                   NODE_MEMORY)
    assert unknown.num_cpus == 1.0 and "unknown duration" in unknown.reason
    threshold = size(predicted(util=0.05, duration=0.5), Declared(num_cpus=1.0), 2.0, NODE_MEMORY,
                     fractional_min_s=0.4)
    assert threshold.num_cpus == 0.1


def test_caps_by_declared_maximum_and_largest_node():
    capped = size(predicted(util=10.0, memory=40 * GIB), Declared(max_num_cpus=6.0, max_memory=8 * GIB),
                  NODE_CPUS, NODE_MEMORY)
    assert (capped.num_cpus, capped.memory) == (6.0, 8 * GIB)
    assert "capped" in capped.reason
    node_bound = size(predicted(util=30.0, memory=100 * GIB), Declared(), NODE_CPUS, NODE_MEMORY)
    assert (node_bound.num_cpus, node_bound.memory) == (NODE_CPUS, NODE_MEMORY)


def test_custom_buffers():
    s = size(predicted(util=1.0, memory=1 * GIB), Declared(), NODE_CPUS, NODE_MEMORY,
             cpu_buffer=1.0, memory_buffer=1.0)
    assert (s.num_cpus, s.memory) == (1.0, 1 * GIB)


def test_rules_keep_the_declared_request():
    declared = Declared.of(ComponentOptions(num_cpus=3.0, memory=2 * GIB))
    s = size(predicted(source="rules", reason="2 sample(s)"), declared, NODE_CPUS, NODE_MEMORY)
    assert (s.num_cpus, s.memory) == (3.0, 2 * GIB)
    assert "declared request kept" in s.reason and "2 sample(s)" in s.reason


def test_oom_retry_takes_the_larger_of_p99_and_double():
    assert oom_retry_memory(predicted(p99=3 * GIB), 1 * GIB, NODE_MEMORY) == 3 * GIB
    assert oom_retry_memory(predicted(p99=1 * GIB), 2 * GIB, NODE_MEMORY) == 4 * GIB
    assert oom_retry_memory(predicted(p99=1 * GIB), 48 * GIB, NODE_MEMORY) == NODE_MEMORY
    assert oom_retry_memory(predicted(p99=700 * MIB), None, NODE_MEMORY) == 768 * MIB


def _records(cid: str, n: int, *, cpus: float, memory: int | None, util: float, peak: int,
             error: str | None = None) -> list[ComponentRecord]:
    resources = {"num_cpus": cpus, **({"memory": memory} if memory else {})}
    return [ComponentRecord(f"r{i}", cid, state="FAILED" if error else "SUCCEEDED", duration_s=10.0,
                            cpu_s=10.0 * util, peak_rss_bytes=peak, resources=resources, error=error)
            for i in range(n)]


def test_report_lists_over_and_under_allocated_components():
    records = (_records("idle", 5, cpus=4.0, memory=8 * GIB, util=0.2, peak=500 * MIB)
               + _records("fine", 5, cpus=1.0, memory=1 * GIB, util=0.95, peak=600 * MIB)
               + _records("hungry", 5, cpus=1.0, memory=1 * GIB, util=3.0, peak=int(0.95 * GIB))
               + _records("killed", 2, cpus=1.0, memory=1 * GIB, util=0.9, peak=0,
                          error="OutOfMemoryError: Task was killed due to the node running low on memory"))
    rows = {a.component_id: a for a in report(records)}
    assert set(rows) == {"idle", "hungry", "killed"}
    idle = rows["idle"]
    assert (idle.cpu_verdict, idle.memory_verdict) == ("over-allocated", "over-allocated")
    assert idle.recommendation == "num_cpus=0.25, memory=768MiB"
    hungry = rows["hungry"]
    assert (hungry.cpu_verdict, hungry.memory_verdict) == ("under-allocated", "under-allocated")
    assert hungry.used_cpus_p90 == pytest.approx(3.0)
    assert hungry.recommendation == "num_cpus=4, memory=1.5GiB"
    killed = rows["killed"]
    assert killed.oom_kills == 2 and killed.memory_verdict == "under-allocated"
    assert killed.recommendation == "memory=2.0GiB"


def test_report_skips_cached_and_unmeasured_components():
    cached = ComponentRecord("r", "c", state="SUCCEEDED", cached=True, duration_s=0.0)
    pending = ComponentRecord("r", "p", state="PENDING")
    assert report([cached, pending]) == []


def test_targets_the_rules_filled_keep_the_declared_values():
    p = Prediction(5.0, 8.0, 128 * MIB, 256 * MIB, 384 * MIB, 0.1, 0.1, 30, "model",
                   "memory from rules (0 measured < 5)", ("memory",))
    s = size(p, Declared(num_cpus=1.0, memory=None), NODE_CPUS, NODE_MEMORY)
    assert (s.num_cpus, s.memory) == (0.25, None)
    assert "memory: declared" in s.reason
