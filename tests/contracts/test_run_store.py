"""The RunStore contract, run against every adapter.

To add an adapter, add one entry to ``ADAPTERS``: a name and a factory taking pytest's
``request`` (for the fixtures it needs: ``tmp_path``, ``postgres_url``) and returning a
fresh, empty store.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable

import pytest

from rayflow.core.errors import RunExists
from rayflow.store.memory import MemoryStore
from rayflow.store.port import (
    ComponentRecord,
    EventRecord,
    Lease,
    RunRecord,
    RunStore,
    ServerRecord,
    TokenRecord,
    WorkflowRecord,
)
from rayflow.store.sqlite import SqliteStore
from rayflow.store.urls import open_store

ADAPTERS: dict[str, Callable[[pytest.FixtureRequest], RunStore]] = {
    "memory": lambda request: MemoryStore(),
    "sqlite": lambda request: SqliteStore(request.getfixturevalue("tmp_path") / "store" / "runs.db"),
    # a schema of its own in the shared server (tests/support/postgres.py); skips without one
    "postgresql": lambda request: open_store(request.getfixturevalue("postgres_url")),
}


@pytest.fixture(params=sorted(ADAPTERS))
def store(request: pytest.FixtureRequest):
    s = ADAPTERS[request.param](request)
    yield s
    s.close()


def full_run(run_id: str = "r1", created_at: float = 100.0, status: str = "PENDING") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        name="etl",
        status=status,
        created_at=created_at,
        started_at=101.5,
        ended_at=None,
        target="pkg.mod:flow",
        inputs={"n": 3, "paths": ["a", "b"], "nested": {"x": 1.5, "ok": True}},
        error=None,
        owner="host:123",
        cancel_requested=False,
        n_components=2,
        summary={"p50_s": 0.25},
    )


def comp(run_id: str, cid: str, state: str = "PENDING", **kw) -> ComponentRecord:
    return ComponentRecord(run_id=run_id, component_id=cid, state=state, **kw)


def ev(run_id: str, seq: int, kind: str = "component_state", **kw) -> EventRecord:
    return EventRecord(run_id=run_id, seq=seq, ts=1000.0 + seq, kind=kind, **kw)


def test_store_satisfies_protocol_and_has_url(store: RunStore) -> None:
    assert isinstance(store, RunStore)
    assert store.url.split("://")[0] in {"memory", "sqlite", "postgresql"}


def test_create_get_round_trip_all_fields(store: RunStore) -> None:
    run = full_run()
    full_comp = comp(
        "r1", "b", "RUNNING", attempts=2, submitted_at=1.0, started_at=2.0, ended_at=3.5,
        queued_s=1.0, duration_s=1.5, node_id="node-1", worker_id="w-9",
        resources={"num_cpus": 2, "memory": 1e9, "custom": {"gpu_type": "a100"}},
        error="boom", cached=True, upstream=["a"],
    )
    store.create_run(run, [comp("r1", "a"), full_comp])
    assert store.get_run("r1") == run
    assert store.get_components("r1") == [comp("r1", "a"), full_comp]


def test_returned_records_are_copies(store: RunStore) -> None:
    run = full_run()
    store.create_run(run, [comp("r1", "a")])
    run.inputs["n"] = 999  # mutating the caller's record must not reach the store
    got = store.get_run("r1")
    assert got is not None and got.inputs["n"] == 3
    got.inputs["n"] = 777
    assert store.get_run("r1").inputs["n"] == 3


def test_get_run_unknown_is_none(store: RunStore) -> None:
    assert store.get_run("nope") is None
    assert store.get_components("nope") == []
    assert store.get_events("nope") == []


def test_update_run_sets_only_given_fields(store: RunStore) -> None:
    store.create_run(full_run(), [])
    store.update_run("r1", status="FAILED", ended_at=200.0, error="x failed",
                     summary={"failed": ["x"]}, cancel_requested=True)
    got = store.get_run("r1")
    expected = full_run()
    expected.status, expected.ended_at, expected.error = "FAILED", 200.0, "x failed"
    expected.summary, expected.cancel_requested = {"failed": ["x"]}, True
    assert got == expected


def test_update_run_unknown_field_raises_naming_it(store: RunStore) -> None:
    store.create_run(full_run(), [])
    with pytest.raises(ValueError, match="colour"):
        store.update_run("r1", status="RUNNING", colour="red")
    assert store.get_run("r1").status == "PENDING"  # nothing applied


def test_update_run_of_unknown_run_is_a_no_op(store: RunStore) -> None:
    store.update_run("ghost", status="RUNNING")
    assert store.get_run("ghost") is None


def test_list_runs_newest_first_with_filter_and_limit(store: RunStore) -> None:
    store.create_run(full_run("old", 10.0, "SUCCEEDED"), [])
    store.create_run(full_run("mid", 20.0, "FAILED"), [])
    store.create_run(full_run("new", 30.0, "SUCCEEDED"), [])
    store.create_run(full_run("tie-a", 20.0, "RUNNING"), [])  # same created_at as "mid"
    assert [r.run_id for r in store.list_runs()] == ["new", "tie-a", "mid", "old"]
    assert [r.run_id for r in store.list_runs(status="SUCCEEDED")] == ["new", "old"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["new", "tie-a"]
    assert [r.run_id for r in store.list_runs(status="SUCCEEDED", limit=1)] == ["new"]
    assert store.list_runs(status="CANCELLED") == []
    assert store.list_runs(limit=0) == []


def test_upsert_components_last_wins_ordered_by_component_id(store: RunStore) -> None:
    store.create_run(full_run(), [comp("r1", "b"), comp("r1", "a")])
    store.upsert_components([comp("r1", "b", "RUNNING"), comp("r1", "c", "PENDING")])
    store.upsert_components([comp("r1", "b", "SUCCEEDED", attempts=1, duration_s=0.5)])
    got = store.get_components("r1")
    assert [c.component_id for c in got] == ["a", "b", "c"]
    assert got[1] == comp("r1", "b", "SUCCEEDED", attempts=1, duration_s=0.5)
    # within one call, the later record for an id wins
    store.upsert_components([comp("r1", "a", "RUNNING"), comp("r1", "a", "FAILED", error="e")])
    assert store.get_components("r1")[0] == comp("r1", "a", "FAILED", error="e")


def test_component_order_is_by_code_point(store: RunStore) -> None:
    ids = ["b", "B", "a_1", "a-1", "a", "Z", "é", "a10", "a9"]   # no locale's collation
    store.create_run(full_run(), [comp("r1", cid) for cid in ids])
    assert [c.component_id for c in store.get_components("r1")] == sorted(ids)


def test_components_are_scoped_by_run(store: RunStore) -> None:
    store.create_run(full_run("r1"), [comp("r1", "a")])
    store.create_run(full_run("r2"), [comp("r2", "a", "RUNNING")])
    assert store.get_components("r1") == [comp("r1", "a")]
    assert store.get_components("r2") == [comp("r2", "a", "RUNNING")]


def test_append_events_is_idempotent_on_run_and_seq(store: RunStore) -> None:
    store.create_run(full_run(), [])
    first = [ev("r1", 1, data={"to": "RUNNING"}), ev("r1", 2, component_id="a")]
    store.append_events(first)
    store.append_events([ev("r1", 2, kind="other", data={"dup": True}), ev("r1", 3)])
    got = store.get_events("r1")
    assert [e.seq for e in got] == [1, 2, 3]
    assert got[:2] == first  # the duplicate seq 2 did not replace the original


def test_get_events_after_seq_and_limit(store: RunStore) -> None:
    store.create_run(full_run("r1"), [])
    store.append_events([ev("r1", s) for s in (5, 3, 1, 2, 4)])  # any insertion order
    store.append_events([ev("r2", 1)])
    assert [e.seq for e in store.get_events("r1")] == [1, 2, 3, 4, 5]
    assert [e.seq for e in store.get_events("r1", after_seq=2)] == [3, 4, 5]
    assert [e.seq for e in store.get_events("r1", after_seq=1, limit=2)] == [2, 3]
    assert store.get_events("r1", after_seq=5) == []
    assert [e.run_id for e in store.get_events("r2")] == ["r2"]


def test_request_cancel(store: RunStore) -> None:
    store.create_run(full_run(), [])
    assert store.cancel_requested("r1") is False
    assert store.request_cancel("r1") is True
    assert store.cancel_requested("r1") is True
    assert store.get_run("r1").cancel_requested is True
    assert store.request_cancel("r1") is True  # asking twice is fine


def test_request_cancel_unknown_run(store: RunStore) -> None:
    assert store.request_cancel("ghost") is False
    assert store.cancel_requested("ghost") is False


def test_second_store_on_the_same_url_shares_rows(store: RunStore) -> None:
    if store.url == "memory://":
        pytest.skip("a memory store is private to its object")
    store.create_run(full_run(), [comp("r1", "a")])
    two = open_store(store.url)   # a store's url opens the same store
    try:
        assert two.get_run("r1") == full_run()
        two.upsert_components([comp("r1", "b", "RUNNING")])
        assert two.request_cancel("r1") is True
        assert [c.component_id for c in store.get_components("r1")] == ["a", "b"]
        assert store.cancel_requested("r1") is True
    finally:
        two.close()


def test_concurrent_writes_from_8_threads_lose_nothing(store: RunStore) -> None:
    store.create_run(full_run("shared"), [])
    n_threads, n_items = 8, 50
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            start.wait()
            run_id = f"t{t}"
            store.create_run(full_run(run_id, float(t)), [comp(run_id, "seed")])
            for i in range(n_items):
                store.upsert_components([comp(run_id, f"c{i:03d}", "RUNNING")])
                store.append_events([ev("shared", t * n_items + i + 1, component_id=run_id)])
                store.update_run(run_id, n_components=i + 1)
            store.request_cancel(run_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store.list_runs(limit=1000)) == n_threads + 1
    for t in range(n_threads):
        assert len(store.get_components(f"t{t}")) == n_items + 1
        run = store.get_run(f"t{t}")
        assert run.n_components == n_items and run.cancel_requested
    seqs = [e.seq for e in store.get_events("shared")]
    assert seqs == list(range(1, n_threads * n_items + 1))


def test_create_run_of_an_existing_id_raises_and_changes_nothing(store: RunStore) -> None:
    store.create_run(full_run(status="SUCCEEDED"), [comp("r1", "a", "SUCCEEDED")])
    again = full_run(status="PENDING")
    again.name = "other"
    with pytest.raises(RunExists) as info:
        store.create_run(again, [comp("r1", "a", "PENDING"), comp("r1", "b")])
    assert info.value.run_id == "r1"
    assert store.get_run("r1") == full_run(status="SUCCEEDED")   # never reset to PENDING
    assert store.get_components("r1") == [comp("r1", "a", "SUCCEEDED")]


def test_two_creates_of_one_id_at_once_exactly_one_wins(store: RunStore) -> None:
    n = 6   # durable stores: a store object (its own connection) per thread
    stores = [store] * n if store.url == "memory://" else [store, *(open_store(store.url) for _ in range(n - 1))]
    start, won, lost = threading.Barrier(n), [], []

    def create(t: int) -> None:
        run = full_run("same")
        run.name = f"creator-{t}"
        start.wait()
        try:
            stores[t].create_run(run, [comp("same", f"from-{t}")])
            won.append(t)
        except RunExists:
            lost.append(t)

    threads = [threading.Thread(target=create, args=(t,)) for t in range(n)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
    finally:
        for other in stores[1:]:
            if other is not store:
                other.close()
    assert len(won) == 1 and sorted(won + lost) == list(range(n))
    assert store.get_run("same").name == f"creator-{won[0]}"
    assert [c.component_id for c in store.get_components("same")] == [f"from-{won[0]}"]


# -- leases (fenced) ---------------------------------------------------------------------

CLOCK_SLACK_S = 5.0   # a db-clock time written by the store is this close to db_now() read after it


def near_db_now(store: RunStore, t: float | None) -> bool:
    return t is not None and abs(t - store.db_now()) < CLOCK_SLACK_S


def other_store(store: RunStore) -> RunStore:
    """Another store object on the same rows (the same object for memory://)."""
    return store if store.url == "memory://" else open_store(store.url)


def test_db_now_is_unix_seconds(store: RunStore) -> None:
    assert abs(store.db_now() - time.time()) < 60   # one host here: the clocks agree closely


def test_lease_and_spec_round_trip(store: RunStore) -> None:
    run = full_run()
    run.lease_epoch, run.spec = 7, {"name": "etl", "components": [{"id": "a", "fn": "m:f"}], "x": 1.5}
    store.create_run(run, [])
    assert store.get_run("r1") == run
    store.update_run("r1", spec={"other": True}, lease_epoch=8)
    got = store.get_run("r1")
    assert (got.spec, got.lease_epoch) == ({"other": True}, 8)
    assert store.list_runs()[0] == got
    assert full_run().lease_epoch == 0 and full_run().spec == {}


def test_insert_run_refuses_an_existing_id_and_keeps_the_row(store: RunStore) -> None:
    first = full_run()
    first.spec = {"v": 1}
    assert store.insert_run(first) is True
    again = full_run(status="FAILED")
    again.name, again.spec = "other", {"v": 2}
    assert store.insert_run(again) is False
    assert store.get_run("r1") == first
    assert store.insert_run(full_run("r2")) is True
    assert [r.run_id for r in store.list_runs()] == ["r2", "r1"]


def test_claim_refuses_a_live_lease_force_takes_it_and_release_keeps_the_epoch(store: RunStore) -> None:
    store.create_run(full_run(status="FAILED"), [])
    a = store.claim_run("r1", "a:1", 30.0)
    assert a == Lease("r1", "a:1", 1)
    run = store.get_run("r1")
    assert (run.owner, run.status, run.lease_epoch) == ("a:1", "RUNNING", 1)
    assert near_db_now(store, run.heartbeat_at)
    assert store.claim_run("r1", "b:2", 30.0) is None                  # a's lease is live
    assert store.get_run("r1").owner == "a:1"
    b = store.claim_run("r1", "b:2", 30.0, force=True)
    assert b == Lease("r1", "b:2", 2)
    assert (store.get_run("r1").owner, store.get_run("r1").lease_epoch) == ("b:2", 2)
    # renew: only the lease that holds the run
    store.update_run("r1", heartbeat_at=1.0)
    assert store.renew_lease(a) is False
    assert store.get_run("r1").heartbeat_at == 1.0
    assert store.renew_lease(Lease("r1", "a:1", 2)) is False           # right epoch, wrong owner
    assert store.renew_lease(b) is True
    assert near_db_now(store, store.get_run("r1").heartbeat_at)
    # release: the old lease changes nothing; the holder's clears owner and heartbeat, not the epoch
    assert store.release_lease(a, status="FAILED") is False
    assert store.get_run("r1").status == "RUNNING"
    assert store.release_lease(b, status="FAILED") is True
    run = store.get_run("r1")
    assert (run.owner, run.heartbeat_at, run.status, run.lease_epoch) == ("", None, "FAILED", 2)
    assert store.release_lease(b) is False                              # released already
    assert store.renew_lease(b) is False
    c = store.claim_run("r1", "c:3", 30.0)                              # free again: no force needed
    assert c == Lease("r1", "c:3", 3)
    assert store.release_lease(c) is True                               # status kept when not given
    assert (store.get_run("r1").status, store.get_run("r1").lease_epoch) == ("RUNNING", 3)


def test_a_renewal_after_the_runs_last_write_does_not_revive_its_lease(store: RunStore) -> None:
    """The run's end writes status and ``heartbeat_at=None`` under the lease (owner kept);
    a renewal that lands after it (the keeper's, in flight meanwhile) must not set a
    heartbeat on the finished run: it would look held until the lease lapsed."""
    store.create_run(full_run(status="FAILED"), [])
    lease = store.claim_run("r1", "a:1", 30.0)
    assert store.write_batch([], [], {"r1": {"status": "SUCCEEDED", "heartbeat_at": None}},
                             fences={"r1": lease.epoch}) == set()
    assert store.renew_lease(lease) is False
    run = store.get_run("r1")
    assert (run.status, run.heartbeat_at, run.owner) == ("SUCCEEDED", None, "a:1")


def test_claim_takes_a_stale_lease_on_the_db_clock(store: RunStore) -> None:
    store.create_run(full_run(status="RUNNING"), [])
    now = store.db_now()
    store.update_run("r1", owner="gone:1", heartbeat_at=now - 10.0)
    assert store.claim_run("r1", "b:2", 30.0) is None      # beat 10 s ago: live for 30 s
    assert store.claim_run("r1", "b:2", 5.0) == Lease("r1", "b:2", 1)   # stale after 5 s
    store.update_run("r1", heartbeat_at=now + 3600.0)      # a clock far ahead: live
    assert store.claim_run("r1", "c:3", 30.0) is None


def test_claim_refuses_a_succeeded_or_unknown_run_even_forced(store: RunStore) -> None:
    store.create_run(full_run(status="SUCCEEDED"), [])
    assert store.claim_run("r1", "a:1", 30.0) is None
    assert store.claim_run("r1", "a:1", 30.0, force=True) is None
    assert store.claim_run("ghost", "a:1", 30.0, force=True) is None
    run = store.get_run("r1")
    assert (run.status, run.owner, run.lease_epoch) == ("SUCCEEDED", "host:123", 0)


def test_concurrent_claims_of_one_run_have_one_winner(store: RunStore) -> None:
    store.create_run(full_run(status="FAILED"), [])
    stores = [other_store(store) for _ in range(4)]
    start = threading.Barrier(len(stores))
    wins: list[Lease] = []

    def claim(i: int) -> None:
        start.wait()
        got = stores[i].claim_run("r1", f"p:{i}", 60.0)
        if got is not None:
            wins.append(got)

    try:
        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in stores:
            if s is not store:
                s.close()
    assert len(wins) == 1 and wins[0].epoch == 1
    assert store.get_run("r1").owner == wins[0].owner


def fenced_batch_setup(store: RunStore) -> tuple[Lease, Lease, Lease]:
    """r_old: claimed by old then taken over by new; r_ok: claimed by ok; r_free: no lease."""
    for run_id in ("r_old", "r_ok", "r_free"):
        store.create_run(full_run(run_id), [comp(run_id, "seed")])
    old = store.claim_run("r_old", "old:1", 30.0)
    new = store.claim_run("r_old", "new:2", 30.0, force=True)
    ok = store.claim_run("r_ok", "ok:3", 30.0)
    assert (old.epoch, new.epoch, ok.epoch) == (1, 2, 1)
    return old, new, ok


def test_write_batch_drops_a_stale_fence_and_writes_the_rest(store: RunStore) -> None:
    old, _, ok = fenced_batch_setup(store)
    before_old = store.get_run("r_old")
    components = [comp(r, "a", "RUNNING", attempts=1) for r in ("r_old", "r_ok", "r_free")]
    events = [ev(r, 1, component_id="a") for r in ("r_old", "r_ok", "r_free")]
    runs = {r: {"n_components": 5, "heartbeat_at": 1.0, "summary": {"by": r}} for r in ("r_old", "r_ok", "r_free")}
    dropped = store.write_batch(components, events, runs, fences={"r_old": old.epoch, "r_ok": ok.epoch})
    assert dropped == {"r_old"}
    # the stale owner's records are gone, every one of them
    assert store.get_components("r_old") == [comp("r_old", "seed")]
    assert store.get_events("r_old") == []
    assert store.get_run("r_old") == before_old
    # the fenced run whose fence holds: written, its heartbeat on the db clock, not 1.0
    assert store.get_components("r_ok") == [comp("r_ok", "a", "RUNNING", attempts=1), comp("r_ok", "seed")]
    assert [e.seq for e in store.get_events("r_ok")] == [1]
    run = store.get_run("r_ok")
    assert (run.n_components, run.summary, run.owner, run.lease_epoch) == (5, {"by": "r_ok"}, "ok:3", 1)
    assert run.heartbeat_at != 1.0 and near_db_now(store, run.heartbeat_at)
    # the unfenced run: written as given
    assert [c.component_id for c in store.get_components("r_free")] == ["a", "seed"]
    assert [e.seq for e in store.get_events("r_free")] == [1]
    free = store.get_run("r_free")
    assert (free.n_components, free.heartbeat_at, free.summary) == (5, 1.0, {"by": "r_free"})


def test_write_batch_fenced_heartbeat_none_releases_and_unknown_fence_drops(store: RunStore) -> None:
    _, new, ok = fenced_batch_setup(store)
    dropped = store.write_batch([comp("ghost", "a")], [ev("ghost", 1)],
                                {"r_ok": {"heartbeat_at": None, "owner": "", "status": "SUCCEEDED"},
                                 "r_old": {"n_components": 9}, "ghost": {"n_components": 1}},
                                fences={"r_ok": ok.epoch, "r_old": new.epoch, "ghost": 1})
    assert dropped == {"ghost"}
    run = store.get_run("r_ok")
    assert (run.heartbeat_at, run.owner, run.status, run.lease_epoch) == (None, "", "SUCCEEDED", 1)
    assert store.get_run("r_old").n_components == 9
    assert store.get_components("ghost") == [] and store.get_events("ghost") == []


def test_write_batch_without_fences_writes_everything(store: RunStore) -> None:
    old, _, _ = fenced_batch_setup(store)
    for fences in (None, {}):
        assert store.write_batch([comp("r_old", "x", "FAILED", error="e")], [ev("r_old", 3)],
                                 {"r_old": {"heartbeat_at": 2.0, "error": "late"}}, fences) == set()
        run = store.get_run("r_old")
        assert (run.heartbeat_at, run.error, run.lease_epoch) == (2.0, "late", 2)   # as given: unfenced
    assert store.get_components("r_old")[-1] == comp("r_old", "x", "FAILED", error="e")
    assert [e.seq for e in store.get_events("r_old")] == [3]
    assert store.write_batch([], [], {}, {"r_old": old.epoch}) == {"r_old"}
    with pytest.raises(ValueError, match="colour"):
        store.write_batch([], [], {"r_old": {"colour": "red"}}, {})


def test_write_batch_waits_for_a_claim_in_flight(store: RunStore, request: pytest.FixtureRequest) -> None:
    """A claim that has locked the run (not committed yet) when the writer cycle starts: the
    cycle waits for it and then sees the new epoch (it never checks the old one and writes)."""
    if store.url == "memory://":
        pytest.skip("one lock guards the whole memory store")
    store.create_run(full_run(), [])
    lease = store.claim_run("r1", "a:1", 30.0)
    locked, hold_s = threading.Event(), 0.5
    if store.url.startswith("sqlite"):
        def claim_elsewhere() -> None:
            conn = sqlite3.connect(store.path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE runs SET lease_epoch = lease_epoch + 1, owner = 'b:2' WHERE run_id = 'r1'")
            locked.set()
            time.sleep(hold_s)
            conn.execute("COMMIT")
            conn.close()
    else:
        import asyncpg
        server, schema = request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_schema")

        async def go() -> None:
            conn = await asyncpg.connect(server, server_settings={"search_path": schema}, timeout=5)
            try:
                async with conn.transaction():
                    await conn.execute("UPDATE runs SET lease_epoch = lease_epoch + 1, owner = 'b:2' "
                                       "WHERE run_id = 'r1'")
                    locked.set()
                    await asyncio.sleep(hold_s)
            finally:
                await conn.close()

        def claim_elsewhere() -> None:
            asyncio.run(go())
    other = threading.Thread(target=claim_elsewhere)
    other.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        dropped = store.write_batch([comp("r1", "a", "RUNNING")], [ev("r1", 1)], {"r1": {"n_components": 7}},
                                    fences={"r1": lease.epoch})
        waited = time.monotonic() - started
    finally:
        other.join()
    assert dropped == {"r1"}
    assert waited > hold_s / 2
    run = store.get_run("r1")
    assert (run.owner, run.lease_epoch, run.n_components) == ("b:2", 2, 2)
    assert store.get_components("r1") == [] and store.get_events("r1") == []


def claimable(run_id: str, created_at: float, **kw) -> RunRecord:
    run = RunRecord(run_id=run_id, name="etl", status="PENDING", created_at=created_at, target="pkg.mod:flow")
    for k, v in kw.items():
        setattr(run, k, v)
    return run


def test_claim_next_oldest_first_within_limit_skipping_what_it_cannot_drive(store: RunStore) -> None:
    now = store.db_now()
    runs = [
        claimable("c-spec", 5.0, target="", spec={"components": []}),    # a spec, no target
        claimable("c-target", 1.0),
        claimable("c-running-stale", 3.0, status="RUNNING", owner="dead:1", heartbeat_at=now - 120.0),
        claimable("c-failed-main-spec", 4.0, target="__main__:flow", spec={"x": 1}),   # the spec plans it
        claimable("c-late", 9.0),
        claimable("x-main", 0.5, target="__main__:flow"),                 # only its own process can plan it
        claimable("x-nothing", 0.6, target=""),
        claimable("x-live", 0.7, status="RUNNING", owner="b:1", heartbeat_at=now - 1.0),
        claimable("x-succeeded", 0.8, status="SUCCEEDED"),
        claimable("x-failed", 0.9, status="FAILED"),
        claimable("x-cancelled", 0.95, status="CANCELLED"),
    ]
    for run in runs:
        store.create_run(run, [])
    first = store.claim_next("me:1", 30.0, 2)
    assert first == [Lease("c-target", "me:1", 1), Lease("c-running-stale", "me:1", 1)]
    rest = store.claim_next("me:1", 30.0, 10)
    assert [lease.run_id for lease in rest] == ["c-failed-main-spec", "c-spec", "c-late"]
    assert store.claim_next("me:1", 30.0, 10) == []             # every lease is live now
    assert store.claim_next("me:1", 30.0, 0) == []
    for lease in first + rest:
        run = store.get_run(lease.run_id)
        assert (run.owner, run.status, run.lease_epoch) == ("me:1", "RUNNING", 1)
        assert near_db_now(store, run.heartbeat_at)
    for run_id in ("x-main", "x-nothing", "x-live", "x-succeeded", "x-failed", "x-cancelled"):
        assert store.get_run(run_id).lease_epoch == 0
    assert store.get_run("x-live").owner == "b:1"
    # a released lease is free again: claim_next takes it with the next epoch
    assert store.release_lease(first[0]) is True
    assert store.claim_next("you:2", 30.0, 5) == [Lease("c-target", "you:2", 2)]


def test_claim_next_from_4_stores_at_once_claims_each_run_once(store: RunStore) -> None:
    n_runs, n_claimers = 200, 4
    for i in range(n_runs):
        store.create_run(claimable(f"q{i:03d}", float(i % 17)), [])
    stores = [other_store(store) for _ in range(n_claimers)]
    start = threading.Barrier(n_claimers)
    claimed: list[list[Lease]] = [[] for _ in range(n_claimers)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start.wait()
            while True:
                got = stores[i].claim_next(f"c:{i}", 300.0, 1 + i % 3)
                if not got:
                    return
                assert len(got) <= 1 + i % 3
                claimed[i].extend(got)
        except BaseException as exc:   # surfaced below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n_claimers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in stores:
            if s is not store:
                s.close()
    assert errors == []
    every = [lease.run_id for leases in claimed for lease in leases]
    assert sorted(every) == [f"q{i:03d}" for i in range(n_runs)]   # each once: no run twice, none missed
    for i, leases in enumerate(claimed):
        for lease in leases:
            assert lease.owner == f"c:{i}" and lease.epoch == 1
    owners = {r.run_id: r.owner for r in store.list_runs(limit=1000)}
    assert all(owners[lease.run_id] == lease.owner for leases in claimed for lease in leases)


# -- the server's records ------------------------------------------------------------------

def walk_pages(store: RunStore, limit: int, **filters) -> list[str]:
    seen, before = [], None
    for _ in range(100):
        page = store.list_runs_page(limit=limit, before=before, **filters)
        assert len(page) <= limit
        seen += [r.run_id for r in page]
        if len(page) < limit:
            return seen
        before = (page[-1].created_at, page[-1].run_id)
    raise AssertionError("pagination never ended")


def test_list_runs_page_walks_every_run_once_newest_first(store: RunStore) -> None:
    statuses = ["SUCCEEDED", "FAILED", "RUNNING"]
    runs = []
    for i in range(23):
        run = full_run(f"p{i:02d}", float(i // 3), statuses[i % 3])   # three runs per created_at: ties
        run.name = "etl" if i % 2 else "ml"
        runs.append(run)
        store.create_run(run, [])
    newest = sorted(runs, key=lambda r: (r.created_at, r.run_id), reverse=True)
    assert walk_pages(store, 4) == [r.run_id for r in newest]
    assert walk_pages(store, 5, status="FAILED") == [r.run_id for r in newest if r.status == "FAILED"]
    assert walk_pages(store, 3, name="etl") == [r.run_id for r in newest if r.name == "etl"]
    both = [r.run_id for r in newest if r.name == "ml" and r.status == "SUCCEEDED"]
    assert both and walk_pages(store, 2, name="ml", status="SUCCEEDED") == both
    assert store.list_runs_page(limit=2, before=(3.0, "p10")) == [r for r in newest if (r.created_at, r.run_id) < (3.0, "p10")][:2]
    assert [r.run_id for r in store.list_runs_page(limit=3, before=(3.0, "p10"))] == ["p09", "p08", "p07"]
    assert store.list_runs_page(before=(0.0, "p00")) == []
    assert store.list_runs_page(limit=0) == []
    assert store.list_runs_page(name="nope") == []
    assert store.list_runs_page(limit=1)[0] == runs[-1]
    assert walk_pages(store, 4, since=5.0) == [r.run_id for r in newest if r.created_at >= 5.0]
    assert walk_pages(store, 2, since=2.0, name="etl", status="RUNNING") == [
        r.run_id for r in newest if r.created_at >= 2.0 and r.name == "etl" and r.status == "RUNNING"]


def test_count_runs_by_status_of_a_workflow_since_a_time(store: RunStore) -> None:
    assert store.count_runs() == {}
    statuses = ["SUCCEEDED", "FAILED", "RUNNING", "SUCCEEDED"]
    runs = []
    for i in range(14):
        run = full_run(f"c{i:02d}", float(i), statuses[i % 4])
        run.name = "etl" if i % 2 else "ml"
        runs.append(run)
        store.create_run(run, [])

    def expected(keep) -> dict[str, int]:
        counted: dict[str, int] = {}
        for r in runs:
            if keep(r):
                counted[r.status] = counted.get(r.status, 0) + 1
        return counted

    assert store.count_runs() == expected(lambda r: True) == {"SUCCEEDED": 7, "FAILED": 4, "RUNNING": 3}
    assert store.count_runs(name="etl") == expected(lambda r: r.name == "etl")
    assert store.count_runs(since=9.0) == expected(lambda r: r.created_at >= 9.0)
    assert store.count_runs(name="ml", since=4.0) == expected(lambda r: r.name == "ml" and r.created_at >= 4.0)
    assert store.count_runs(name="nope") == {} and store.count_runs(since=100.0) == {}


def test_tokens_by_hash_newest_first_and_revoked_once(store: RunStore) -> None:
    one = TokenRecord("t1", "ci", "submit", "a" * 64, created_at=10.0)
    two = TokenRecord("t2", "ops", "admin", "b" * 64, created_at=20.0)
    store.create_token(one)
    store.create_token(two)
    assert store.get_token("a" * 64) == one
    assert store.get_token("c" * 64) is None
    assert store.list_tokens() == [two, one]
    assert store.revoke_token("t1", 30.0) is True
    assert store.revoke_token("t1", 40.0) is False         # revoked already: the first time stays
    assert store.revoke_token("ghost", 40.0) is False
    assert store.get_token("a" * 64).revoked_at == 30.0
    assert store.get_token("b" * 64).revoked_at is None


def test_insert_run_once_records_the_key_and_the_run_together(store: RunStore) -> None:
    first = RunRecord("r1", "wf", created_at=1.0)
    assert store.insert_run_once(first, "k1", "h1", 1.0) == ("r1", "h1", True)
    assert store.get_run("r1") is not None
    # a replay (or a different body) under the same key: nothing inserted, the first kept
    assert store.insert_run_once(RunRecord("r2", "wf", created_at=2.0), "k1", "h2", 2.0) == ("r1", "h1", False)
    assert store.get_run("r2") is None
    # a new key naming a run id that exists: the key is kept for it, nothing replaced
    assert store.insert_run_once(RunRecord("r1", "other", created_at=3.0), "k2", "h3", 3.0) == ("r1", "h3", False)
    assert store.get_run("r1").name == "wf"


def test_insert_run_once_at_once_from_4_stores_inserts_one_run(store: RunStore) -> None:
    stores = [other_store(store) for _ in range(4)]
    start = threading.Barrier(len(stores))
    kept: list[tuple[str, str, bool]] = []

    def submit(i: int) -> None:
        start.wait()
        kept.append(stores[i].insert_run_once(RunRecord(f"run-{i}", "wf", created_at=float(i)), "key", "h", 1.0))

    try:
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in stores:
            if s is not store:
                s.close()
    assert sum(created for _, _, created in kept) == 1 and len({run_id for run_id, _, _ in kept}) == 1
    assert len(store.list_runs_page(limit=10)) == 1


def test_workflows_upsert_by_name_keeping_the_first_created_at(store: RunStore) -> None:
    spec = {"name": "etl", "components": [{"id": "a", "fn": "m:f", "args": [1, 2.5]}]}
    store.put_workflow(WorkflowRecord("etl", spec=spec, created_at=10.0, updated_at=10.0))
    store.put_workflow(WorkflowRecord("a-first", target="pkg.mod:flow", created_at=11.0, updated_at=11.0))
    assert store.get_workflow("etl") == WorkflowRecord("etl", spec=spec, created_at=10.0, updated_at=10.0)
    assert store.get_workflow("nope") is None
    store.put_workflow(WorkflowRecord("etl", spec={"v": 2}, target="", created_at=50.0, updated_at=50.0))
    assert store.get_workflow("etl") == WorkflowRecord("etl", spec={"v": 2}, created_at=10.0, updated_at=50.0)
    assert [w.name for w in store.list_workflows()] == ["a-first", "etl"]
    assert store.list_workflows()[0].target == "pkg.mod:flow"


def test_servers_beat_on_the_db_clock_list_and_remove(store: RunStore) -> None:
    rec = ServerRecord("s1", "http://h1:8080", host="h1", pid=11, started_at=5.0, heartbeat_at=1.0,
                       info={"version": "1", "ray": False})
    beat = store.beat_server(rec)
    assert beat != 1.0 and near_db_now(store, beat)
    store.beat_server(ServerRecord("s0", "http://h0:8080", started_at=6.0))
    servers = store.list_servers()
    assert [s.server_id for s in servers] == ["s0", "s1"]
    assert servers[1] == ServerRecord("s1", "http://h1:8080", host="h1", pid=11, started_at=5.0,
                                      heartbeat_at=beat, info={"version": "1", "ray": False})
    time.sleep(0.01)
    again = store.beat_server(ServerRecord("s1", "http://h1:9090", host="h1", pid=11, started_at=5.0))
    assert again >= beat
    s1 = store.list_servers()[1]
    assert (s1.url, s1.heartbeat_at, s1.info) == ("http://h1:9090", again, {})
    store.remove_server("s0")
    store.remove_server("ghost")
    assert [s.server_id for s in store.list_servers()] == ["s1"]


def test_delete_runs_removes_finished_runs_with_their_rows_and_keeps_the_rest(store: RunStore) -> None:
    for run_id, status in (("done", "SUCCEEDED"), ("failed", "FAILED"), ("live", "RUNNING"), ("queued", "PENDING")):
        store.insert_run(RunRecord(run_id, "wf", status, created_at=1.0))
        store.write_batch([ComponentRecord(run_id, "a", state="SUCCEEDED")],
                          [EventRecord(run_id, 1, 1.0, "run_state", None, {"state": status})], {})
    store.insert_run_once(RunRecord("keyed", "wf", "PENDING", created_at=2.0), "k1", "h1", 2.0)
    store.update_run("keyed", status="CANCELLED")
    assert store.delete_runs(["done", "failed", "live", "queued", "keyed", "unknown", "done"]) == 3
    assert {r.run_id for r in store.list_runs(limit=10)} == {"live", "queued"}
    for gone in ("done", "failed", "keyed"):
        assert store.get_run(gone) is None and store.get_components(gone) == [] and store.get_events(gone) == []
    assert [c.component_id for c in store.get_components("live")] == ["a"] and len(store.get_events("live")) == 1
    # the idempotency key went with its run: the same key records a new run
    assert store.insert_run_once(RunRecord("again", "wf", created_at=3.0), "k1", "h2", 3.0) == ("again", "h2", True)
