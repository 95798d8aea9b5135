"""The lease keeper: a refused renewal is a take-over, except once the run's own last write
(which ends the lease) is under way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from rayflow.runs.leases import LeaseKeeper
from rayflow.store.memory import MemoryStore
from rayflow.store.port import Lease, RunRecord

LEASE_S = 0.05   # short, so that ``confirm`` renews at once (its last renewal is old)


@dataclass
class Held:
    store: MemoryStore
    lease: Lease
    keeper: LeaseKeeper
    lost: list[str] = field(default_factory=list)   # the runs the keeper reported lost


@pytest.fixture
def held() -> Iterator[Held]:
    """Run r1 claimed by a:1, its lease held by a keeper."""
    store = MemoryStore()
    store.create_run(RunRecord(run_id="r1", name="etl", status="FAILED", created_at=1.0), [])
    h = Held(store, store.claim_run("r1", "a:1", 30.0), LeaseKeeper(lambda: store, lambda: LEASE_S))
    h.keeper.hold(h.lease, h.lost.append)
    yield h
    h.keeper.stop()


def test_a_take_over_is_reported_lost(held: Held) -> None:
    held.store.claim_run("r1", "b:2", 30.0, force=True)
    time.sleep(LEASE_S)
    assert held.keeper.confirm("r1") is False
    assert held.lost == ["r1"]


def test_the_runs_own_last_write_is_not_a_take_over(held: Held) -> None:
    held.keeper.ending("r1")
    held.store.write_batch([], [], {"r1": {"status": "SUCCEEDED", "heartbeat_at": None}},
                           fences={"r1": held.lease.epoch})
    time.sleep(LEASE_S)
    held.keeper.confirm("r1")   # renews: refused, since the run's end released the lease
    assert held.lost == []
    assert held.store.get_run("r1").heartbeat_at is None
    assert held.keeper.held() == []
