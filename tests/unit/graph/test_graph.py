"""rayflow.graph: the frozen Dag and its pure analysis (no Ray)."""

from __future__ import annotations

import pickle
import random

import pytest

from rayflow.core.errors import CycleError, SelfLoopError, SpecError, UnknownComponentError
from rayflow.graph import Dag, analyze, upward_ranks
from rayflow.graph.analysis import bottlenecks, critical_path, levels, parallel_groups

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def assert_topological(dag: Dag, order) -> None:
    pos = {n: i for i, n in enumerate(order)}
    assert sorted(pos) == sorted(dag.nodes)
    for node in dag.nodes:
        for up in dag.deps(node):
            assert pos[up] < pos[node], f"{up} must come before {node}"


# -- construction --------------------------------------------------------------------------


def test_deps_are_deduplicated_in_first_use_order():
    dag = Dag({"a": [], "b": [], "c": ["b", "a", "b", "a"]})
    assert dag.deps("c") == ("b", "a")
    assert dag.edge_count() == 2
    assert dag.children("a") == ("c",)
    assert dag.children("b") == ("c",)


def test_nodes_are_in_topological_order():
    # Listed downstream-first on purpose.
    dag = Dag({"d": ["b", "c"], "c": ["a"], "b": ["a"], "a": []})
    assert_topological(dag, dag.nodes)
    assert dag.nodes[0] == "a" and dag.nodes[-1] == "d"
    assert list(dag) == list(dag.nodes)
    assert len(dag) == 4
    assert "a" in dag and "zz" not in dag


def test_sources_sinks_children():
    dag = Dag(DIAMOND)
    assert dag.sources() == ("a",)
    assert dag.sinks() == ("d",)
    assert set(dag.children("a")) == {"b", "c"}
    assert dag.children("d") == ()
    assert dag.edge_count() == 4


def test_dag_is_immutable_and_picklable():
    dag = Dag(DIAMOND)
    with pytest.raises(TypeError):
        dag._deps["x"] = ()  # a read-only mapping
    copy = pickle.loads(pickle.dumps(dag))
    assert copy.nodes == dag.nodes
    assert all(copy.deps(n) == dag.deps(n) for n in dag.nodes)


def test_unknown_component():
    with pytest.raises(UnknownComponentError) as info:
        Dag({"a": [], "b": ["a", "ghost"]})
    err = info.value
    assert isinstance(err, SpecError)
    assert err.component == "b"
    assert "'ghost'" in str(err) and "'b'" in str(err)


def test_self_loop():
    with pytest.raises(SelfLoopError) as info:
        Dag({"a": [], "b": ["a", "b"]})
    assert info.value.component == "b"
    assert "'b'" in str(info.value)


def _is_data_flow_cycle(deps: dict, cycle: list[str]) -> bool:
    """Each id in ``cycle`` is an upstream (dependency) of the next one."""
    return all(cycle[i] in deps[cycle[i + 1]] for i in range(len(cycle) - 1))


def test_cycle_error_carries_path_in_data_flow_order():
    # Data flows a -> b -> c -> a (b depends on a, c on b, a on c).
    deps = {"a": ["c"], "b": ["a"], "c": ["b"]}
    with pytest.raises(CycleError) as info:
        Dag(deps)
    cycle = info.value.cycle
    assert len(cycle) == 4
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert _is_data_flow_cycle(deps, cycle)
    message = str(info.value)
    assert " -> ".join(cycle) in message
    assert " -> " in message
    assert info.value.component == cycle[0]
    assert isinstance(info.value, SpecError)


def test_cycle_inside_a_larger_graph_names_only_the_cycle():
    deps = {"src": [], "x": ["src", "z"], "y": ["x"], "z": ["y"], "sink": ["z"]}
    with pytest.raises(CycleError) as info:
        Dag(deps)
    cycle = info.value.cycle
    assert set(cycle) == {"x", "y", "z"}
    assert cycle[0] == cycle[-1]
    assert _is_data_flow_cycle(deps, cycle)


def test_two_node_cycle():
    deps = {"a": ["b"], "b": ["a"]}
    with pytest.raises(CycleError) as info:
        Dag(deps)
    assert set(info.value.cycle) == {"a", "b"}
    assert _is_data_flow_cycle(deps, info.value.cycle)


def test_empty_dag():
    dag = Dag({})
    assert len(dag) == 0
    assert critical_path(dag) == ([], 0.0)
    a = analyze(dag)
    assert a.levels == [] and a.critical_path == [] and a.critical_path_length == 0.0
    assert a.max_parallelism == 0


# -- analysis ------------------------------------------------------------------------------


def test_levels_and_parallel_groups():
    dag = Dag({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": [], "f": ["a", "d"]})
    lv = levels(dag)
    assert [sorted(x) for x in lv] == [["a", "e"], ["b", "c"], ["d"], ["f"]]
    groups = parallel_groups(lv)
    assert [sorted(g) for g in groups] == [["a", "e"], ["b", "c"]]


def test_level_is_one_past_deepest_dependency():
    # z depends on a source and on a deep chain: its level follows the deep one.
    dag = Dag({"s": [], "c1": ["s"], "c2": ["c1"], "c3": ["c2"], "z": ["s", "c3"]})
    lv = levels(dag)
    depth = {n: i for i, level in enumerate(lv) for n in level}
    assert depth == {"s": 0, "c1": 1, "c2": 2, "c3": 3, "z": 4}


def test_critical_path_with_default_weights():
    dag = Dag({"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": ["c", "d"]})
    path, length = critical_path(dag)
    assert path == ["a", "b", "c", "e"]
    assert length == 4.0


def test_critical_path_follows_weights():
    dag = Dag(DIAMOND)
    path, length = critical_path(dag, {"a": 1.0, "b": 2.0, "c": 10.0, "d": 0.5})
    assert path == ["a", "c", "d"]
    assert length == pytest.approx(11.5)
    path, length = critical_path(dag, {"a": 1.0, "b": 7.0, "c": 3.0, "d": 0.5})
    assert path == ["a", "b", "d"]
    assert length == pytest.approx(8.5)


def test_missing_or_invalid_weights_count_as_one():
    dag = Dag({"a": [], "b": ["a"]})
    path, length = critical_path(dag, {"a": 3.0})  # b missing
    assert path == ["a", "b"] and length == 4.0
    _, length = critical_path(dag, {"a": float("nan"), "b": -5.0})
    assert length == 2.0


def test_critical_path_may_start_at_a_heavy_source_not_the_first():
    dag = Dag({"light": [], "heavy": [], "join": ["light", "heavy"], "alone": []})
    path, length = critical_path(dag, {"light": 1, "heavy": 9, "join": 1, "alone": 5})
    assert path == ["heavy", "join"]
    assert length == 10


def test_upward_ranks_sorted_is_topological():
    dag = Dag({"a": [], "b": ["a"], "c": ["a"], "d": ["b"], "e": ["c", "d"], "f": []})
    weights = {"a": 1, "b": 5, "c": 1, "d": 2, "e": 1, "f": 3}
    ranks = upward_ranks(dag, weights)
    assert ranks["e"] == 1
    assert ranks["d"] == 3
    assert ranks["b"] == 8
    assert ranks["c"] == 2
    assert ranks["a"] == 9
    assert ranks["f"] == 3
    topo = {n: i for i, n in enumerate(dag.nodes)}
    order = sorted(dag.nodes, key=lambda n: (-ranks[n], topo[n]))
    assert order[0] == "a"
    assert_topological(dag, order)
    # a node's rank is its weight plus the largest rank below it
    for node in dag.nodes:
        below = max((ranks[c] for c in dag.children(node)), default=0)
        assert ranks[node] == weights[node] + below


def test_upward_ranks_default_weights_are_chain_lengths():
    dag = Dag({"a": [], "b": ["a"], "c": ["b"], "x": []})
    assert upward_ranks(dag) == {"a": 3.0, "b": 2.0, "c": 1.0, "x": 1.0}


def test_bottlenecks_critical_path_share():
    dag = Dag(DIAMOND)
    weights = {"a": 1.0, "b": 1.0, "c": 8.0, "d": 1.0}
    path, length = critical_path(dag, weights)
    found = bottlenecks(dag, path, length, weights)
    assert [b.id for b in found] == ["c", "a", "d"]  # largest share first, stable for ties
    top = found[0]
    assert top.reason == "critical_path"
    assert top.share == pytest.approx(0.8)
    assert sum(b.share for b in found) == pytest.approx(1.0)
    assert top.to_dict() == {"id": "c", "reason": "critical_path", "share": 0.8, "fan_in": 1, "fan_out": 1}


def test_bottlenecks_wide_fan_in_and_fan_out():
    deps = {"src": [], **{f"m{i}": ["src"] for i in range(6)}, "join": [f"m{i}" for i in range(6)]}
    deps["tail"] = ["join"]
    deps["other"] = []
    dag = Dag(deps)
    # weights make the critical path avoid nothing in particular: all 1.0
    path, length = critical_path(dag)
    found = bottlenecks(dag, path, length)
    by_id = {b.id: b for b in found}
    # src fans out to 6, join fans in from 6; both lie on the critical path here,
    # so they are reported there, with their fan counts.
    assert by_id["src"].fan_out == 6
    assert by_id["join"].fan_in == 6
    # A wide node off the critical path is reported for its width.
    deps2 = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"], "e": ["d"],
             "hub": [], **{f"leaf{i}": ["hub"] for i in range(5)}}
    dag2 = Dag(deps2)
    path2, length2 = critical_path(dag2)
    assert path2 == ["a", "b", "c", "d", "e"]
    found2 = bottlenecks(dag2, path2, length2)
    wide = [b for b in found2 if b.reason != "critical_path"]
    assert [(b.id, b.reason, b.fan_out, b.share) for b in wide] == [("hub", "fan_out", 5, 0.0)]
    deps3 = {**{f"p{i}": [] for i in range(5)}, "join": [f"p{i}" for i in range(5)],
             "x1": [], "x2": ["x1"], "x3": ["x2"]}
    found3 = bottlenecks(Dag(deps3), ["x1", "x2", "x3"], 3.0)
    wide3 = [b for b in found3 if b.reason != "critical_path"]
    assert [(b.id, b.reason, b.fan_in) for b in wide3] == [("join", "fan_in", 5)]


def test_bottlenecks_not_duplicated_and_narrow_nodes_ignored():
    dag = Dag({"a": [], "b": ["a"]})
    path, length = critical_path(dag)
    found = bottlenecks(dag, path, length)
    assert sorted(b.id for b in found) == ["a", "b"]
    assert all(b.reason == "critical_path" for b in found)


def test_descendants():
    dag = Dag({"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": [], "f": ["c", "e"]})
    assert dag.descendants("a") == {"b", "c", "d", "f"}
    assert dag.descendants("e") == {"f"}
    assert dag.descendants("f") == set()


def test_analyze_bundles_everything():
    dag = Dag(DIAMOND)
    a = analyze(dag, {"c": 3.0})
    assert a.critical_path == ["a", "c", "d"]
    assert a.critical_path_length == 5.0
    assert a.total_work == 6.0
    assert a.max_parallelism == 2
    assert [sorted(g) for g in a.parallel_groups] == [["b", "c"]]
    d = a.to_dict()
    assert d["critical_path"] == ["a", "c", "d"] and d["max_parallelism"] == 2
    assert d["bottlenecks"][0]["id"] == "c"


# -- scale ---------------------------------------------------------------------------------


def test_hundred_thousand_node_dag():
    rng = random.Random(1234)
    n = 100_000
    deps: dict[str, list[str]] = {}
    for i in range(n):
        # up to 3 upstreams among the 50 previous nodes (duplicates are folded by Dag)
        picks = [i - 1 - rng.randrange(min(i, 50)) for _ in range(rng.randint(0, 3))] if i else []
        deps[f"n{i}"] = [f"n{j}" for j in picks]
    dag = Dag(deps)
    assert len(dag) == n
    assert dag.edge_count() == sum(len(set(v)) for v in deps.values())

    weights = {f"n{i}": float(rng.randint(1, 10)) for i in range(n)}
    a = analyze(dag, weights)
    path = a.critical_path
    assert len(path) >= 2
    assert not dag.deps(path[0]), "the critical path starts at a source"
    for up, down in zip(path[:-1], path[1:], strict=True):
        assert up in dag.deps(down), f"{up} -> {down} is not an edge"
    assert a.critical_path_length == pytest.approx(sum(weights[p] for p in path))

    assert sum(len(level) for level in a.levels) == n
    depth = {node: i for i, level in enumerate(a.levels) for node in level}
    for node in (f"n{i}" for i in range(0, n, 997)):
        ups = dag.deps(node)
        assert depth[node] == (1 + max(depth[u] for u in ups) if ups else 0)

    ranks = upward_ranks(dag, weights)
    assert ranks[path[0]] == pytest.approx(a.critical_path_length)
    assert max(ranks.values()) == pytest.approx(a.critical_path_length)
    topo = {node: i for i, node in enumerate(dag.nodes)}
    order = sorted(dag.nodes, key=lambda x: (-ranks[x], topo[x]))
    assert_topological(dag, order)

    assert len(dag.descendants("n0")) >= 1
