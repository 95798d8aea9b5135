"""The lease keeper: a refused renewal is a take-over, except once the run's own last write
(which ends the lease) is under way."""

from __future__ import annotations

import time

from rayflow.runs.leases import LeaseKeeper
from rayflow.store.memory import MemoryStore
from rayflow.store.port import RunRecord

LEASE_S = 0.05   # short, so that ``confirm`` renews at once (its last renewal is old)


def _claimed(store: MemoryStore, owner: str = "a:1"):
    store.create_run(RunRecord(run_id="r1", name="etl", status="FAILED", created_at=1.0), [])
    return store.claim_run("r1", owner, 30.0)


def _keeper(store: MemoryStore) -> tuple[LeaseKeeper, list[str]]:
    keeper = LeaseKeeper(lambda: store, lambda: LEASE_S)
    return keeper, []


def test_a_take_over_is_reported_lost() -> None:
    store = MemoryStore()
    lease = _claimed(store)
    keeper, lost = _keeper(store)
    keeper.hold(lease, lost.append)
    try:
        store.claim_run("r1", "b:2", 30.0, force=True)
        time.sleep(LEASE_S)
        assert keeper.confirm("r1") is False
        assert lost == ["r1"]
    finally:
        keeper.stop()


def test_the_runs_own_last_write_is_not_a_take_over() -> None:
    store = MemoryStore()
    lease = _claimed(store)
    keeper, lost = _keeper(store)
    keeper.hold(lease, lost.append)
    try:
        keeper.ending("r1")
        store.write_batch([], [], {"r1": {"status": "SUCCEEDED", "heartbeat_at": None}}, fences={"r1": lease.epoch})
        time.sleep(LEASE_S)
        keeper.confirm("r1")   # renews: refused, since the run's end released the lease
        assert lost == []
        assert store.get_run("r1").heartbeat_at is None
        assert keeper.held() == []
    finally:
        keeper.stop()
