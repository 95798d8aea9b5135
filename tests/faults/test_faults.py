"""Fault tests with real processes and real signals. Each checks what "nothing lost"
means: the run ends terminal; what completed before is not computed again (counted with
the ledger the components write, not with the store); the event log has no gaps; the
lease is released; and the cluster's CPUs are all free again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import rayflow as rf
from rayflow.store.checkpoints import CheckpointStore
from tests.fns.durability import expected_total, ledger_pids, ledgered, ledgered_auto
from tests.helpers import REPO

ROOT = REPO
pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(ray_session):
    import ray

    return ray.get_runtime_context().gcs_address


@pytest.fixture
def svc(durable_svc):
    return durable_svc   # every test here runs on SQLite and on PostgreSQL


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _nothing_lost(svc, run_id: str) -> None:
    import ray

    svc.flush()
    run = svc.store.get_run(run_id)
    assert run.status in ("SUCCEEDED", "FAILED", "CANCELLED")
    assert run.heartbeat_at is None, "the lease was not released"
    seqs = [e.seq for e in svc.store.get_events(run_id)]
    assert seqs == list(range(1, len(seqs) + 1)), f"event log has gaps: {seqs}"
    if run.status == "SUCCEEDED":   # one committed result per component
        kept = svc.checkpoint_store().index(run_id)
        assert sorted(kept) == sorted(c.component_id for c in svc.store.get_components(run_id))
    total = ray.cluster_resources().get("CPU", 0)
    _until(lambda: ray.available_resources().get("CPU", 0) == total, 30, "every CPU of the cluster to be free")


def test_sigkill_of_the_driver_then_resume(svc, ledger, cluster, tmp_path):
    n = 5
    ledger.gate("hold", "square_4")   # the run stays in flight until the driver is killed
    ckpt_dir = tmp_path / "checkpoints"
    driver = subprocess.Popen(
        [sys.executable, "-m", "tests.fns.durability_driver", "--address", cluster, "--store", svc.store_url_for_others(),
         "--checkpoints", str(ckpt_dir), "--folder", str(ledger.folder), "--n", str(n)],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        run_id = driver.stdout.readline().strip()
        assert run_id, "the driver printed no run id"
        done = {"source", "source_1", "source_2", "source_3", "source_4", "square", "square_1", "square_2", "square_3"}
        store = CheckpointStore(str(ckpt_dir))
        _until(lambda: done <= set(store.index(run_id)), 60, "the finished components' checkpoints")
        # the store's rows are batched off the hot path; the crash should find the run recorded as started
        _until(lambda: getattr(svc.store.get_run(run_id), "status", None) == "RUNNING", 60,
               "the store to record the run as RUNNING")
        kept = set(store.index(run_id))
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    before = ledger.counts()
    assert before.get("square_4") == 1 and "total" not in before
    assert svc.store.get_run(run_id).status == "RUNNING"   # as the crash left it
    assert run_id in [r.run_id for r in rf.list_runs(status="RESUMABLE")]   # its owner is gone
    ledger.gate("hold", "square_4", on=False)
    handle = rf.resume(run_id)
    assert handle.result(timeout=120) == expected_total(n)
    after = ledger.counts()
    tags = {"source": "source_0", "square": "square_0"}
    for cid in kept:
        assert after[tags.get(cid, cid)] == 1, f"{cid} had a checkpoint but ran again: {after}"
    assert after["total"] == 1
    _nothing_lost(svc, run_id)


@pytest.mark.parametrize("workflow", [ledgered, ledgered_auto], ids=["ray_retries", "rayflow_retries"])
def test_sigkill_of_a_worker_mid_task_is_retried(svc, ledger, cluster, workflow):
    """Ray retries a crashed worker's task; for an auto-sized component (no Ray retries)
    rayflow does, with the same request."""
    ledger.gate("hold", "square_1")
    handle = rf.submit(workflow, folder=str(ledger.folder), n=3)
    pid = _until(lambda: (ledger_pids(ledger.folder, "square_1") or [None])[0], 60, "square_1 to start")
    os.kill(pid, signal.SIGKILL)
    _until(lambda: len(ledger_pids(ledger.folder, "square_1")) == 2, 60, "Ray to retry square_1")
    ledger.gate("hold", "square_1", on=False)
    assert handle.result(timeout=120) == expected_total(3)
    counts = ledger.counts()
    assert counts["square_1"] == 2 and len(set(ledger_pids(ledger.folder, "square_1"))) == 2
    assert all(v == 1 for k, v in counts.items() if k != "square_1"), counts
    svc.flush()
    assert {c.component_id: c.attempts for c in svc.store.get_components(handle.run_id)}["square_1"] == 2
    _nothing_lost(svc, handle.run_id)


def test_two_resume_processes_at_once_run_the_rest_once(svc, ledger, cluster):
    ledger.gate("fail", "total")
    first = svc.submit(ledgered, {"folder": str(ledger.folder), "n": 3}, executor="local", background=False)
    assert first.status() == "FAILED"
    svc.flush()
    ledger.gate("fail", "total", on=False)
    ledger.gate("hold", "total")   # the winner stays busy while the other tries
    cmd = [sys.executable, "-m", "rayflow.cli.main", "resume", first.run_id, "--store", svc.store_url_for_others(),
           "--address", cluster, "-q"]
    env = {**_env(), "RAYFLOW_CHECKPOINTS": svc.checkpoint_store().url}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        _until(lambda: any(p.poll() is not None for p in procs), 120, "one resume to give up")
        ledger.gate("hold", "total", on=False)
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], (codes, outs)   # the loser: RunBusy, a usage error (exit 2)
    assert any("is driven by" in err for _, err in outs), outs
    counts = ledger.counts()
    assert counts["total"] == 2   # the failed try and exactly one resumed run
    assert all(v == 1 for k, v in counts.items() if k != "total"), counts   # the rest came from checkpoints
    assert rf.get_run(first.run_id).wait(30) == "SUCCEEDED"
    _nothing_lost(svc, first.run_id)


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own (never the shared one), removed at the end."""
    from tests.support.pgserver import throwaway_postgres

    with throwaway_postgres() as server:
        yield server


def test_postgresql_restarting_mid_run_loses_nothing(service, ledger, cluster, own_postgres, tmp_path):
    service.configure(store=own_postgres.url, checkpoints=str(tmp_path / "checkpoints"))
    try:
        ledger.gate("hold", "square_2")
        handle = rf.submit(ledgered, folder=str(ledger.folder), n=4)
        _until(lambda: ledger.counts().get("square_2"), 60, "square_2 to start")
        time.sleep(1.5)                 # the writer has written the first rows
        own_postgres.restart()          # the pool's connections all die; the run goes on
        time.sleep(0.5)
        ledger.gate("hold", "square_2", on=False)
        assert handle.result(timeout=120) == expected_total(4)
        assert all(v == 1 for v in ledger.counts().values()), ledger.counts()
        comps = service.store.get_components(handle.run_id)
        assert len(comps) == 9 and {c.state for c in comps} == {"SUCCEEDED"}
        _nothing_lost(service, handle.run_id)
    finally:
        service.configure(store=f"sqlite:///{tmp_path / 'after.db'}", checkpoints="")
