"""How a plan travels to the run tracker: its functions apart, each loaded once there."""

from __future__ import annotations

import rayflow as rf
from rayflow.plan import make_plan
from rayflow.server.tracker import RunTracker, decode_plan, encode_plan
from rayflow.spec.targets import blueprint_of

SCALE = 3


@rf.component
def source(i: int) -> int:
    return i


@rf.component
def scaled(x: int) -> int:
    return x * SCALE


@rf.workflow
def small(i: int = 0):
    x = source(i)
    return [scaled(x), scaled(x)]


def _plan(i: int):
    return make_plan(blueprint_of(small, {"i": i}))


def test_a_plan_round_trips_with_its_functions_apart():
    plan = _plan(4)
    blob, functions = encode_plan(plan)
    assert len(functions) == 2   # source and scaled, each once however many tasks call it
    loaded = [object() for _ in functions]   # stand-ins: the plan refers to them by position
    back = decode_plan(blob, loaded)
    assert back.order == plan.order and set(back.tasks) == set(plan.tasks)
    assert {id(t.fn) for t in back.tasks.values()} == {id(o) for o in loaded}
    assert back.tasks["scaled"].fn is back.tasks["scaled_1"].fn
    assert back.tasks["source"].args == plan.tasks["source"].args


def test_the_tracker_loads_each_distinct_function_once():
    tracker = RunTracker()
    first, second = encode_plan(_plan(1)), encode_plan(_plan(2))   # two runs, two hand-overs
    fns_first = [tracker._function(b) for b in first[1]]
    fns_second = [tracker._function(b) for b in second[1]]
    assert all(a is b for a, b in zip(fns_first, fns_second, strict=True))   # the same objects: exported once
    plan = decode_plan(second[0], fns_second)
    fn = plan.tasks["scaled"].fn
    assert fn.__name__ == "scaled" and fn(5) == 15   # the user's function, working


def test_checkpoints_on_a_local_disk_are_saved_and_read_on_the_drivers_node(ray_session, tmp_path):
    """Each machine of a cluster has its own disk: the driver reads its checkpoint folder
    from its own, so the tasks that write and read large outputs there run on its node."""
    import ray

    from rayflow.execute.port import CheckpointTarget
    from rayflow.execute.ray.executor import RayExecutor
    from rayflow.store.checkpoints import CheckpointStore, MemoryCheckpoints

    executor = RayExecutor()
    executor.start(_plan(1), CheckpointTarget(CheckpointStore(str(tmp_path)), "r1"))
    strategy = executor._io["scheduling_strategy"]
    assert strategy.node_id == ray.get_runtime_context().get_node_id() and strategy.soft is False
    executor.start(_plan(1), CheckpointTarget(MemoryCheckpoints("memory://ckpt"), "r1"))
    assert executor._io == {}   # a location that is not a local folder is written wherever the output is
