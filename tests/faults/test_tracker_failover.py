"""The run tracker is no single point of failure (issue 15 item 14).

Its runs are claimed under leases like any driver's: when the tracker dies, a client
waiting on a run takes it over (and nothing completed runs again), a tracker serving the
store resumes runs whose driver is gone, and a hand-over that fails leaves the run to the
submitting process. Side effects are counted by the components (the ledger file)."""

from __future__ import annotations

import pytest

import rayflow as rf
from rayflow.runs.owners import owner_id
from rayflow.service import hosting
from rayflow.store.port import RunRecord
from tests.fns.durability import expected_total, ledgered
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

LEASE_S = 2.0


@pytest.fixture
def tracked(ray_session, service, tmp_path, monkeypatch):
    """Runs on Ray go to the cluster's tracker, with a short lease; checkpoints in tmp."""
    monkeypatch.setenv("RAYFLOW_TRACKER", "1")
    monkeypatch.setattr(service.settings, "lease_s", LEASE_S)
    service.configure(checkpoints=str(tmp_path / "checkpoints"))
    return service


def _tracker():
    import ray

    return ray.get_actor("tracker", namespace="rayflow")


def _kill_tracker(owner: str) -> None:
    """Kill the tracker whose lease is ``owner`` (host:pid:token) and wait until its
    process is gone: ray.kill only asks, and a gate released while the tracker still
    runs lets it record the component there."""
    import psutil
    import ray

    pid = int(owner.split(":")[1])
    ray.kill(_tracker(), no_restart=True)

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, 60, what=f"the tracker (pid {pid}) to exit", poll_s=0.1)


def test_a_waiting_client_takes_over_when_the_tracker_dies(tracked, ledger) -> None:
    ledger.gate("hold", "total")
    h = rf.submit(ledgered, folder=str(ledger.folder), n=2)
    wait_until(lambda: ledger.counts().get("total"), 120, what="total to start in the tracker")
    run = tracked.store.get_run(h.run_id)
    assert run.owner and run.owner != owner_id() and run.lease_epoch == 1   # claimed by the tracker
    ckpt = tracked.checkpoint_store()
    wait_until(lambda: {"square", "square_1"} <= set(ckpt.index(h.run_id)), 60, what="the squares' checkpoints")
    _kill_tracker(run.owner)
    ledger.gate("hold", "total", on=False)
    assert h.wait(timeout=120) == "SUCCEEDED"
    assert rf.get_run(h.run_id).result() == expected_total(2)
    counts = ledger.counts()
    assert counts["total"] == 2                                  # the killed try, then the resumed one
    assert all(counts[f"{k}_{i}"] == 1 for k in ("source", "square") for i in range(2))


def test_a_tracker_resumes_runs_whose_driver_is_gone(tracked, ledger) -> None:
    store = tracked.store
    orphan = RunRecord("orphan-run", "ledgered", "RUNNING", created_at=1.0, started_at=1.0,
                       target="tests.fns.durability:ledgered", inputs={"folder": str(ledger.folder), "n": 1},
                       owner="gone-host:1:abcdef", heartbeat_at=store.db_now() - 100, lease_epoch=1)
    assert store.insert_run(orphan)
    assert rf.submit(ledgered, folder=str(ledger.folder), n=1).wait(timeout=120) == "SUCCEEDED"   # the tracker serves the store
    final = wait_until(lambda: (r := store.get_run("orphan-run")).status == "SUCCEEDED" and r, 120,
                       what="the tracker to resume the orphan", poll_s=0.2)
    assert final.lease_epoch >= 2 and not final.owner.startswith("gone-host")


class _FailingHost:
    def hand_over(self, plan, run, where, fallback):
        raise ConnectionError("the tracker cannot be reached")


def test_a_failed_hand_over_leaves_the_run_to_the_submitter(tracked, ledger, monkeypatch) -> None:
    monkeypatch.setattr(hosting, "_host", _FailingHost())
    h = rf.submit(ledgered, folder=str(ledger.folder), n=1)
    assert h.wait(timeout=120) == "SUCCEEDED" and h.result() == expected_total(1)
    run = tracked.store.get_run(h.run_id)
    assert run.owner == owner_id() and run.lease_epoch == 1   # claimed by this process
