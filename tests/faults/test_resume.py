"""Checkpoints and resume in one process, on both executors: a resumed run runs only
what has no checkpoint, keeps the earlier rows and events, and takes the run's lease."""

from __future__ import annotations

import threading

import pytest

import rayflow as rf
from rayflow.core.errors import RunBusy
from tests.fns.durability import expected_total, ledgered


@pytest.fixture
def svc(durable_svc):
    return durable_svc   # SQLite and PostgreSQL


def _tag(component_id: str) -> str:
    """The ledger name of a component id (ids are source, source_1, ...; tags source_0, ...)."""
    return {"source": "source_0", "square": "square_0"}.get(component_id, component_id)


def _events_without_gaps(svc, run_id):
    seqs = [e.seq for e in svc.store.get_events(run_id)]
    assert seqs == list(range(1, len(seqs) + 1)), seqs


def test_resume_after_a_failure_runs_only_the_failed_subtree(svc, ledger, executor):
    ledger.gate("fail", "square_2")
    h = svc.submit(ledgered, {"folder": str(ledger.folder), "n": 4, "big_n": 50_000}, executor=executor)
    assert h.wait(120) == "FAILED"
    first = ledger.counts()
    assert first["square_2"] == 1 and "total" not in first
    svc.flush()
    done = {_tag(c.component_id) for c in svc.store.get_components(h.run_id) if c.state == "SUCCEEDED"}
    assert {"source_2", "big"} <= done or executor == "ray"   # fail_fast cancels what Ray still runs
    ledger.gate("fail", "square_2", on=False)
    again = rf.resume(h.run_id, executor=executor)
    assert again.result(timeout=120) == expected_total(4, 50_000)
    counts = ledger.counts()
    assert counts["square_2"] == 2 and counts["total"] == 1
    assert all(counts[c] == 1 for c in done), (done, counts)   # what succeeded before did not run again
    svc.flush()
    run = svc.store.get_run(h.run_id)
    assert run.status == "SUCCEEDED" and run.heartbeat_at is None
    assert {c.state for c in svc.store.get_components(h.run_id)} == {"SUCCEEDED"}
    _events_without_gaps(svc, h.run_id)


def test_a_component_without_checkpoint_runs_again(svc, ledger, executor):
    ledger.gate("fail", "total")
    h = svc.submit(ledgered, {"folder": str(ledger.folder), "n": 2, "checkpoint_squares": False}, executor=executor)
    assert h.wait(120) == "FAILED"
    ledger.gate("fail", "total", on=False)
    assert rf.resume(h.run_id, executor=executor).result(timeout=120) == expected_total(2)
    counts = ledger.counts()
    assert counts["square_0"] == 2 and counts["square_1"] == 2   # checkpoint=False: recomputed
    assert counts["source_0"] == 1 and counts["source_1"] == 1


def test_resuming_a_succeeded_run_runs_nothing(svc, ledger):
    h = svc.submit(ledgered, {"folder": str(ledger.folder), "n": 2}, executor="local", background=False)
    assert h.result() == expected_total(2)
    before = ledger.counts()
    assert rf.resume(h.run_id).status() == "SUCCEEDED"
    assert ledger.counts() == before


def test_a_live_lease_refuses_a_second_driver(svc, ledger):
    ledger.gate("fail", "total")
    h = svc.submit(ledgered, {"folder": str(ledger.folder), "n": 2}, executor="local", background=False)
    assert h.status() == "FAILED"
    ledger.gate("fail", "total", on=False)
    svc.flush()
    assert svc.store.claim_run(h.run_id, "elsewhere:1", 30.0, force=True)   # someone else drives it
    with pytest.raises(RunBusy, match="driven by elsewhere:1"):
        rf.resume(h.run_id, executor="local")
    assert "total" in ledger.counts() and ledger.counts()["total"] == 1
    rf.resume(h.run_id, executor="local", force=True).wait(60)
    assert ledger.counts()["total"] == 2


def test_two_resumes_at_once_run_each_component_once(svc, ledger):
    ledger.gate("fail", "total")
    h = svc.submit(ledgered, {"folder": str(ledger.folder), "n": 3}, executor="local", background=False)
    assert h.status() == "FAILED"
    ledger.gate("fail", "total", on=False)
    ledger.gate("hold", "total")
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def resume() -> None:
        start.wait()
        try:
            svc.resume(h.run_id, executor="local")
            outcomes.append("resumed")
        except RunBusy:
            outcomes.append("busy")

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.gate("hold", "total", on=False)
    assert rf.get_run(h.run_id).wait(60) == "SUCCEEDED"
    assert sorted(outcomes) in (["busy", "resumed"], ["resumed", "resumed"])   # the second may see it active
    assert ledger.counts()["total"] == 2   # the failed try, then exactly one resumed run


def test_resumable_runs_are_those_whose_owner_stopped_beating(svc, ledger, monkeypatch):
    monkeypatch.setenv("RAYFLOW_LEASE_S", "0.5")
    ledger.gate("fail", "total")
    h = svc.submit(ledgered, {"folder": str(ledger.folder), "n": 1}, executor="local", background=False)
    svc.flush()
    svc.store.update_run(h.run_id, status="RUNNING", owner="gone-host:1", heartbeat_at=1.0)   # as a crash leaves it
    assert [r.run_id for r in rf.list_runs(status="RESUMABLE")] == [h.run_id]
    svc.store.update_run(h.run_id, heartbeat_at=9e12)
    assert rf.list_runs(status="RESUMABLE") == []


def test_idempotent_submission_returns_the_existing_run(svc, ledger):
    args = {"folder": str(ledger.folder), "n": 2}
    a = svc.submit(ledgered, args, executor="local", run_id="nightly-2026-11-27", background=False)
    b = svc.submit(ledgered, args, executor="local", run_id="nightly-2026-11-27", background=False)
    assert a.run_id == b.run_id == "nightly-2026-11-27" and b.result() == expected_total(2)
    assert ledger.counts()["total"] == 1
