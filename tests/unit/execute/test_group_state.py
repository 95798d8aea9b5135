"""Groups in the pure run state: each group's max_concurrency and failure strategy
(rayflow.execute.state), and their checks in the plan and the DSL. No Ray."""

from __future__ import annotations

import pytest

import rayflow as rf
from rayflow.core.errors import SpecError, UnknownComponentError
from rayflow.core.groups import Group
from rayflow.execute.state import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    UPSTREAM_FAILED,
    RunState,
)
from rayflow.graph import Dag
from tests.fns import execute as fns

META = {"started_at": 1.0, "ended_at": 2.0}

# src -> m0..m3 (the group) -> join ; m0 -> after0 ; solo (independent)
DEPS = {"src": [], "m0": ["src"], "m1": ["src"], "m2": ["src"], "m3": ["src"],
        "after0": ["m0"], "join": ["m1", "m2", "m3"], "solo": []}
ORDER = ("src", "m0", "m1", "m2", "m3", "after0", "join", "solo")
MEMBERS = ("m0", "m1", "m2", "m3")


def make(cap=None, group_strategy=None, run_strategy="fail_fast", eager=False, run_cap=None) -> RunState:
    group = Group("g", MEMBERS, cap, group_strategy)
    return RunState(Dag(DEPS), ORDER, failure_strategy=run_strategy, eager=eager, max_concurrency=run_cap,
                    groups=(group,))


def in_flight_members(s: RunState) -> set[str]:
    return s.in_flight & set(MEMBERS)


@pytest.mark.parametrize("eager", [False, True])
def test_a_groups_bound_holds_and_a_finished_member_frees_its_slot(eager):
    s = make(cap=2, eager=eager)
    taken = s.take(0.0)
    if not eager:
        assert taken == ["src", "solo"]
        assert s.succeeded("src", META)
        taken = s.take(1.0)
    assert [n for n in taken if n in MEMBERS] == ["m0", "m1"]   # critical path first, then order
    assert s.state_of("m2") == PENDING and s.state_of("m3") == PENDING
    assert s.take(1.5) == []
    assert s.succeeded("m1", META)
    assert s.take(2.0) == ["m2"]
    assert len(in_flight_members(s)) == 2
    assert s.succeeded("m0", META) and s.succeeded("m2", META)
    more = s.take(3.0)
    assert "m3" in more and len(in_flight_members(s)) == 1


def test_eager_mode_releases_the_downstream_of_a_bounded_member_only_once_it_is_taken():
    s = make(cap=1, eager=True)
    taken = s.take(0.0)
    assert "m0" in taken and "after0" in taken          # m0 taken: its child may chain on it
    assert "join" not in taken and "m1" not in taken    # join waits for m1..m3 to be taken
    for member in ("m0", "m1", "m2"):
        assert s.succeeded(member, META)
        assert [n for n in s.take(1.0) if n in MEMBERS] == [f"m{int(member[1]) + 1}"]
    assert s.state_of("join") == RUNNING                 # taken together with the last member


def test_the_run_bound_still_holds_with_a_group():
    s = make(cap=3, run_cap=2)
    assert s.take(0.0) == ["src", "solo"]
    assert s.succeeded("src", META)
    assert s.take(1.0) == ["m0"]                         # run bound: solo and m0 in flight


def test_continue_on_error_group_in_a_fail_fast_run_contains_the_failure():
    s = make(group_strategy="continue_on_error")
    s.take(0.0)
    s.succeeded("src", META)
    s.take(1.0)
    assert s.failed("m0", "ValueError: boom", META) == []
    assert s.state_of("after0") == UPSTREAM_FAILED
    assert {s.state_of(m) for m in ("m1", "m2", "m3")} == {RUNNING}   # the others go on
    assert s.state_of("solo") == RUNNING
    for n in ("m1", "m2", "m3"):
        s.succeeded(n, META)
    assert s.take(2.0) == ["join"]
    s.succeeded("join", META)
    s.succeeded("solo", META)
    assert s.done and s.run_status() == "FAILED"


def test_a_failure_outside_a_continue_group_still_stops_a_fail_fast_run():
    s = make(group_strategy="continue_on_error")
    s.take(0.0)
    s.succeeded("src", META)
    s.take(1.0)
    cancelled = s.failed("solo", "ValueError: boom", META)
    assert set(cancelled) == set(MEMBERS)
    assert {s.state_of(m) for m in MEMBERS} == {CANCELLED}


@pytest.mark.parametrize("eager", [False, True])
def test_fail_fast_group_in_a_continue_run_stops_only_the_group(eager):
    s = make(cap=2, group_strategy="fail_fast", run_strategy="continue_on_error", eager=eager)
    s.take(0.0)
    s.succeeded("src", META)
    s.take(1.0)
    cancel = s.failed("m0", "ValueError: boom", META)
    assert s.state_of("m0") == FAILED
    assert s.state_of("m1") == CANCELLED and "m1" in cancel       # in flight
    assert s.state_of("m2") == SKIPPED and s.state_of("m3") == SKIPPED   # waiting for a slot
    assert "group 'g'" in s.nodes["m2"].error and "'m0'" in s.nodes["m2"].error
    assert s.state_of("join") == UPSTREAM_FAILED and s.state_of("after0") == UPSTREAM_FAILED
    assert cancel == (["after0", "m1"] if eager else ["m1"])      # downstream first
    assert s.state_of("solo") == RUNNING                           # independent: goes on
    assert s.take(2.0) == []
    s.succeeded("solo", META)
    assert s.done and s.run_status() == "FAILED"
    assert s.counts()[SUCCEEDED] == 2                              # src and solo


def test_a_member_that_already_succeeded_stays_succeeded_when_its_fail_fast_group_stops():
    s = make(group_strategy="fail_fast", run_strategy="continue_on_error")
    s.take(0.0)
    s.succeeded("src", META)
    s.take(1.0)
    s.succeeded("m1", META)
    s.failed("m0", "ValueError: boom", META)
    assert s.state_of("m1") == SUCCEEDED
    assert s.state_of("m2") == CANCELLED and s.state_of("join") == UPSTREAM_FAILED


def test_same_strategy_groups_behave_as_without_a_group():
    s = make(group_strategy="fail_fast")   # fail_fast in a fail_fast run: everything stops
    s.take(0.0)
    s.succeeded("src", META)
    s.take(1.0)
    s.failed("m0", "ValueError: boom", META)
    assert s.state_of("solo") == CANCELLED and s.done


def test_cancelling_the_run_empties_the_groups_queues():
    s = make(cap=1)
    s.take(0.0)
    s.succeeded("src", META)
    s.take(1.0)
    s.cancel()
    assert s.done and s.take(2.0) == []
    assert {s.state_of(m) for m in MEMBERS} == {CANCELLED}


# -- checks in the plan and the DSL ------------------------------------------------------


def test_group_options_and_membership_are_checked():
    with pytest.raises(SpecError, match="group 'g' field 'max_concurrency'"):
        Group("g", (), 0)
    with pytest.raises(SpecError, match="group 'g' field 'failure_strategy'"):
        Group("g", (), None, "sometimes")

    @rf.workflow
    def bad_member():
        return fns.const(1)

    blueprint = bad_member.build()
    from dataclasses import replace

    with pytest.raises(UnknownComponentError, match="group 'x' names unknown component 'nope'"):
        replace(blueprint, groups=(Group("x", ("nope",)),))
    with pytest.raises(SpecError, match="in two groups"):
        replace(blueprint, groups=(Group("x", ("const",)), Group("y", ("const",))))


def test_groups_do_not_nest_and_reopen_only_with_the_same_options():
    @rf.workflow
    def nested():
        with rf.group("a"), rf.group("b"):
            return fns.const(1)

    with pytest.raises(SpecError, match="groups do not nest"):
        nested.build()

    @rf.workflow
    def reopened():
        out = []
        for i in range(3):
            with rf.group("a", max_concurrency=2):
                out.append(fns.const(i))
        return out

    plan = rf.explain(reopened)
    assert plan.groups == (Group("a", ("const", "const_1", "const_2"), 2, None),)
    assert plan.to_dict()["groups"][0]["members"] == ["const", "const_1", "const_2"]

    @rf.workflow
    def changed():
        with rf.group("a", max_concurrency=2):
            fns.const(1)
        with rf.group("a", max_concurrency=3):
            return fns.const(2)

    with pytest.raises(SpecError, match="opened again with other options"):
        changed.build()


def test_fan_out_names_its_members_and_refuses_a_list_known_only_at_run_time():
    @rf.workflow
    def fanned(n: int = 3):
        first = rf.fan_out(fns.inc, list(range(n)), max_concurrency=2, name="score")
        more = rf.fan_out(fns.inc, [10], max_concurrency=2, name="score")
        return fns.total(first + more)

    plan = rf.explain(fanned, n=3)
    assert plan.groups[0].members == ("score_0", "score_1", "score_2", "score_3")
    assert plan.dag.deps("total") == ("score_0", "score_1", "score_2", "score_3")

    @rf.workflow
    def dynamic():
        return rf.fan_out(fns.inc, fns.const([1, 2]))

    with pytest.raises(SpecError, match="use rf.map"):
        dynamic.build()
    assert rf.fan_out(fns.inc, [1, 2]) == [2, 3]   # outside a workflow: plain calls


def test_a_stream_with_a_member_in_a_bounded_group_does_not_stream():
    @rf.workflow
    def chain(n: int = 100):
        with rf.group("bounded", max_concurrency=1):
            scaled = fns.scale(fns.numbers(n))
        return fns.keep_key(scaled, key=1)

    @rf.workflow
    def free_chain(n: int = 100):
        return fns.keep_key(fns.scale(fns.numbers(n)), key=1)

    assert rf.explain(free_chain).streams == (("scale", "keep_key"),)
    assert rf.explain(chain).streams == ()


def test_a_spec_declares_groups_in_a_groups_block():
    from rayflow.spec import WorkflowSpec

    spec = WorkflowSpec.from_text("""
name: grouped
failure_strategy: continue_on_error
components:
  - {id: a, function: "tests.fns.execute:const", config: {x: 1}}
  - {id: b, function: "tests.fns.execute:const", config: {x: 2}}
  - {id: c, function: "tests.fns.execute:const", config: {x: 3}}
groups:
  - {name: consts, members: [a, b], max_concurrency: 1, failure_strategy: fail_fast}
""")
    plan = rf.explain(spec)
    assert plan.groups == (Group("consts", ("a", "b"), 1, "fail_fast"),)
    bad = spec.model_dump(by_alias=True)
    bad["groups"][0]["members"] = ["a", "zz"]
    with pytest.raises(UnknownComponentError, match="group 'consts' names unknown component 'zz'"):
        rf.explain(WorkflowSpec.model_validate(bad))
    bad["groups"][0].update(members=["a"], max_concurrency=0)
    with pytest.raises(SpecError, match="groups.0.max_concurrency"):
        WorkflowSpec.model_validate(bad)
