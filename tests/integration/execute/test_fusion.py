"""Fused groups end to end, on both executors (the local one runs members one by one: it
must give the same results and states), and what only Ray shows: one call per group."""

from __future__ import annotations

import io
import time

import pytest

import rayflow as rf
from rayflow.cli import render
from rayflow.service import get_service
from tests.fns import fusion as ff


def states(handle) -> dict[str, str]:
    return {cid: c["state"] for cid, c in handle.metrics()["components"].items()}


def test_results_are_those_of_the_unfused_run(executor, service):
    plan = rf.explain(ff.mixed, fuse=True)
    # 18 tiny fusible components, all independent trees or joining them: one call, each tree whole
    assert len(plan.fused) == 1 and len(plan.fused[0]) == 18
    group = plan.fused[0]
    assert group[:5] == ("a0", "a1", "a2", "a3", "a4") or "".join(group).find("a0a1a2a3a4") >= 0
    assert [m for m in group if m in {"h", "fan0", "fan1", "fan2", "join", "split", "inner"}] == [
        "h", "fan0", "fan1", "fan2", "join", "split", "inner"]
    assert rf.explain(ff.mixed, fuse=False).fused == ()
    fused = rf.run(ff.mixed, executor=executor, fuse=True)
    assert fused == rf.run(ff.mixed, executor=executor, fuse=False)
    assert fused == {"chain": 6, "inner": 279, "outside": 192, "total": 150}


def test_every_member_has_its_own_state_attempts_and_timings(executor, service):
    handle = rf.submit(ff.mixed, executor=executor, fuse=True)
    handle.result(timeout=120)
    comps = handle.metrics()["components"]
    fused = [m for g in rf.explain(ff.mixed, fuse=True).fused for m in g]
    for cid in fused:
        c = comps[cid]
        assert c["state"] == "SUCCEEDED" and c["attempts"] == 1, (cid, c)
        assert c["started_at"] <= c["ended_at"] and c["duration_s"] is not None
        assert c["queued_s"] is not None and c["node_id"] and c["worker_id"]
    chain = [comps[f"a{i}"] for i in range(5)]
    assert all(x["ended_at"] <= y["started_at"] for x, y in zip(chain, chain[1:], strict=False))   # in order
    service.flush()
    stored = {c.component_id: c for c in service.store.get_components(handle.run_id)}
    assert all(stored[cid].state == "SUCCEEDED" and stored[cid].duration_s is not None for cid in fused)
    assert stored["a3"].features["fn"].endswith("inc")   # what the resource model learns from


def test_a_failure_inside_a_group_under_continue_on_error(executor, service):
    handle = rf.submit(ff.continue_wf, executor=executor)
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    assert info.value.failed == ["b"]
    assert "ValueError: boom inside the group" in info.value.errors["b"]
    # d does not read b: it runs; out_d reads d's output from the group: it runs too
    assert states(handle) == {"a": "SUCCEEDED", "b": "FAILED", "c": "UPSTREAM_FAILED", "d": "SUCCEEDED",
                              "out_c": "UPSTREAM_FAILED", "out_d": "SUCCEEDED"}
    service.flush()
    stored = {c.component_id: c for c in service.store.get_components(handle.run_id)}
    assert stored["b"].state == "FAILED" and stored["b"].attempts == 1 and stored["b"].duration_s is not None
    assert stored["c"].error == "upstream 'b' failed"


def test_a_failure_inside_a_group_under_fail_fast(executor, service):
    handle = rf.submit(ff.fail_fast_wf, executor=executor)
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    assert info.value.failed == ["b"]
    st = states(handle)
    assert st["a"] == "SUCCEEDED" and st["b"] == "FAILED"
    assert st["c"] in {"CANCELLED", "SKIPPED"} and st["out_c"] in {"CANCELLED", "SKIPPED"}
    if executor == "ray":   # the group's members come back together: d had run, and it counts
        assert st["d"] == "SUCCEEDED" and st["out_d"] in {"CANCELLED", "SUCCEEDED"}
    else:                   # one at a time: d may not have started when b failed
        assert st["d"] in {"SUCCEEDED", "CANCELLED"} and st["out_d"] in {"SKIPPED", "CANCELLED"}


def test_a_timeout_inside_a_group(executor, service):
    handle = rf.submit(ff.timeout_wf, executor=executor)
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    assert "timeout_s=0.5" in info.value.errors["slow"]
    assert states(handle) == {"a": "SUCCEEDED", "slow": "TIMED_OUT", "after": "UPSTREAM_FAILED",
                              "fine": "SUCCEEDED"}
    slow = handle.metrics()["components"]["slow"]
    assert 0.4 < slow["duration_s"] < 5


def test_retry_exceptions_are_retried_inside_the_group(executor, service, tmp_path):
    (tmp_path / "flaky-t2").write_text("2")
    handle = rf.submit(ff.ledgered, executor=executor, folder=str(tmp_path), retries=2)
    assert handle.result(timeout=60) == 4
    comps = handle.metrics()["components"]
    assert comps["t2"]["attempts"] == 3 and comps["t1"]["attempts"] == 1
    assert ff.counts(tmp_path) == {"t0": 1, "t1": 1, "t2": 3, "t3": 1}


def test_a_large_output_inside_a_group_is_checkpointed(executor, service):
    handle = rf.submit(ff.big_inside, executor=executor)
    assert handle.result(timeout=60) == 200_001
    service.flush()
    kept = get_service().checkpoint_store().index(handle.run_id)
    assert {"blob", "size"} <= set(kept)


def test_resume_reruns_only_what_has_no_checkpoint(executor, service, tmp_path):
    (tmp_path / "fail-t2").touch()
    handle = rf.submit(ff.ledgered, executor=executor, folder=str(tmp_path))
    assert handle.wait(60) == "FAILED"
    assert states(handle)["t1"] == "SUCCEEDED" and states(handle)["t3"] in {"UPSTREAM_FAILED", "SKIPPED",
                                                                           "CANCELLED"}
    (tmp_path / "fail-t2").unlink()
    service.flush()
    again = rf.resume(handle.run_id, executor=executor)
    assert again.result(timeout=60) == 4
    assert ff.counts(tmp_path) == {"t0": 1, "t1": 1, "t2": 2, "t3": 1}   # t0, t1 came from checkpoints


def test_on_ray_a_group_is_one_call(service, ray_session, tmp_path):
    handle = rf.submit(ff.ledgered, executor="ray", folder=str(tmp_path))
    assert handle.result(timeout=60) == 4
    assert len({pid for _, pid in ff.ledger(tmp_path)}) == 1   # t0..t3 ran in one worker process
    comps = handle.metrics()["components"]
    assert len({comps[f"t{i}"]["worker_id"] for i in range(4)}) == 1


def test_max_concurrency_runs_the_same_workflow_unfused(service, ray_session):
    assert rf.explain(ff.mixed_bounded, fuse=True).fused == ()
    assert rf.run(ff.mixed_bounded, executor="ray", fuse=True) == {"chain": 6, "inner": 279, "outside": 192,
                                                                    "total": 150}


def test_explain_prints_the_groups():
    plan = rf.explain(ff.mixed, fuse=True)
    out = io.StringIO()
    render.print_plan(render.Console(file=out, width=200), plan)
    text = out.getvalue()
    assert "Fused (each group one Ray task): 1 group, 18 components; largest 18" in text
    assert ", ... (18 in all)" in text


def test_cancel_stops_a_group_in_flight(service, ray_session, tmp_path):
    """(The local executor runs a call in the driver's thread: a cancel is seen between calls.)"""
    handle = rf.submit(ff.slow_group, executor="ray", folder=str(tmp_path))
    deadline = time.monotonic() + 60
    while not ff.ledger(tmp_path) and time.monotonic() < deadline:   # the group is running
        time.sleep(0.05)
    started = time.monotonic()
    handle.cancel()
    assert handle.wait(timeout=30) == "CANCELLED"
    assert time.monotonic() - started < 20   # the sleeping member was interrupted, not waited for
    st = states(handle)
    assert st["slow"] == "CANCELLED" and st["last"] == "CANCELLED" and st["end"] == "CANCELLED"
    assert st["first"] in {"CANCELLED", "SUCCEEDED"}


@pytest.mark.parametrize("fails", ["member", "source"])
def test_a_packed_group_reading_two_groups_loses_only_the_readers_of_a_failure(executor, service, fails):
    wf = ff.packed(fails)
    groups = {frozenset(g) for g in rf.explain(wf).fused}
    assert {frozenset({"p0", "p1"}), frozenset({"q0", "q1"}), frozenset({"r0", "r1"})} <= groups
    if fails == "member":   # one call reads three groups
        assert frozenset({"u", "us", "v", "w"}) in groups
    else:                   # behind the q chain stands src2: nothing that does not read it packs with it
        assert not any({"u", "v"} <= g or {"u", "w"} <= g for g in groups)
    handle = rf.submit(wf, executor=executor)
    with pytest.raises(rf.WorkflowFailed):
        handle.result(timeout=120)
    failed = "q0" if fails == "member" else "src2"
    ok = ["p0", "p1", "r0", "r1", "u", "us", "out_u"]
    expected = {**dict.fromkeys(ok, "SUCCEEDED"),
                **dict.fromkeys(["q0", "q1", "v", "w", "out_v", "out_w"], "UPSTREAM_FAILED"), failed: "FAILED"}
    assert states(handle) == expected
    assert handle.metrics()["components"]["us"]["duration_s"] >= 0.9   # it ran: its call was not cancelled
