"""Which components are fused, and into which groups (pure planning: rayflow.plan.fusion)."""

from __future__ import annotations

import pytest

import rayflow as rf
from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.errors import SpecError
from rayflow.core.options import ComponentOptions, normalize
from rayflow.core.template import NodeRef
from rayflow.plan import fusion, make_plan
from rayflow.spec import WorkflowSpec
from rayflow.spec.convert import to_blueprint

FUSE = normalize(ComponentOptions(fuse=True), component="f")


def step(x=0):
    return x


def leaf():
    return 1


def plan_of(calls: dict, output, **kw):
    return make_plan(Blueprint("w", calls, output=output, **kw.pop("blueprint", {})), **kw)


def chain(*ids: str, options=FUSE, first=None) -> dict:
    calls = {}
    prev = first
    for cid in ids:
        args = (NodeRef(prev),) if prev else ()
        calls[cid] = Call(cid, step, args, options=options)
        prev = cid
    return calls


def test_a_chain_of_fusible_components_is_one_group_in_order():
    plan = plan_of(chain("a", "b", "c", "d"), NodeRef("d"))
    assert plan.fused == (("a", "b", "c", "d"),)
    assert fusion.exports(plan.fused[0], plan.dag, {"d"}) == ("d",)


def test_a_chain_reading_an_unfused_component_is_headed_by_its_first_member():
    calls = {"src": Call("src", leaf), **chain("a", "b", "c", first="src")}
    plan = plan_of(calls, NodeRef("c"))
    assert plan.fused == (("a", "b", "c"),)


def test_fuse_false_or_unset_splits_the_chain():
    calls = chain("a", "b", "c", "d", "e")
    calls["c"] = Call("c", step, (NodeRef("b"),), options=normalize(ComponentOptions(fuse=False), component="c"))
    assert plan_of(calls, NodeRef("e")).fused == (("a", "b"), ("d", "e"))
    calls["c"] = Call("c", step, (NodeRef("b"),))   # fuse=None and no history: not fused
    assert plan_of(calls, NodeRef("e")).fused == (("a", "b"), ("d", "e"))


def test_fuse_none_follows_the_predicted_duration():
    calls = chain("a", "b", "c", options=ComponentOptions())
    fast = {"a": 0.001, "b": 0.0001, "c": 0.002}
    assert plan_of(calls, NodeRef("c"), estimates=fast).fused == (("a", "b", "c"),)
    slow = {**fast, "b": fusion.FUSE_AUTO_S}
    assert plan_of(calls, NodeRef("c"), estimates=slow).fused == ()   # a and c alone: no group
    assert plan_of(calls, NodeRef("c")).fused == ()


def test_a_different_resource_request_splits_the_chain():
    calls = chain("a", "b", "c", "d")
    two = normalize(ComponentOptions(fuse=True, num_cpus=2), component="c")
    calls["c"] = Call("c", step, (NodeRef("b"),), options=two)
    calls["d"] = Call("d", step, (NodeRef("c"),), options=two)
    assert plan_of(calls, NodeRef("d")).fused == (("a", "b"), ("c", "d"))
    gpu = normalize(ComponentOptions(fuse=True, resources={"disk": 1}), component="b")
    calls = chain("a", "b", "c")
    calls["b"] = Call("b", step, (NodeRef("a"),), options=gpu)
    assert plan_of(calls, NodeRef("c")).fused == ()


def test_fan_out_and_diamond_under_one_head():
    calls = chain("a", "b")
    calls["c"] = Call("c", step, (NodeRef("a"),), options=FUSE)
    calls["d"] = Call("d", lambda x, y: x, (NodeRef("b"), NodeRef("c")), options=FUSE)
    plan = plan_of(calls, NodeRef("d"))
    assert plan.fused == (("a", "b", "c", "d"),)


def test_trees_reading_different_unfused_inputs_stay_apart_and_a_join_of_two_groups_heads_its_own():
    calls = {"s1": Call("s1", leaf), "s2": Call("s2", leaf), **chain("a", "b", first="s1"),
             **chain("x", "y", first="s2")}
    calls["j"] = Call("j", lambda p, q: p, (NodeRef("b"), NodeRef("y")), options=FUSE)
    calls["k"] = Call("k", step, (NodeRef("j"),), options=FUSE)
    plan = plan_of(calls, NodeRef("k"))
    assert plan.fused == (("a", "b"), ("x", "y"), ("j", "k"))   # a failure of s1 must not stop x, y
    assert fusion.exports(("a", "b"), plan.dag, {"k"}) == ("b",)


def test_independent_trees_are_packed_whole_and_what_reads_only_their_group_joins_it():
    calls = {**chain("a", "b"), **chain("x", "y")}
    calls["j"] = Call("j", lambda p, q: p, (NodeRef("b"), NodeRef("y")), options=FUSE)
    calls["k"] = Call("k", step, (NodeRef("j"),), options=FUSE)
    assert plan_of(calls, NodeRef("k")).fused == (("a", "b", "x", "y", "j", "k"),)


def test_independent_leaves_form_source_groups_spread_over_parts():
    calls = {f"l{i}": Call(f"l{i}", leaf, options=FUSE) for i in range(40)}
    calls["sum"] = Call("sum", lambda *xs: sum(xs), tuple(NodeRef(f"l{i}") for i in range(40)))
    plan = plan_of(calls, NodeRef("sum"), estimates=dict.fromkeys(calls, 0.004))   # 160 ms of work: spread
    assert len(plan.fused) == fusion.FUSE_SPREAD
    assert sorted(m for g in plan.fused for m in g) == sorted(f"l{i}" for i in range(40))
    assert {len(g) for g in plan.fused} == {5}
    assert len(plan_of(calls, NodeRef("sum")).fused) == 1   # 40 tiny ones (no estimates): one call
    few = {f"l{i}": Call(f"l{i}", leaf, options=FUSE) for i in range(3)}
    assert plan_of(few, [NodeRef("l0"), NodeRef("l1"), NodeRef("l2")]).fused == (("l0", "l1", "l2"),)


def test_a_leaf_heading_a_chain_stays_with_its_chain():
    calls = {**chain("a", "b"), **chain("x", "y"), "lone1": Call("lone1", leaf, options=FUSE),
             "lone2": Call("lone2", leaf, options=FUSE)}
    plan = plan_of(calls, [NodeRef("b"), NodeRef("y"), NodeRef("lone1"), NodeRef("lone2")],
                   estimates=dict.fromkeys(calls, 0.01))
    assert len(plan.fused) == 2   # four trees, 60 ms of work: spread over two calls
    assert {("a", "b"), ("x", "y")} <= {g[i:i + 2] for g in plan.fused for i in range(len(g) - 1)}
    assert sorted(m for g in plan.fused for m in g) == ["a", "b", "lone1", "lone2", "x", "y"]


def test_groups_are_cut_at_fuse_max(monkeypatch):
    monkeypatch.setattr(fusion, "FUSE_MAX", 3)
    ids = [f"s{i}" for i in range(8)]
    assert plan_of(chain(*ids), NodeRef("s7")).fused == (("s0", "s1", "s2"), ("s3", "s4", "s5"), ("s6", "s7"))


@pytest.mark.parametrize("opts", [
    {"kind": "actor"}, {"kind": "batch"}, {"cache": True}, {"placement": "least_loaded"}, {"sizing": "auto"},
], ids=["actor", "batch", "cache", "placement", "sizing"])
def test_what_must_be_decided_alone_is_never_fused(opts):
    calls = chain("a", "b", "c")
    calls["b"] = Call("b", step, (NodeRef("a"),), options=normalize(ComponentOptions(fuse=True, **opts),
                                                                      component="b"))
    assert plan_of(calls, NodeRef("c")).fused == ()


def test_max_concurrency_turns_fusion_off():
    assert plan_of(chain("a", "b", "c"), NodeRef("c"), blueprint={"max_concurrency": 2}).fused == ()


def test_exports_are_the_outputs_and_what_is_read_outside():
    calls = chain("a", "b", "c")
    calls["out"] = Call("out", step, (NodeRef("a"),), options=normalize(ComponentOptions(fuse=False),
                                                                       component="out"))
    plan = plan_of(calls, [NodeRef("c"), NodeRef("out"), NodeRef("b")])
    assert plan.fused == (("a", "b", "c"),)
    assert fusion.exports(plan.fused[0], plan.dag, set(plan.output_ids)) == ("a", "b", "c")
    assert fusion.exports(plan.fused[0], plan.dag, {"c"}) == ("a", "c")


def test_without_drops_the_groups_holding_a_member():
    groups = (("a", "b"), ("c", "d"))
    assert fusion.without(groups, {"d"}) == (("a", "b"),)
    assert fusion.without(groups, set()) == groups


def test_plan_to_dict_and_the_dsl_option():
    @rf.workflow
    def wf():
        s = rf.component(step, fuse=True)
        return s(s(s(1)))

    plan = rf.explain(wf)
    assert plan.fused == (("step", "step_1", "step_2"),)
    assert plan.to_dict()["fused"] == [["step", "step_1", "step_2"]]
    assert rf.component(step).options(fuse=False).default_options.fuse is False
    with pytest.raises(SpecError, match="field 'fuse'"):
        rf.component(step, fuse="yes")


def test_the_spec_field():
    spec = WorkflowSpec.from_text("""
components:
  - {id: a, function: "tests.unit.plan.test_fusion:leaf", fuse: true}
  - {id: b, function: "tests.unit.plan.test_fusion:step", fuse: true}
  - {id: c, function: "tests.unit.plan.test_fusion:step", fuse: false}
connections:
  - {from: a, to: b}
  - {from: b, to: c}
""")
    plan = make_plan(to_blueprint(spec))
    assert plan.fused == (("a", "b"),)
    assert plan.tasks["c"].options.fuse is False
    with pytest.raises(SpecError, match="fuse"):
        WorkflowSpec.from_text('components: [{id: a, function: "x:y", fuse: "often"}]')


def test_a_concurrency_group_with_a_bound_keeps_its_members_unfused():
    s = rf.component(step, fuse=True)

    @rf.workflow
    def bounded():
        x = s(1)
        with rf.group("g", max_concurrency=1):
            y = s(s(x))
        return s(s(y))

    @rf.workflow
    def strategy_only():
        with rf.group("g", failure_strategy="continue_on_error"):
            return s(s(s(1)))

    assert rf.explain(bounded).fused == (("step_3", "step_4"),)
    assert rf.explain(strategy_only).fused == (("step", "step_1", "step_2"),)


def test_a_dynamic_map_is_never_fused():
    s = rf.component(step, fuse=True)

    @rf.workflow
    def mapped():
        items = rf.component(lambda: [1, 2, 3], fuse=True)()
        return s(rf.map(s, items))

    plan = rf.explain(mapped)
    assert all("map_step" not in g for g in plan.fused)
