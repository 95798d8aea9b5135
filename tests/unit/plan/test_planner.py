"""rayflow.plan.planner: Blueprint -> Plan, priorities, pools and feasibility (no Ray)."""

from __future__ import annotations

import copy
import pickle

import pytest

from rayflow.core.errors import InfeasibleResourceError, SpecError
from rayflow.core.options import ComponentOptions
from rayflow.core.template import (
    Slot,
    SlotRun,
    collect_inputs,
    collect_refs,
    expand_outputs,
    fill,
    fill_refs,
    to_slots,
)
from rayflow.plan import Blueprint, Call, ClusterShape, NodeRef, make_plan
from rayflow.plan.planner import check_cluster, check_feasible, pool_key
from tests.fns import basic as fns

GiB = 1024**3
LAPTOP = ClusterShape(nodes=({"CPU": 2.0, "memory": 8.0 * GiB},))
TWO_NODES = ClusterShape(nodes=(
    {"CPU": 16.0, "memory": 64.0 * GiB},
    {"CPU": 2.0, "GPU": 1.0, "memory": 16.0 * GiB, "node_b": 1.0},
))


def opts(**kw) -> ComponentOptions:
    return ComponentOptions().merged(kw, component="c")


def call(cid: str, fn=fns.add, *args, options: ComponentOptions | None = None, **kwargs) -> Call:
    return Call(id=cid, fn=fn, args=args, kwargs=kwargs, options=options or ComponentOptions())


def blueprint(*calls: Call, output=None, **kw) -> Blueprint:
    return Blueprint(name="bp", calls={c.id: c for c in calls}, output=output, **kw)


# -- feasibility -------------------------------------------------------------------------------


def test_too_many_cpus():
    with pytest.raises(InfeasibleResourceError) as info:
        check_feasible("train", opts(num_cpus=64), LAPTOP)
    assert str(info.value) == "component 'train' needs 64 CPUs, largest node has 2"
    assert info.value.component == "train"
    assert isinstance(info.value, SpecError)


def test_too_much_memory():
    with pytest.raises(InfeasibleResourceError) as info:
        check_feasible("big", opts(memory="100GiB"), TWO_NODES)
    message = str(info.value)
    assert "'big'" in message
    assert "100.00 GiB of memory" in message
    assert "largest node has 64.00 GiB" in message


def test_gpu_no_node_has():
    with pytest.raises(InfeasibleResourceError, match="needs 1 GPUs, no node has any"):
        check_feasible("gpu", opts(num_gpus=1), LAPTOP)


def test_custom_resource_no_node_has():
    with pytest.raises(InfeasibleResourceError) as info:
        check_feasible("pinned", opts(resources={"node_z": 1}), TWO_NODES)
    message = str(info.value)
    assert "'pinned'" in message and "'node_z'" in message and "no node has any" in message


def test_request_fits_no_single_node_though_each_part_fits_some_node():
    # 4 CPUs fit node 0, the GPU only node 1: together they fit neither.
    with pytest.raises(InfeasibleResourceError) as info:
        check_feasible("mixed", opts(num_cpus=4, num_gpus=1), TWO_NODES)
    message = str(info.value)
    assert "'mixed'" in message
    assert "4 CPUs" in message and "1 GPUs" in message
    assert "on one node; no node has all of it" in message


def test_feasible_requests_pass():
    check_feasible("ok", opts(num_cpus=2, num_gpus=1, resources={"node_b": 1}), TWO_NODES)
    check_feasible("ok", opts(num_cpus=16, memory="64GiB"), TWO_NODES)
    check_feasible("zero", opts(num_cpus=0), LAPTOP)
    check_feasible("frac", opts(num_cpus=0.5), LAPTOP)
    check_feasible("anything", opts(num_cpus=1000), ClusterShape(nodes=()))  # unknown cluster


def test_cluster_shape_largest():
    assert TWO_NODES.largest("CPU") == 16.0
    assert TWO_NODES.largest("GPU") == 1.0
    assert TWO_NODES.largest("TPU") == 0.0
    assert ClusterShape(nodes=()).largest("CPU") == 0.0


def test_check_cluster_names_the_infeasible_component():
    bp = blueprint(
        call("small", fns.source, options=opts(num_cpus=1)),
        call("huge", fns.double, NodeRef("small"), options=opts(num_cpus=64)),
    )
    plan = make_plan(bp)
    check_cluster(plan, ClusterShape(nodes=({"CPU": 128.0},)))
    with pytest.raises(InfeasibleResourceError, match="'huge' needs 64 CPUs, largest node has 2"):
        check_cluster(plan, LAPTOP)
    with pytest.raises(InfeasibleResourceError, match="'huge'"):
        make_plan(bp, cluster=LAPTOP)


# -- plan ------------------------------------------------------------------------------------


def _wide_blueprint() -> Blueprint:
    # a -> b -> c -> d (long chain) and a -> x (short) and y alone.
    return blueprint(
        call("a", fns.source),
        call("x", fns.double, NodeRef("a")),
        call("b", fns.double, NodeRef("a")),
        call("c", fns.double, NodeRef("b")),
        call("d", fns.double, NodeRef("c")),
        call("y", fns.source),
        output={"d": NodeRef("d"), "x": NodeRef("x")},
    )


def test_plan_order_is_by_upward_rank_and_topological():
    plan = make_plan(_wide_blueprint())
    assert plan.order[0] == "a"
    assert plan.order.index("b") < plan.order.index("x")  # critical path first
    ranks = {cid: t.priority for cid, t in plan.tasks.items()}
    assert ranks == {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0, "x": 1.0, "y": 1.0}
    assert [ranks[n] for n in plan.order] == sorted(ranks.values(), reverse=True)
    pos = {n: i for i, n in enumerate(plan.order)}
    for node in plan.dag.nodes:
        for up in plan.dag.deps(node):
            assert pos[up] < pos[node]


def test_plan_order_with_estimates():
    plan = make_plan(_wide_blueprint(), estimates={"x": 100.0})
    assert plan.order[:2] == ("a", "x")
    assert plan.critical_path == ["a", "x"]
    assert plan.critical_path_length == 101.0


def test_plan_exposes_analysis_and_tasks():
    plan = make_plan(_wide_blueprint(), estimates=None)
    assert plan.critical_path == ["a", "b", "c", "d"]
    assert plan.critical_path_length == 4.0
    assert sorted(plan.levels[0]) == ["a", "y"]
    assert plan.output_ids == ("d", "x")
    d = plan.to_dict()
    assert d["components"] == 6 and d["edges"] == 4 and d["outputs"] == ["d", "x"]
    assert d["resources"]["a"] == {"num_cpus": 1.0}
    task = plan.tasks["c"]
    assert task.deps == ("b",)
    assert task.args == (Slot(0),)
    assert task.fn is fns.double
    assert task.pool is None


def test_task_slots_follow_first_use_order_of_deps():
    bp = blueprint(
        call("p", fns.source), call("q", fns.source),
        call("g", fns.gather, NodeRef("q"), [NodeRef("p"), NodeRef("q")], {"k": NodeRef("p")}),
    )
    task = make_plan(bp).tasks["g"]
    assert task.deps == ("q", "p")
    assert task.args == (Slot(0), [Slot(1), Slot(0)], {"k": Slot(1)})
    assert fill(task.args, ("Q", "P")) == ("Q", ["P", "Q"], {"k": "P"})


def test_a_list_of_consecutive_inputs_travels_as_one_slot_run():
    bp = blueprint(
        call("p", fns.source), call("q", fns.source), call("r", fns.source),
        call("g", fns.gather, [NodeRef("p"), NodeRef("q"), NodeRef("r")], [NodeRef("q"), NodeRef("r")],
             [NodeRef("r"), NodeRef("p")], []),
    )
    task = make_plan(bp).tasks["g"]
    assert task.args == (SlotRun(0, 3), SlotRun(1, 3), [Slot(2), Slot(0)], [])
    assert pickle.loads(pickle.dumps(task.args)) == task.args
    assert fill(task.args, ("P", "Q", "R")) == (["P", "Q", "R"], ["Q", "R"], ["R", "P"], [])


def test_plan_travels_to_the_run_tracker():
    plan = make_plan(_wide_blueprint())
    again = pickle.loads(pickle.dumps(plan))
    assert again.order == plan.order and again.dag.nodes == plan.dag.nodes
    assert copy.deepcopy(plan).critical_path == plan.critical_path
    # Its tasks travel fine too.
    task = pickle.loads(pickle.dumps(plan.tasks["c"]))
    assert task.id == "c" and task.fn is fns.double


def test_pool_keys_for_actor_components():
    actor = opts(kind="actor", init_kwargs={"start": 1}, concurrency=2)
    other_init = opts(kind="actor", init_kwargs={"start": 2}, concurrency=2)
    bp = blueprint(
        call("s", fns.source),
        Call(id="c1", fn=fns.Counter, args=(NodeRef("s"),), options=actor, type="actor"),
        Call(id="c2", fn=fns.Counter, args=(NodeRef("s"),), options=actor, type="actor"),
        Call(id="c3", fn=fns.Counter, args=(NodeRef("s"),), options=other_init, type="actor"),
    )
    plan = make_plan(bp)
    assert plan.tasks["s"].pool is None
    assert plan.tasks["c1"].pool is not None
    assert plan.tasks["c1"].pool == plan.tasks["c2"].pool
    assert plan.tasks["c1"].pool != plan.tasks["c3"].pool
    assert "Counter" in plan.tasks["c1"].pool
    bigger = Call(id="c4", fn=fns.Counter, options=opts(kind="actor", init_kwargs={"start": 1},
                                                         concurrency=2, num_cpus=2), type="actor")
    assert pool_key(bigger) != plan.tasks["c1"].pool


def test_make_plan_requires_functions_unless_explaining():
    bp = blueprint(Call(id="nofn", fn=None, type="python"))
    with pytest.raises(SpecError, match="'nofn'"):
        make_plan(bp)
    assert make_plan(bp, require_functions=False).order == ("nofn",)


def test_blueprint_checks():
    with pytest.raises(SpecError, match="failure_strategy"):
        blueprint(call("a", fns.source), failure_strategy="sometimes")
    for bad in (0, -1, True, 1.5):
        with pytest.raises(SpecError, match="max_concurrency"):
            blueprint(call("a", fns.source), max_concurrency=bad)
    with pytest.raises(SpecError, match="'ghost'"):
        blueprint(call("a", fns.source), output=NodeRef("ghost"))
    assert blueprint(call("a", fns.source), max_concurrency=3).max_concurrency == 3


# -- templates -------------------------------------------------------------------------------


def test_template_helpers():
    template = {"a": [NodeRef("x"), (NodeRef("y"), 1)], "b": NodeRef("x")}
    assert list(collect_refs(template)) == ["x", "y"]
    slots = to_slots(template, {("x", None): 0, ("y", None): 1})
    assert slots == {"a": [Slot(0), (Slot(1), 1)], "b": Slot(0)}
    assert fill(slots, [10, 20]) == {"a": [10, (20, 1)], "b": 10}
    assert fill_refs(template, {"x": "X", "y": "Y"}) == {"a": ["X", ("Y", 1)], "b": "X"}


def test_templates_of_calls_reading_single_outputs_of_a_multi_output_component():
    template = [NodeRef("s", 1), NodeRef("t"), {"k": NodeRef("s", 0)}]
    assert list(collect_refs(template)) == ["s", "t"]
    assert list(collect_inputs(template)) == [("s", 1), ("t", None), ("s", 0)]
    whole = expand_outputs([NodeRef("s"), NodeRef("t")], {"s": 2})
    assert whole == [(NodeRef("s", 0), NodeRef("s", 1)), NodeRef("t")]
    assert fill_refs([NodeRef("s", 1)], {"s": ("a", "b")}) == ["b"]


def test_reading_an_output_a_component_does_not_have_is_refused_naming_both():
    from rayflow.core.blueprint import Blueprint, Call
    from rayflow.core.options import ComponentOptions

    def pair():
        return 1, 2

    def use(x):
        return x

    calls = {"s": Call("s", pair, options=ComponentOptions(num_outputs=2)),
             "u": Call("u", use, (NodeRef("s", 5),))}
    with pytest.raises(SpecError, match=r"component 'u' reads output 5 of 's', which has 2 outputs"):
        make_plan(Blueprint("w", calls, output=NodeRef("u")))
    ok = make_plan(Blueprint("w", {**calls, "u": Call("u", use, (NodeRef("s", 1),))}, output=NodeRef("u")))
    assert ok.tasks["u"].inputs == (("s", 1),) and ok.tasks["u"].deps == ("s",)
