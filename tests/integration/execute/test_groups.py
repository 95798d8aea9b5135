"""Fan-out/fan-in groups under both executors: each group's max_concurrency, measured from
the members' recorded start and end times, and each group failure strategy inside each
run failure strategy, with a failure inside one member."""

from __future__ import annotations

import pytest

import rayflow as rf
from tests.fns import execute as fns


def states(handle) -> dict[str, str]:
    return {cid: c["state"] for cid, c in handle.metrics()["components"].items()}


def most_at_once(components: dict, prefix: str) -> int:
    """The most members of ``prefix`` running at one instant, from their recorded spans."""
    spans = [(c["started_at"], c["ended_at"]) for cid, c in components.items()
             if cid.startswith(prefix) and c["started_at"] is not None]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


@rf.workflow
def bounded_fan(n: int = 6, cap: int = 2, pause: float = 0.3):
    members = rf.fan_out(fns.sleepy, [pause] * n, max_concurrency=cap, name="nap", kwargs={"value": 1})
    chained = [fns.inc.options(id=f"after_{i}")(m) for i, m in enumerate(members)]   # chains through the group
    return fns.total(chained)


@pytest.mark.parametrize("cap", [1, 2])
def test_a_groups_max_concurrency_is_never_exceeded(executor, service, cap):
    handle = rf.submit(bounded_fan, executor=executor, n=6, cap=cap)
    assert handle.result(timeout=120) == 12
    components = handle.metrics()["components"]
    assert most_at_once(components, "nap_") <= cap
    assert set(states(handle).values()) == {"SUCCEEDED"}


@rf.workflow
def grouped_by_block(n: int = 4):
    parts = []
    for i in range(n):
        with rf.group("block", max_concurrency=1):
            parts.append(fns.sleepy.options(id=f"blk_{i}")(0.2, i))
    free = fns.sleepy.options(id="free")(0.2, 100)   # outside the group: not bounded by it
    return fns.add(*parts, free)


def test_the_context_manager_tags_every_component_built_inside(executor, service):
    plan = rf.explain(grouped_by_block, n=4)
    assert plan.groups[0].members == ("blk_0", "blk_1", "blk_2", "blk_3")
    handle = rf.submit(grouped_by_block, executor=executor, n=4)
    assert handle.result(timeout=60) == 106
    assert most_at_once(handle.metrics()["components"], "blk_") == 1


def _group_wf(group_strategy: str | None):
    """src -> (g_bad, g_ok1, g_ok2 in group g, one at a time) ; g_bad -> after_bad ;
    g_ok1, g_ok2 -> joined ; indep on its own."""
    src = fns.const.options(id="src")(1)
    with rf.group("g", max_concurrency=1, failure_strategy=group_strategy):
        bad = fns.boom.options(id="g_bad")(src)
        ok1 = fns.inc.options(id="g_ok1")(src)
        ok2 = fns.inc.options(id="g_ok2")(src)
    after = fns.inc.options(id="after_bad")(bad)
    joined = fns.add.options(id="joined")(ok1, ok2)
    indep = fns.sleepy.options(id="indep")(0.5, 7)
    return {"after": after, "joined": joined, "indep": indep}


@rf.workflow(failure_strategy="fail_fast")
def run_fail_fast(group_strategy: str | None = None):
    return _group_wf(group_strategy)


@rf.workflow(failure_strategy="continue_on_error")
def run_continue(group_strategy: str | None = None):
    return _group_wf(group_strategy)


CASES = [
    # run strategy, group strategy, expected states (a set: either may happen, by executor timing)
    (run_fail_fast, "continue_on_error", {
        "src": {"SUCCEEDED"}, "g_bad": {"FAILED"}, "after_bad": {"UPSTREAM_FAILED"},
        "g_ok1": {"SUCCEEDED"}, "g_ok2": {"SUCCEEDED"}, "joined": {"SUCCEEDED"}, "indep": {"SUCCEEDED"}}),
    (run_continue, "fail_fast", {
        "src": {"SUCCEEDED"}, "g_bad": {"FAILED"}, "after_bad": {"UPSTREAM_FAILED"},
        "g_ok1": {"SKIPPED"}, "g_ok2": {"SKIPPED"}, "joined": {"UPSTREAM_FAILED"}, "indep": {"SUCCEEDED"}}),
    (run_fail_fast, "fail_fast", {
        "src": {"SUCCEEDED"}, "g_bad": {"FAILED"}, "after_bad": {"SKIPPED", "CANCELLED"},
        "g_ok1": {"SKIPPED"}, "g_ok2": {"SKIPPED"}, "joined": {"SKIPPED", "CANCELLED"},
        "indep": {"SUCCEEDED", "CANCELLED"}}),
    (run_continue, "continue_on_error", {
        "src": {"SUCCEEDED"}, "g_bad": {"FAILED"}, "after_bad": {"UPSTREAM_FAILED"},
        "g_ok1": {"SUCCEEDED"}, "g_ok2": {"SUCCEEDED"}, "joined": {"SUCCEEDED"}, "indep": {"SUCCEEDED"}}),
]


@pytest.mark.parametrize("wf,group_strategy,expected", CASES,
                         ids=["continue_group_in_fail_fast_run", "fail_fast_group_in_continue_run",
                              "fail_fast_group_in_fail_fast_run", "continue_group_in_continue_run"])
def test_a_failing_member_under_each_group_and_run_strategy(executor, service, wf, group_strategy, expected):
    handle = rf.submit(wf, executor=executor, group_strategy=group_strategy)
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    assert info.value.failed == ["g_bad"]          # the run ends FAILED, naming the member
    got = states(handle)
    for cid, allowed in expected.items():
        assert got[cid] in allowed, (cid, got)
    if group_strategy == "fail_fast" and wf is run_continue:
        assert "stopped: member 'g_bad' of group 'g' failed" in handle.metrics()["components"]["g_ok1"]["error"]


@rf.workflow(failure_strategy="continue_on_error")
def unbounded_fail_fast_group(pause: float = 3.0):
    with rf.group("g", failure_strategy="fail_fast"):
        members = [fns.boom.options(id="m_bad")(None)]
        members += [fns.sleepy.options(id=f"m_slow{i}")(pause, i) for i in range(2)]
    outside = fns.inc.options(id="outside")(fns.const.options(id="src")(1))
    return {"joined": fns.add(*members), "outside": outside}


def test_a_fail_fast_group_cancels_its_members_in_flight(executor, service):
    handle = rf.submit(unbounded_fail_fast_group, executor=executor, pause=3.0)
    assert handle.wait(timeout=60) == "FAILED"
    got = states(handle)
    assert got["m_bad"] == "FAILED"
    slow = {got["m_slow0"], got["m_slow1"]}
    # all three are handed over at once; the failing one runs first on the local executor
    # (same priority, built first), so the slow ones are cancelled there before they start
    assert slow == {"CANCELLED"}
    assert got["add"] == "UPSTREAM_FAILED"
    assert got["src"] == got["outside"] == "SUCCEEDED"
