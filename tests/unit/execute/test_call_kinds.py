"""Each planned component's call kind (rayflow.core.kinds), as the planner sets it (no Ray)."""

from __future__ import annotations

import rayflow as rf
from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.kinds import CallKind, is_dynamic_map
from rayflow.core.options import ComponentOptions, normalize
from rayflow.core.template import NodeRef
from rayflow.execute.worker.dynamic import DynamicMap
from rayflow.plan import make_plan

BATCH = ComponentOptions(kind="batch")
FUSE = normalize(ComponentOptions(fuse=True), component="f")


def step(x=0, **config):
    return x


class Counter:
    def __call__(self, x):
        return x


def kinds(calls: dict, output, **blueprint) -> dict[str, CallKind]:
    plan = make_plan(Blueprint("w", calls, output=output, **blueprint))
    return {cid: t.kind for cid, t in plan.tasks.items()}


def test_the_kinds_are_strings():
    assert CallKind.TASK == "task" and CallKind("map") is CallKind.MAP
    assert {k.value for k in CallKind} == {"task", "actor", "stream", "fused", "map"}


def test_a_plain_component_is_a_task():
    assert kinds({"a": Call("a", step)}, NodeRef("a")) == {"a": CallKind.TASK}


def test_an_actor_component_is_an_actor_call():
    calls = {"a": Call("a", Counter, (1,), options=ComponentOptions(kind="actor"))}
    assert kinds(calls, NodeRef("a")) == {"a": CallKind.ACTOR}


def test_stream_members_are_stream_calls():
    calls = {"src": Call("src", step),
             "a": Call("a", step, (NodeRef("src"),), options=BATCH),
             "b": Call("b", step, (NodeRef("a"),), options=BATCH)}
    assert kinds(calls, NodeRef("b")) == {"src": CallKind.TASK, "a": CallKind.STREAM, "b": CallKind.STREAM}


def test_fused_members_are_fused_calls_only_without_a_bound():
    calls = {"a": Call("a", step, options=FUSE), "b": Call("b", step, (NodeRef("a"),), options=FUSE)}
    assert set(kinds(calls, NodeRef("b")).values()) == {CallKind.FUSED}
    assert set(kinds(calls, NodeRef("b"), max_concurrency=1).values()) == {CallKind.TASK}


def test_a_dynamic_map_is_a_map_call():
    s = rf.component(step)

    @rf.workflow
    def mapped():
        return s(rf.map(s, [1, 2, 3]))

    plan = rf.explain(mapped)
    assert [cid for cid, t in plan.tasks.items() if t.kind is CallKind.MAP] == ["map_step"]
    assert all(t.kind is CallKind.TASK for cid, t in plan.tasks.items() if cid != "map_step")


def test_a_map_function_is_known_by_its_attributes():
    assert is_dynamic_map(DynamicMap(step, ComponentOptions()))
    assert not is_dynamic_map(step) and not is_dynamic_map(None) and not is_dynamic_map(Counter())
