"""Which chains of batch components become streams (pure planning)."""

from __future__ import annotations

from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.options import ComponentOptions
from rayflow.core.template import NodeRef
from rayflow.plan import make_plan

BATCH = ComponentOptions(kind="batch")


def stage(batch, **config):
    return batch


def src():
    return None


def plan_of(calls: dict, output) -> tuple:
    return make_plan(Blueprint("w", calls, output=output)).streams


def chain(*ids: str, first_data=None) -> dict:
    calls = {"src": Call("src", src)}
    prev = "src"
    for cid in ids:
        calls[cid] = Call(cid, stage, (NodeRef(prev),), options=BATCH)
        prev = cid
    return calls


def test_a_chain_of_batch_components_is_one_stream():
    assert plan_of(chain("a", "b", "c"), NodeRef("c")) == (("a", "b", "c"),)


def test_a_single_batch_component_is_not_a_stream():
    assert plan_of(chain("a"), NodeRef("a")) == ()


def test_an_intermediate_output_read_elsewhere_ends_the_stream():
    calls = chain("a", "b", "c")
    calls["side"] = Call("side", stage, (NodeRef("b"),))   # a python task reading b
    assert plan_of(calls, [NodeRef("c"), NodeRef("side")]) == (("a", "b"),)
    assert plan_of(chain("a", "b", "c"), [NodeRef("b"), NodeRef("c")]) == (("a", "b"),)   # b is an output


def test_config_reading_another_component_keeps_a_stage_out():
    calls = chain("a", "b")
    calls["c"] = Call("c", stage, (NodeRef("b"),), {"lookup": NodeRef("src")}, options=BATCH)
    assert plan_of(calls, NodeRef("c")) == (("a", "b"),)


def test_python_components_do_not_stream():
    calls = chain("a", "b")
    calls["b"] = Call("b", stage, (NodeRef("a"),))
    assert plan_of(calls, NodeRef("b")) == ()
