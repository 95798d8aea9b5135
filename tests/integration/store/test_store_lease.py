"""The run lease (``claim_run`` and ``heartbeat_at``), part of the RunStore contract:
run against every adapter of the contract suite."""

from __future__ import annotations

import threading

from rayflow.store.port import RunStore
from tests.contracts.test_run_store import full_run, store  # noqa: F401 - the parametrized fixture


def test_heartbeat_round_trips(store: RunStore) -> None:  # noqa: F811
    store.create_run(full_run(), [])
    assert store.get_run("r1").heartbeat_at is None
    store.update_run("r1", heartbeat_at=123.5)
    assert store.get_run("r1").heartbeat_at == 123.5


def test_claim_takes_a_free_or_stale_lease_only(store: RunStore) -> None:  # noqa: F811
    store.create_run(full_run(status="FAILED"), [])
    assert store.claim_run("r1", "a:1", now=1000.0, stale_before=970.0) is True
    run = store.get_run("r1")
    assert (run.owner, run.heartbeat_at, run.status) == ("a:1", 1000.0, "RUNNING")
    assert store.claim_run("r1", "b:2", now=1010.0, stale_before=980.0) is False   # a's lease is live
    assert store.get_run("r1").owner == "a:1"
    assert store.claim_run("r1", "b:2", now=1040.0, stale_before=1010.0) is True   # a stopped beating
    assert store.get_run("r1").owner == "b:2"


def test_claim_refuses_a_succeeded_or_unknown_run(store: RunStore) -> None:  # noqa: F811
    store.create_run(full_run(status="SUCCEEDED"), [])
    assert store.claim_run("r1", "a:1", now=1.0, stale_before=1.0) is False
    assert store.claim_run("ghost", "a:1", now=1.0, stale_before=1.0) is False


def test_concurrent_claims_have_one_winner(store: RunStore) -> None:  # noqa: F811
    store.create_run(full_run(status="FAILED"), [])
    n = 8
    start = threading.Barrier(n)
    wins: list[str] = []

    def claim(i: int) -> None:
        start.wait()
        if store.claim_run("r1", f"p:{i}", now=500.0, stale_before=400.0):
            wins.append(f"p:{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and store.get_run("r1").owner == wins[0]
