"""Ordering and placement: upward ranks, and each strategy on a hand-made cluster."""

from __future__ import annotations

import pytest

from rayflow.core.errors import ConfigError, CycleError
from rayflow.predict import (
    NodeCapacity,
    NodeLoad,
    Prediction,
    Request,
    Running,
    WeightedRoundRobin,
    choose_node,
    least_loaded,
    predictive,
    resource_aware,
    suggest_strategy,
    upward_ranks,
)

GIB = 1 << 30


def test_upward_ranks_follow_the_longest_predicted_chain():
    #   load -> clean -> train -> report
    #        \-> stats ---------/
    deps = {"load": [], "clean": ["load"], "stats": ["load"], "train": ["clean"], "report": ["train", "stats"]}
    durations = {"load": 2.0, "clean": 3.0, "stats": 10.0, "train": 5.0, "report": 1.0}
    ranks = upward_ranks(deps, durations)
    assert ranks == {"report": 1.0, "train": 6.0, "stats": 11.0, "clean": 9.0, "load": 13.0}
    assert sorted(ranks, key=lambda n: -ranks[n])[:2] == ["load", "stats"]


def test_upward_ranks_default_missing_durations_and_refuse_cycles():
    assert upward_ranks({"a": [], "b": ["a"]}, {"b": 4.0}) == {"a": 5.0, "b": 4.0}
    with pytest.raises(CycleError):
        upward_ranks({"a": ["b"], "b": ["a"]}, {})


NODES = [
    NodeCapacity("small", cpus=4, memory=8 * GIB),
    NodeCapacity("big", cpus=16, memory=64 * GIB),
    NodeCapacity("fast", cpus=8, memory=16 * GIB, speed=2.0),
]


def _loads(**running: list[Running]) -> dict[str, NodeLoad]:
    return {node: NodeLoad(tuple(rs)) for node, rs in running.items()}


def test_resource_aware_picks_the_most_headroom_and_skips_full_nodes():
    loads = _loads(small=[Running(5, 1, GIB)], big=[Running(5, 14, 60 * GIB)], fast=[Running(5, 2, 2 * GIB)])
    assert resource_aware(NODES, loads, Request(1, GIB)) == "fast"
    assert resource_aware(NODES, {}, Request(1, GIB)) == "big"            # idle cluster: the largest node
    assert resource_aware(NODES, loads, Request(10, GIB)) is None          # fits nowhere now
    cpu_only = resource_aware(NODES, loads, Request(1, GIB), cpu_weight=1.0, memory_weight=0.0)
    assert cpu_only == "fast"


def test_least_loaded_by_cpus_memory_or_tasks():
    loads = _loads(small=[Running(5, 3, GIB)], big=[Running(5, 8, 4 * GIB)],
                   fast=[Running(5, 0.1, GIB) for _ in range(6)])
    req = Request(0.5, 256 << 20)
    assert least_loaded(NODES, loads, req) == "fast"                  # 0.6/8 CPUs busy
    assert least_loaded(NODES, loads, req, by="memory") == "big"     # 4/64 GiB used
    assert least_loaded(NODES, loads, req, by="tasks") == "big"      # 1 task per 16 CPUs
    with pytest.raises(ConfigError, match="by="):
        least_loaded(NODES, loads, req, by="gpus")


def test_weighted_round_robin_shares_picks_by_weight():
    rr = WeightedRoundRobin()                  # weights: 4, 16, 8 CPUs
    picks = [rr(NODES, {}, Request(1)) for _ in range(28)]
    assert (picks.count("small"), picks.count("big"), picks.count("fast")) == (4, 16, 8)
    assert picks[:3] == ["big", "fast", "big"]                          # smooth: interleaved
    only_big = WeightedRoundRobin(weights={"small": 1, "big": 1, "fast": 1})
    assert {only_big(NODES, {}, Request(12)) for _ in range(3)} == {"big"}   # the others cannot fit 12


def test_predictive_weighs_waiting_against_speed():
    req = Request(4, GIB, duration_s=100.0)
    assert predictive(NODES, {}, req) == "fast"                       # 50 s there, 100 s elsewhere
    small_taken = Running(1000.0, 2, GIB)
    busy_fast = _loads(small=[small_taken], fast=[Running(80.0, 8, GIB)])
    assert predictive(NODES, busy_fast, req) == "big"                 # 80 + 50 > 100
    briefly_busy = _loads(small=[small_taken], fast=[Running(20.0, 8, GIB)])
    assert predictive(NODES, briefly_busy, req) == "fast"             # 20 + 50 < 100
    assert predictive(NODES, {}, Request(32)) is None                 # no node has 32 CPUs


def test_choose_node_dispatches_by_name_or_callable():
    loads = _loads(big=[Running(1, 16, GIB)])
    assert choose_node("resource_aware", NODES, loads, Request(1)) == "fast"
    assert choose_node("least_loaded", NODES, loads, Request(1), by="tasks") == "small"   # tie: first
    assert choose_node("predictive", NODES, {}, Request(1, duration_s=10)) == "fast"
    rr = WeightedRoundRobin()
    assert choose_node(rr, NODES, {}, Request(1)) == "big"
    with pytest.raises(ConfigError, match="WeightedRoundRobin"):
        choose_node("weighted_round_robin", NODES, {}, Request(1))
    with pytest.raises(ConfigError, match="unknown placement strategy"):
        choose_node("random", NODES, {}, Request(1))


def test_suggest_strategy_by_predicted_shape():
    def p(util: float, duration: float) -> Prediction:
        return Prediction(duration, duration, 1, 1, 1, util, util, 10, "model")

    assert suggest_strategy(p(0.05, 5)) == "least_loaded"
    assert suggest_strategy(p(1.0, 600)) == "predictive"
    assert suggest_strategy(p(1.0, 5)) == "resource_aware"
