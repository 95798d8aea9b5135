"""The server's runner and control plane without HTTP: queue, claims, fencing, hand-back.

Two "servers" here are two Services (each its own store connection, writer and lease
keeper) on one SQLite file, driving with the local executor; what ran is counted in the
runs' ledger files (tests/fns/durability.py), never read from the store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rayflow.core.errors import SpecError
from rayflow.server.plane import Conflict, ControlPlane
from rayflow.server.runner import Runner
from rayflow.service import Service, Settings
from tests.fns.durability import expected_total, ledger_counts
from tests.helpers import wait_until

WORKFLOW = "tests.fns.durability:ledgered"
LEASE_S = 0.6


class Node:
    """One server's worth: service, runner, plane (no HTTP)."""

    def __init__(self, store: str, name: str, *, max_runs: int = 8) -> None:
        self.service = Service(Settings(store_url=store))
        self.runner = Runner(self.service, server_id=name, url="", executor="local", max_runs=max_runs,
                             lease_s=lambda: LEASE_S)
        self.plane = ControlPlane(self.service, self.runner, executor="local")
        self.service.finished_hooks.append(lambda active: self.runner.finished(active.run.run_id))
        self.runner.start()

    def close(self, *, hand_back: bool = False) -> None:
        self.runner.stop(hand_back=hand_back)
        self.service.shutdown()


@pytest.fixture
def nodes(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYFLOW_LEASE_S", str(LEASE_S))
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    made: list[Node] = []

    def make(name: str, **kw) -> Node:
        node = Node(store, name, **kw)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


def _folder(tmp_path: Path, name: str = "run", hold: str | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    if hold:
        (folder / f"hold-{hold}").touch()
    return folder


def _recorded(plane: ControlPlane, run_id: str) -> bool:
    """Every component but the held ``total`` is recorded SUCCEEDED (so it is checkpointed)."""
    comps = plane.components(run_id)
    return len(comps) > 1 and all(c.state == "SUCCEEDED" for c in comps if c.component_id != "total")


def _final(plane: ControlPlane, run_id: str, timeout: float = 30) -> str:
    wait_until(lambda: plane.get(run_id).status in ("SUCCEEDED", "FAILED", "CANCELLED"), timeout=timeout)
    return plane.get(run_id).status


def test_a_submitted_run_is_queued_then_claimed_and_driven(nodes, tmp_path):
    node = nodes("a")
    folder = _folder(tmp_path)
    sub = node.plane.submit(workflow=WORKFLOW, inputs={"folder": str(folder), "n": 3})
    assert sub.created and sub.run.status == "PENDING" and sub.run.owner == ""
    assert _final(node.plane, sub.run.run_id) == "SUCCEEDED"
    run = node.plane.get(sub.run.run_id)
    assert run.summary["result"] == expected_total(3)
    assert run.owner == node.runner.owner and run.lease_epoch == 1 and run.heartbeat_at is None
    assert ledger_counts(folder)["total"] == 1


def test_an_invalid_submission_is_refused_before_anything_is_recorded(nodes):
    node = nodes("a")
    with pytest.raises(SpecError, match="exactly one"):
        node.plane.submit(spec={"name": "x", "components": []}, workflow=WORKFLOW)
    with pytest.raises(SpecError, match="nope"):
        node.plane.submit(workflow="tests.fns.nope:wf")
    with pytest.raises(SpecError, match="component 'a' field 'bogus'"):
        node.plane.submit(spec={"name": "x", "components": [{"id": "a", "bogus": 1}]})
    assert node.plane.list()[0] == []


def test_an_idempotent_replay_returns_the_first_run_and_another_body_conflicts(nodes, tmp_path):
    node = nodes("a")
    folder = _folder(tmp_path)
    first = node.plane.submit(workflow=WORKFLOW, inputs={"folder": str(folder), "n": 1}, idempotency_key="k1",
                              caller="t1")
    again = node.plane.submit(workflow=WORKFLOW, inputs={"folder": str(folder), "n": 1}, idempotency_key="k1",
                              caller="t1")
    assert again.run.run_id == first.run.run_id and not again.created
    with pytest.raises(Conflict):
        node.plane.submit(workflow=WORKFLOW, inputs={"folder": str(folder), "n": 2}, idempotency_key="k1",
                          caller="t1")
    other = node.plane.submit(workflow=WORKFLOW, inputs={"folder": str(folder), "n": 1}, idempotency_key="k1",
                              caller="t2")   # keys are scoped by caller
    assert other.created and other.run.run_id != first.run.run_id


def test_a_server_whose_lease_was_taken_over_stops_and_writes_nothing_more(nodes, tmp_path):
    a = nodes("a")
    folder = _folder(tmp_path, hold="total")
    run_id = a.plane.submit(workflow=WORKFLOW, inputs={"folder": str(folder), "n": 2}).run.run_id
    wait_until(lambda: ledger_counts(folder).get("total") == 1 and _recorded(a.plane, run_id), timeout=30)
    a.runner.stop(hand_back=False)   # a stops claiming but keeps driving its run
    # b takes the run over as if a's lease had lapsed (a paused or partitioned owner)
    b = nodes("b")
    lease = b.service.store.claim_run(run_id, b.runner.owner, LEASE_S, force=True)
    assert lease is not None and lease.epoch == 2
    b.runner.adopt(lease)
    wait_until(lambda: a.service.active()[0].lost, timeout=10)   # a learnt it lost the run
    (folder / "hold-total").unlink()   # its running component ends (the local executor cannot cancel it)
    wait_until(lambda: not a.service.active(), timeout=10)   # and a stops there
    assert _final(b.plane, run_id) == "SUCCEEDED"
    time.sleep(3 * LEASE_S)   # anything a still had queued would have been written by now
    run = b.plane.get(run_id)
    assert run.owner == b.runner.owner and run.status == "SUCCEEDED" and run.lease_epoch == 2
    states = [e.data.get("state") for e in b.plane.events(run_id) if e.kind == "run_state"]
    assert states.count("SUCCEEDED") == 1 and "CANCELLED" not in states, states
    counts = ledger_counts(folder)
    assert counts["source_0"] == counts["square_1"] == 1 and counts["total"] == 2


def test_a_stopping_server_hands_its_runs_back_and_another_resumes_them(nodes, tmp_path):
    a = nodes("a")
    folder = _folder(tmp_path, hold="total")
    run_id = a.plane.submit(workflow=WORKFLOW, inputs={"folder": str(folder), "n": 2}).run.run_id
    wait_until(lambda: ledger_counts(folder).get("total") == 1 and _recorded(a.plane, run_id), timeout=30)
    # the local executor cannot interrupt the running component: let it end once stopping began
    threading.Timer(0.5, (folder / "hold-total").unlink).start()
    assert a.runner.stop(hand_back=True) == 1
    run = a.plane.get(run_id)
    assert run.status == "RUNNING" and run.owner == "" and run.heartbeat_at is None
    assert "run_handed_back" in [e.kind for e in a.plane.events(run_id)]
    b = nodes("b")   # claims it at once: the lease was released, not left to lapse
    assert _final(b.plane, run_id, timeout=10) == "SUCCEEDED"
    assert b.plane.get(run_id).summary["result"] == expected_total(2)
    counts = ledger_counts(folder)
    assert counts["square_0"] == counts["source_1"] == 1 and counts["total"] in (1, 2)


def test_a_queued_run_is_cancelled_before_it_starts(nodes, tmp_path):
    a = nodes("a", max_runs=1)
    held = _folder(tmp_path, "held", hold="total")
    a.plane.submit(workflow=WORKFLOW, inputs={"folder": str(held), "n": 1})
    wait_until(lambda: a.runner.driving() == 1, timeout=10)
    queued = a.plane.submit(workflow=WORKFLOW, inputs={"folder": str(_folder(tmp_path, "q")), "n": 1}).run.run_id
    assert a.plane.cancel(queued).status == "CANCELLED"
    assert not (tmp_path / "q" / "ledger").exists()
    (held / "hold-total").unlink()


def test_resume_and_retry_rules(nodes, tmp_path):
    a = nodes("a")
    folder = _folder(tmp_path)
    (folder / "fail-total").touch()
    run_id = a.plane.submit(workflow=WORKFLOW, inputs={"folder": str(folder), "n": 2}).run.run_id
    assert _final(a.plane, run_id) == "FAILED"
    (folder / "fail-total").unlink()
    a.plane.retry(run_id)
    assert _final(a.plane, run_id) == "SUCCEEDED"
    counts = ledger_counts(folder)
    assert counts["total"] == 2 and counts["square_0"] == 1   # only the failed part ran again
    with pytest.raises(Conflict, match="SUCCEEDED"):
        a.plane.resume(run_id)


def test_a_run_inserted_by_a_retried_write_is_the_callers_and_a_colliding_id_is_made_again(tmp_path):
    from rayflow.store.memory import MemoryStore
    from rayflow.store.port import RunRecord

    class RetriedInsert(MemoryStore):
        """Inserts, then answers as a retry after a lost reply would: "exists"."""

        def __init__(self) -> None:
            super().__init__()
            self.taken: set[str] = set()

        def insert_run(self, run: RunRecord) -> bool:
            if run.run_id in self.taken:   # an id another run holds: refused
                return False
            super().insert_run(run)
            return False

    service = Service(Settings(store_url="memory://"))
    store = RetriedInsert()
    service._store = store
    plan = service.check("tests.fns.durability:ledgered", {"folder": str(tmp_path), "n": 1})
    run = service.record_new_run(plan, None, queued=True)
    assert store.get_run(run.run_id) is not None   # recorded once, and the caller knows it

    calls = iter(["taken-1", "taken-2", "free-3"])
    store.taken = {"taken-1", "taken-2"}
    import rayflow.service.operations as ops

    real = ops.new_run_id
    ops.new_run_id = lambda name: next(calls)
    try:
        again = service.record_new_run(plan, None, queued=True)
    finally:
        ops.new_run_id = real
    assert again.run_id == "free-3"
