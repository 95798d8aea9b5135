"""The run recorder: marks changes, hands rows to the writer when drained, keeps counts."""

from __future__ import annotations

from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.template import NodeRef
from rayflow.execute.state import RunState
from rayflow.plan import make_plan
from rayflow.runs.recorder import RunRecorder
from rayflow.store.memory import MemoryStore
from rayflow.store.port import RunRecord
from rayflow.store.writer import StoreWriter


def ident(x=None):
    return x


def setup():
    calls = {"a": Call("a", ident, (1,)), "b": Call("b", ident, (NodeRef("a"),)), "c": Call("c", ident, (NodeRef("a"),))}
    plan = make_plan(Blueprint("wf", calls, output=NodeRef("b")))
    store = MemoryStore()
    run = RunRecord("r1", "wf")
    store.create_run(run, [])
    writer = StoreWriter(store, flush_interval_s=60.0)
    recorder = RunRecorder(run, plan, writer)
    state = RunState(plan.dag, plan.order)
    return plan, store, writer, recorder, state


def meta(t: float) -> dict:
    return {"started_at": t, "ended_at": t + 1.0, "cpu_s": 0.5, "attempt": 0}


def test_rows_are_written_once_per_write_in_their_latest_state():
    _, store, writer, recorder, state = setup()
    written: list[tuple[str, str]] = []
    upsert = store.upsert_components
    store.upsert_components = lambda recs: (written.extend((r.component_id, r.state) for r in recs), upsert(recs))
    recorder.start()
    assert writer.flush(5)
    assert sorted(written) == [("a", "PENDING"), ("b", "PENDING"), ("c", "PENDING")]
    written.clear()
    for cid in state.take(10.0):           # a: RUNNING, then SUCCEEDED, before the next write
        recorder.on_change(state, [cid])
    state.succeeded("a", meta(11.0))
    recorder.on_change(state, state.drain_changed())
    for cid in state.take(12.0):
        state.succeeded(cid, meta(13.0))
    recorder.on_change(state, state.drain_changed())
    assert writer.flush(5)
    assert sorted(written) == [("a", "SUCCEEDED"), ("b", "SUCCEEDED"), ("c", "SUCCEEDED")]   # once each
    rows = {c.component_id: c for c in store.get_components("r1")}
    assert rows["a"].duration_s == 1.0 and rows["b"].queued_s == 1.0   # ready at 12 (a ended), started 13
    writer.close()


def test_records_and_counts_follow_the_state_without_a_drain():
    _, _, writer, recorder, state = setup()
    for cid in state.take(0.0):
        recorder.on_change(state, [cid])
    assert recorder.counts() == {"PENDING": 2, "QUEUED": 1}     # handed over, not begun
    assert state.began("a", 0.5)
    recorder.on_change(state, state.drain_changed())
    assert recorder.counts() == {"PENDING": 2, "RUNNING": 1}
    assert {r.component_id: r for r in recorder.records()}["a"].started_at == 0.5
    state.failed("a", "ValueError: x", meta(1.0))
    recorder.on_change(state, state.drain_changed())
    by_id = {r.component_id: r for r in recorder.records()}
    assert by_id["a"].state == "FAILED" and by_id["a"].error == "ValueError: x"
    assert recorder.counts() == {"FAILED": 1, "SKIPPED": 2}
    writer.close()


def test_only_notable_outcomes_become_events():
    _, store, writer, recorder, state = setup()
    recorder.run_event("RUNNING")
    for cid in state.take(0.0):
        state.succeeded(cid, meta(0.0))
    for cid in state.take(1.0):
        if cid == "b":
            state.succeeded(cid, {**meta(1.0), "attempt": 1})   # a success after a retry
        else:
            state.failed(cid, "boom", meta(1.0))
    recorder.on_change(state, state.drain_changed())
    assert writer.flush(5)
    events = [(e.kind, e.component_id, e.data.get("state")) for e in store.get_events("r1")]
    assert events == [("run_state", None, "RUNNING"), ("component_state", "b", "SUCCEEDED"),
                      ("component_state", "c", "FAILED")] or events == [
        ("run_state", None, "RUNNING"), ("component_state", "c", "FAILED"), ("component_state", "b", "SUCCEEDED")]
    assert [e.seq for e in store.get_events("r1")] == [1, 2, 3]
    writer.close()


def test_a_connector_call_that_retried_or_opened_a_circuit_is_an_event():
    _, store, writer, recorder, state = setup()
    http = {"connector": {"http": {"requests": 9, "retries": 3, "failures": 0, "breaker_opened": 1,
                                   "breaker": {"http://api:80": "closed"}}}}
    quiet = {"connector": {"sql": {"statements": 1, "retries": 0, "rows_read": 10}}}
    for cid in state.take(0.0):
        state.succeeded(cid, {**meta(0.0), "outcome": quiet})
    for cid in state.take(1.0):
        state.succeeded(cid, {**meta(1.0), "outcome": http if cid == "b" else quiet})
    recorder.on_change(state, state.drain_changed())
    assert writer.flush(5)
    events = [(e.kind, e.component_id, e.data) for e in store.get_events("r1")]
    assert events == [("connector", "b", {"http": {"retries": 3, "breaker_opened": 1,
                                                  "breaker": {"http://api:80": "closed"}}})]
    writer.close()


def test_a_final_record_is_made_once_for_the_writer_and_the_metrics_until_the_run_settles():
    _, store, writer, recorder, state = setup()
    recorder.start()
    for cid in state.take(0.0):
        state.succeeded(cid, meta(0.0))
    recorder.on_change(state, state.drain_changed())
    first = {r.component_id: r for r in recorder.records(features=False)}
    assert first["a"].state == "SUCCEEDED" and first["a"].features["n_up"] == 0   # final: made with its features
    assert first["b"].state == "PENDING" and first["b"].features == {}             # live: made fresh, as asked
    assert writer.flush(5)
    rows = {c.component_id: c for c in store.get_components("r1")}
    assert rows["a"].state == "SUCCEEDED" and rows["a"].features["fn"].endswith("ident")
    again = {r.component_id: r for r in recorder.records()}
    assert again["a"] is first["a"] and again["b"] is not first["b"]   # the writer's drain shared a's
    recorder.settled()
    assert {r.component_id: r for r in recorder.records()}["a"] is not first["a"]   # let go; made again
    for cid in state.take(1.0):
        state.failed(cid, "ValueError: x", meta(1.0))
    recorder.on_change(state, state.drain_changed())
    later = {r.component_id: r for r in recorder.records()}
    assert later["b"].state == "FAILED" and later["b"].error == "ValueError: x"   # a change is never hidden
    writer.close()
