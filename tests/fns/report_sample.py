"""A hand-made run for the report tests: 15 components, a critical path, one failure.

No Ray: records are built by hand and the metrics come from ``run_metrics`` over them.
"""

from __future__ import annotations

from typing import Any

from rayflow.metrics.summary import run_metrics
from rayflow.store.port import ComponentRecord, RunRecord

T0 = 1_700_000_000.0
EVIL_ID = "<script>x</script>"
RUN_ID = "etl-20240101-abc123"
WORKERS = {1: ("w1a2b3c4d5e6", "n9f8e7d6c5b4"), 2: ("w2b3c4d5e6f7", "n9f8e7d6c5b4"),
           3: ("w3c4d5e6f7a8", "n1a2b3c4d5e6")}

# id, upstream, start (s after T0), duration, queued, state, worker
PLAN: list[tuple[str, list[str], float | None, float | None, float, str, int]] = [
    ("load", [], 0.1, 1.2, 0.1, "SUCCEEDED", 1),
    ("clean_0", ["load"], 1.40, 0.8, 0.10, "SUCCEEDED", 1),
    ("clean_1", ["load"], 1.42, 1.5, 0.12, "SUCCEEDED", 2),
    ("clean_2", ["load"], 1.45, 0.6, 0.15, "SUCCEEDED", 3),
    ("clean_3", ["load"], 2.30, 1.1, 1.00, "SUCCEEDED", 1),
    (EVIL_ID, ["load"], 1.35, 0.0, 0.05, "CACHED", 0),
    ("features_0", ["clean_0"], 2.25, 0.9, 0.05, "SUCCEEDED", 3),
    ("features_1", ["clean_1"], 3.00, 2.2, 0.08, "SUCCEEDED", 2),
    ("features_2", ["clean_2"], 3.20, 0.7, 1.15, "SUCCEEDED", 3),
    ("features_3", ["clean_3"], 3.45, 1.0, 0.05, "SUCCEEDED", 1),
    ("join", ["features_0", "features_1", "features_2", "features_3"], 5.30, 0.9, 0.10,
     "SUCCEEDED", 2),
    ("train", ["join"], 6.30, 3.1, 0.10, "SUCCEEDED", 2),
    ("validate", ["join"], 6.35, 0.6, 0.15, "FAILED", 3),
    ("evaluate", ["train"], 9.50, 0.8, 0.10, "SUCCEEDED", 1),
    ("publish", ["evaluate", "validate"], None, None, 0.0, "UPSTREAM_FAILED", 0),
]


def _record(cid: str, ups: list[str], start: float | None, dur: float | None, queued: float,
            state: str, worker: int) -> ComponentRecord:
    worker_id, node_id = WORKERS.get(worker, (None, None))
    started = None if start is None else T0 + start
    return ComponentRecord(
        run_id=RUN_ID, component_id=cid, state=state, upstream=ups,
        attempts=0 if start is None else (3 if state == "FAILED" else 1),
        submitted_at=None if started is None else started - queued,
        started_at=started, ended_at=None if started is None else started + (dur or 0.0),
        queued_s=None if start is None else queued, duration_s=dur,
        node_id=node_id, worker_id=worker_id, cached=state == "CACHED",
        resources={"num_cpus": 1},
        error=("ValueError: schema mismatch in column <amount> & 'total' (expected int64)"
               if state == "FAILED" else "upstream validate failed" if state == "UPSTREAM_FAILED"
               else None),
    )


def sample_run() -> tuple[RunRecord, list[ComponentRecord], dict[str, Any]]:
    comps = [_record(*row) for row in PLAN]
    end = max(c.ended_at or 0.0 for c in comps) + 0.2
    run = RunRecord(run_id=RUN_ID, name="etl", status="FAILED", created_at=T0 - 0.5, started_at=T0,
                    ended_at=end, target="rayflow/examples/etl.yaml", inputs={"n": 1000},
                    error="validate: ValueError: schema mismatch", owner="host:4242",
                    n_components=len(comps))
    return run, comps, run_metrics(run, comps, now=end)


def big_run(n: int = 420) -> tuple[RunRecord, list[ComponentRecord], dict[str, Any]]:
    """``n`` components: a 5-long chain (the critical path) and ``n - 5`` short independent ones."""
    comps = [ComponentRecord(run_id="big", component_id=f"step_{i}", state="SUCCEEDED", attempts=1,
                             upstream=[f"step_{i - 1}"] if i else [], started_at=T0 + 10 * i,
                             ended_at=T0 + 10 * i + 10, queued_s=0.0, duration_s=10.0)
             for i in range(5)]
    comps += [ComponentRecord(run_id="big", component_id=f"leaf_{i}", state="SUCCEEDED", attempts=1,
                              started_at=T0 + i * 0.01, ended_at=T0 + i * 0.01 + 0.5 + i * 0.001,
                              queued_s=0.01, duration_s=0.5 + i * 0.001)
              for i in range(n - 5)]
    run = RunRecord(run_id="big", name="big", status="SUCCEEDED", created_at=T0, started_at=T0,
                    ended_at=T0 + 50, n_components=n)
    return run, comps, run_metrics(run, comps, now=T0 + 50)
