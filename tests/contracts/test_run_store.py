"""The RunStore contract, run against every adapter.

To add an adapter, add one entry to ``ADAPTERS``: a name and a factory taking pytest's
``request`` (for the fixtures it needs: ``tmp_path``, ``postgres_url``) and returning a
fresh, empty store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from rayflow.store.memory import MemoryStore
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord, RunStore
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
