"""A Plan is a read-only value: its mappings refuse changes, a changed plan is a new
one, it pickles (plans travel to Ray actors), and predictions come in through the
sizing port in one planning pass (rayflow.plan.sizing)."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace

import pytest

from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.options import ComponentOptions
from rayflow.core.template import NodeRef
from rayflow.plan import FrozenDict, make_plan
from rayflow.plan.frozen import EMPTY, frozen


def work(x=0, *, k=1):
    return x + k


def blueprint(**options) -> Blueprint:
    opts = ComponentOptions(**options)
    calls = {"a": Call("a", work, options=opts), "b": Call("b", work, kwargs={"k": 2}, options=opts),
             "c": Call("c", work, (NodeRef("a"),), options=opts), "d": Call("d", work, (NodeRef("b"),), options=opts)}
    return Blueprint("w", calls, output=[NodeRef("c"), NodeRef("d")], inputs={"n": 3})


def test_the_mappings_of_a_plan_and_its_tasks_are_read_only():
    plan = make_plan(blueprint())
    task = plan.tasks["a"]
    for mapping in (plan.tasks, plan.inputs, plan.tasks["b"].kwargs):
        assert isinstance(mapping, FrozenDict)
        with pytest.raises(TypeError):
            mapping["x"] = 1
        with pytest.raises(TypeError):
            mapping.update(x=1)
        with pytest.raises(TypeError):
            mapping.pop(next(iter(mapping)))
    with pytest.raises(TypeError):
        plan.tasks["a"] = task
    with pytest.raises(TypeError):
        del plan.tasks["a"]
    assert plan.tasks["a"] is task and plan.inputs == {"n": 3} and plan.tasks["b"].kwargs == {"k": 2}


def test_replace_freezes_what_it_is_given():
    plan = make_plan(blueprint())
    again = replace(plan, tasks=dict(plan.tasks), inputs={"m": 1})
    assert type(again.tasks) is FrozenDict and type(again.inputs) is FrozenDict
    task = replace(plan.tasks["a"], kwargs={"k": 5})
    assert type(task.kwargs) is FrozenDict
    assert replace(plan.tasks["a"], kwargs={}).kwargs is EMPTY


def test_with_task_is_a_new_plan_and_the_old_one_is_unchanged():
    plan = make_plan(blueprint())
    bigger = replace(plan.tasks["a"], options=replace(plan.tasks["a"].options, memory=2**30))
    changed = plan.with_task(bigger)
    assert changed is not plan and changed.tasks["a"] is bigger
    assert plan.tasks["a"].options.memory is None
    assert changed.tasks["b"] is plan.tasks["b"] and list(changed.tasks) == list(plan.tasks)
    with pytest.raises(KeyError, match="nosuch"):
        plan.with_task(replace(bigger, id="nosuch"))


def test_a_plan_pickles_and_copies_frozen():
    plan = make_plan(blueprint())
    for again in (pickle.loads(pickle.dumps(plan)), copy.deepcopy(plan), copy.copy(plan)):
        assert type(again.tasks) is FrozenDict and list(again.tasks) == list(plan.tasks)
        assert again.tasks["b"].kwargs == {"k": 2} and type(again.tasks["b"].kwargs) is FrozenDict
        assert again.order == plan.order and again.inputs == {"n": 3}
        with pytest.raises(TypeError):
            again.tasks["a"] = plan.tasks["a"]
    assert pickle.loads(pickle.dumps(EMPTY)) == {}


def test_frozen_keeps_a_frozen_dict_and_shares_the_empty_one():
    d = frozen({"a": 1})
    assert frozen(d) is d and frozen({}) is EMPTY and frozen(None) is EMPTY
    assert d | {"b": 2} == {"a": 1, "b": 2}   # a new plain dict


def same(p, q) -> bool:
    """Two plans of one blueprint plan alike (the Dag has no equality of its own)."""
    return (p.order, dict(p.tasks), p.to_dict(), p.fused, p.streams) == (q.order, dict(q.tasks), q.to_dict(),
                                                                         q.fused, q.streams)


class Scripted:
    """A PlanSizing that answers from dicts and records what it was asked."""

    def __init__(self, durations=None, resources=None) -> None:
        self._durations, self._resources = durations or {}, resources or {}
        self.asked: list[str] = []

    def durations(self, tasks):
        self.asked.append("durations")
        self.priorities = {cid: t.priority for cid, t in tasks.items()}   # as they were when asked
        return self._durations

    def resources(self, tasks):
        self.asked.append("resources")
        self.final = dict(tasks)
        return self._resources


def test_predicted_durations_order_the_plan_as_estimates_would():
    sizing = Scripted(durations={"b": 50.0, "d": 50.0})
    plan = make_plan(blueprint(), sizing=sizing)
    assert same(plan, make_plan(blueprint(), estimates={"b": 50.0, "d": 50.0}))
    assert plan.order[0] == "b" and sizing.asked == ["durations", "resources"]
    assert set(sizing.priorities.values()) == {0.0}   # asked before the order is fixed
    assert plan.tasks["b"].priority == 100.0


def test_given_estimates_and_predictions_are_merged():
    plan = make_plan(blueprint(), estimates={"a": 500.0}, sizing=Scripted(durations={"b": 50.0}))
    assert same(plan, make_plan(blueprint(), estimates={"a": 500.0, "b": 50.0}))


def test_no_predictions_leave_the_plan_as_without_sizing():
    assert same(make_plan(blueprint(), sizing=Scripted()), make_plan(blueprint()))


def test_resources_change_only_the_sized_components_options():
    sizing = Scripted(resources={"c": {"num_cpus": 0.5, "memory": 2**29}})
    plan = make_plan(blueprint(), sizing=sizing)
    assert plan.tasks["c"].options.num_cpus == 0.5 and plan.tasks["c"].options.memory == 2**29
    assert plan.tasks["a"].options.num_cpus == 1.0
    assert sizing.final["c"].priority == plan.tasks["c"].priority   # asked of the final tasks


def test_a_bad_blueprint_is_refused_before_the_sizing_is_asked():
    sizing = Scripted()
    bad = Blueprint("w", {"a": Call("a", None)}, output=NodeRef("a"))
    with pytest.raises(Exception, match="no function to run"):
        make_plan(bad, sizing=sizing)
    assert sizing.asked == []


def test_a_sized_request_is_checked_against_the_cluster():
    from rayflow.core.errors import InfeasibleResourceError
    from rayflow.plan.planner import ClusterShape

    cluster = ClusterShape(({"CPU": 4.0, "memory": 2.0**32},))
    with pytest.raises(InfeasibleResourceError, match="'c'"):
        make_plan(blueprint(), cluster=cluster, sizing=Scripted(resources={"c": {"num_cpus": 8.0}}))
