"""Fusion on every shape: how many calls a plan makes, and the invariants that keep packed
groups correct (acyclic between groups, failures stop only their readers)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.options import ComponentOptions, normalize
from rayflow.core.template import NodeRef
from rayflow.plan import fusion, make_plan

FUSE = normalize(ComponentOptions(fuse=True), component="f")
TWO = normalize(ComponentOptions(fuse=True, num_cpus=2), component="f")
PLAIN = normalize(ComponentOptions(fuse=False), component="f")


def f(*xs):
    return 0


def plan_of(calls: dict, output):
    return make_plan(Blueprint("w", calls, output=output))


def fused_count(plan) -> int:
    return sum(len(g) for g in plan.fused)


def calls_made(plan) -> int:
    """Ray calls of the run: one per group, one per unfused component."""
    return len(plan.fused) + len(plan.dag.nodes) - fused_count(plan)


def chains(n: int, length: int) -> dict:
    calls = {}
    for c in range(n):
        prev = None
        for i in range(length):
            cid = f"c{c}_{i}"
            calls[cid] = Call(cid, f, (NodeRef(prev),) if prev else (), options=FUSE)
            prev = cid
    return calls


def fan_tree(width: int) -> tuple[dict, str]:
    calls = {"load": Call("load", f, options=PLAIN)}
    level = []
    for i in range(width):
        calls[f"l{i}"] = Call(f"l{i}", f, (NodeRef("load"),), options=FUSE)
        level.append(f"l{i}")
    depth = 0
    while len(level) > 1:
        depth += 1
        nxt = []
        for i in range(0, len(level), 2):
            cid = f"r{depth}_{i // 2}"
            calls[cid] = Call(cid, f, tuple(NodeRef(x) for x in level[i:i + 2]), options=FUSE)
            nxt.append(cid)
        level = nxt
    return calls, level[0]


def layered(layers: int, width: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    calls, above = {}, []
    for layer in range(layers):
        row = []
        for i in range(width):
            cid = f"n{layer}_{i}"
            reads = rng.sample(above, min(len(above), rng.randint(1, 3))) if above else []
            calls[cid] = Call(cid, f, tuple(NodeRef(r) for r in reads), options=FUSE)
            row.append(cid)
        above = row
    return calls


def test_a_thousand_chains_of_ten_are_a_few_dozen_calls():
    calls = chains(1000, 10)
    plan = plan_of(calls, [NodeRef(f"c{c}_9") for c in range(1000)])
    assert fused_count(plan) == 10_000
    assert fusion.FUSE_SPREAD <= len(plan.fused) <= 64
    group_of = {m: i for i, g in enumerate(plan.fused) for m in g}
    assert all(len({group_of[f"c{c}_{i}"] for i in range(10)}) == 1 for c in range(1000))   # a chain stays whole


def test_a_wide_fan_into_a_tree_reduce_is_a_call_per_hundred_components_at_most():
    calls, top = fan_tree(10_000)
    plan = plan_of(calls, NodeRef(top))
    assert calls_made(plan) <= len(calls) // 100, calls_made(plan)
    assert fused_count(plan) >= len(calls) - 40


def test_a_random_layered_dag_is_about_a_call_per_layer_and_cpu():
    calls = layered(10, 500)
    plan = plan_of(calls, [NodeRef(f"n9_{i}") for i in range(500)])
    assert fused_count(plan) == 5000
    assert len(plan.fused) <= 10 * fusion.FUSE_SPREAD


def test_groups_follow_the_predicted_work():
    calls = chains(100, 10)
    outputs = [NodeRef(f"c{c}_9") for c in range(100)]
    def groups(each: float) -> int:
        return len(make_plan(Blueprint("w", calls, output=outputs), estimates=dict.fromkeys(calls, each)).fused)

    assert groups(5e-6) == 1                          # 5 ms of work: one call
    assert groups(1e-4) == fusion.FUSE_SPREAD         # 100 ms: spread over the CPUs
    assert groups(4e-3) >= 4.0 / fusion.FUSE_CALL_S   # 4 s: cut by the work per call


# -- invariants on random DAGs ----------------------------------------------------------

@st.composite
def dags(draw):
    n = draw(st.integers(2, 60))
    calls = {}
    ids = []
    for i in range(n):
        reads = draw(st.lists(st.sampled_from(ids), max_size=3, unique=True)) if ids else []
        kind = draw(st.sampled_from(["fuse", "fuse", "fuse", "two", "plain"]))
        options = {"fuse": FUSE, "two": TWO, "plain": PLAIN}[kind]
        calls[f"n{i}"] = Call(f"n{i}", f, tuple(NodeRef(r) for r in reads), options=options)
        ids.append(f"n{i}")
    return calls


def _ancestors(dag, node, memo):
    if node not in memo:
        out = set()
        for d in dag.deps(node):
            out.add(d)
            out |= _ancestors(dag, d, memo)
        memo[node] = out
    return memo[node]


@settings(max_examples=150, deadline=None)
@given(dags())
def test_packed_groups_keep_the_run_correct(calls):
    sinks = [cid for cid in calls if not any(NodeRef(cid) in c.args for c in calls.values())]
    plan = make_plan(Blueprint("w", calls, output=[NodeRef(s) for s in sinks]))
    dag, topo = plan.dag, {cid: i for i, cid in enumerate(plan.dag.nodes)}
    group_of = {m: i for i, g in enumerate(plan.fused) for m in g}
    assert len(group_of) == sum(len(g) for g in plan.fused)            # a component in one group at most
    memo: dict = {}
    for g in plan.fused:
        assert 2 <= len(g) <= fusion.FUSE_MAX
        assert list(g) == sorted(g, key=topo.__getitem__)              # topological inside
        assert len({fusion.signature(plan.tasks[m]) for m in g}) == 1  # one request
    # a plain component that fails fails every call reading it, whose outputs then raise in
    # the calls reading them: each member of each call it fails must descend from it
    for x in dag.nodes:
        if x in group_of:
            continue
        failing = {group_of[c] for c in dag.children(x) if c in group_of}
        todo = list(failing)
        while todo:
            g = plan.fused[todo.pop()]
            assert all(x in _ancestors(dag, m, memo) for m in g), (x, g)
            for m in g:
                for c in dag.children(m):
                    if c in group_of and group_of[c] not in failing:
                        failing.add(group_of[c])
                        todo.append(group_of[c])
    # the groups, with every other component alone, form an acyclic graph
    unit = {cid: group_of.get(cid, cid) for cid in dag.nodes}
    edges: dict = {}
    for cid in dag.nodes:
        for d in dag.deps(cid):
            if unit[d] != unit[cid]:
                edges.setdefault(unit[d], set()).add(unit[cid])
    state: dict = {}

    def visit(u):
        state[u] = 1
        for v in edges.get(u, ()):
            assert state.get(v) != 1, "a cycle between fused groups"
            if v not in state:
                visit(v)
        state[u] = 2

    for u in set(unit.values()):
        if u not in state:
            visit(u)
    # eager submission: the head waits for every outside input; the others wait for the head
    after = fusion.waits(plan.fused, dag)
    for g in plan.fused:
        outside = {d for m in g for d in dag.deps(m) if d not in g}
        assert outside <= set(dag.deps(g[0])) | set(after.get(g[0], ()))
