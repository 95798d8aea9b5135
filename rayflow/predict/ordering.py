"""Order and place components by predicted cost: upward ranks and node choice.

Owns the HEFT upward rank over predicted durations (``upward_ranks``; the graph's own
rank, given a plain deps mapping) and the placement strategies, each a pure choice of
a node id for one component from node capacities, the predicted load on each node and
the component's predicted request:

- ``resource_aware``: the node with the most weighted headroom left after placing it;
- ``least_loaded``: the node with the smallest committed share (CPUs, memory or tasks);
- ``WeightedRoundRobin``: smooth weighted round robin (weights default to node CPUs);
- ``predictive``: the earliest expected finish (wait for room, then duration / speed).

All but ``predictive`` choose among nodes where the request fits now and answer None
when none does; ``predictive`` also weighs waiting on a busy node. ``choose_node``
dispatches by name. Pure: no ray, no clock; the engine turns a node id into Ray's
``NodeAffinitySchedulingStrategy(node_id, soft=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rayflow.core.errors import ConfigError
from rayflow.graph import Dag
from rayflow.graph import upward_ranks as _dag_upward_ranks
from rayflow.predict.rules import Prediction

EPS = 1e-9


def upward_ranks(deps: Mapping[str, Iterable[str]], durations: Mapping[str, float]) -> dict[str, float]:
    """HEFT upward rank of each id: its predicted duration plus the longest predicted chain
    below it (1.0 s where a duration is missing). Highest first is a valid submission
    order that starts critical-path work first. Raises CycleError/UnknownComponentError."""
    return _dag_upward_ranks(Dag(deps), durations)


@dataclass(frozen=True)
class NodeCapacity:
    """One node: its CPUs and memory bytes, and its speed relative to the reference node."""

    node_id: str
    cpus: float
    memory: int
    speed: float = 1.0


@dataclass(frozen=True)
class Running:
    """Work already placed on a node: what it holds and when it is predicted to end."""

    ends_in_s: float
    num_cpus: float
    memory: int = 0


@dataclass(frozen=True)
class NodeLoad:
    """The predicted load on one node: the work running (or assigned) there."""

    running: tuple[Running, ...] = ()

    @property
    def cpus(self) -> float:
        return sum(r.num_cpus for r in self.running)

    @property
    def memory(self) -> int:
        return sum(r.memory for r in self.running)

    @property
    def tasks(self) -> int:
        return len(self.running)


@dataclass(frozen=True)
class Request:
    """What the component to place asks for, and how long it is predicted to run."""

    num_cpus: float
    memory: int | None = None
    duration_s: float = 1.0


Loads = Mapping[str, NodeLoad]
Strategy = Callable[[Sequence[NodeCapacity], Loads, Request], "str | None"]


def _fits(node: NodeCapacity, load: NodeLoad, request: Request) -> bool:
    return (load.cpus + request.num_cpus <= node.cpus + EPS
            and load.memory + (request.memory or 0) <= node.memory)


def _fitting(nodes: Sequence[NodeCapacity], loads: Loads, request: Request) -> list[NodeCapacity]:
    return [n for n in nodes if _fits(n, loads.get(n.node_id, NodeLoad()), request)]


def _share(used: float, capacity: float) -> float:
    return used / capacity if capacity > 0 else math.inf


def resource_aware(
    nodes: Sequence[NodeCapacity],
    loads: Loads,
    request: Request,
    *,
    cpu_weight: float = 0.5,
    memory_weight: float = 0.5,
) -> str | None:
    """The fitting node with the largest weighted free share of CPU and memory once the
    request is placed (spreads heavy work); ties go to the earlier node."""
    best, best_score = None, -math.inf
    for node in _fitting(nodes, loads, request):
        load = loads.get(node.node_id, NodeLoad())
        free_cpu = 1.0 - _share(load.cpus + request.num_cpus, node.cpus)
        free_mem = 1.0 - _share(load.memory + (request.memory or 0), node.memory)
        score = cpu_weight * free_cpu + memory_weight * free_mem
        if score > best_score + EPS:
            best, best_score = node.node_id, score
    return best


def least_loaded(
    nodes: Sequence[NodeCapacity], loads: Loads, request: Request, *, by: str = "cpus",
) -> str | None:
    """The fitting node whose committed ``by`` ("cpus", "memory" or "tasks" per CPU) is
    the smallest share of its capacity; ties go to the earlier node."""
    measures: dict[str, Callable[[NodeCapacity, NodeLoad], float]] = {
        "cpus": lambda n, load: _share(load.cpus, n.cpus),
        "memory": lambda n, load: _share(load.memory, n.memory),
        "tasks": lambda n, load: _share(load.tasks, n.cpus),
    }
    if by not in measures:
        raise ConfigError(f"least_loaded: by={by!r}; expected one of {', '.join(measures)}")
    fitting = _fitting(nodes, loads, request)
    if not fitting:
        return None
    return min(fitting, key=lambda n: measures[by](n, loads.get(n.node_id, NodeLoad()))).node_id


class WeightedRoundRobin:
    """Smooth weighted round robin over the fitting nodes (nginx's algorithm): each pick
    adds every node's weight to its credit, takes the node with the most credit and
    charges it the total. Weights default to node CPUs. Keeps credit between calls;
    one instance per placement loop, not shared across threads."""

    def __init__(self, *, weights: Mapping[str, float] | None = None) -> None:
        self._weights = dict(weights or {})
        self._credit: dict[str, float] = {}

    def __call__(self, nodes: Sequence[NodeCapacity], loads: Loads, request: Request) -> str | None:
        fitting = _fitting(nodes, loads, request)
        if not fitting:
            return None
        weights = {n.node_id: self._weights.get(n.node_id, n.cpus) for n in fitting}
        for node_id, weight in weights.items():
            self._credit[node_id] = self._credit.get(node_id, 0.0) + weight
        chosen = max(weights, key=lambda node_id: self._credit[node_id])
        self._credit[chosen] -= sum(weights.values())
        return chosen


def earliest_start(node: NodeCapacity, load: NodeLoad, request: Request) -> float:
    """Predicted seconds until ``request`` fits on ``node`` as its running work ends
    (0 if it fits now, inf if it never can)."""
    if request.num_cpus > node.cpus + EPS or (request.memory or 0) > node.memory:
        return math.inf
    cpus, memory = load.cpus, load.memory
    if _fits(node, load, request):
        return 0.0
    for work in sorted(load.running, key=lambda r: r.ends_in_s):
        cpus, memory = cpus - work.num_cpus, memory - work.memory
        if cpus + request.num_cpus <= node.cpus + EPS and memory + (request.memory or 0) <= node.memory:
            return max(work.ends_in_s, 0.0)
    return math.inf


def predictive(nodes: Sequence[NodeCapacity], loads: Loads, request: Request) -> str | None:
    """The node with the earliest expected finish: time until the request fits there,
    plus its predicted duration over the node's speed. Ties go to the less loaded node,
    then the earlier one. None when no node could ever hold the request."""
    best, best_key = None, (math.inf, math.inf)
    for node in nodes:
        load = loads.get(node.node_id, NodeLoad())
        finish = earliest_start(node, load, request) + request.duration_s / max(node.speed, EPS)
        key = (finish, _share(load.cpus, node.cpus))
        if finish < math.inf and key < best_key:
            best, best_key = node.node_id, key
    return best


STRATEGIES: dict[str, Strategy] = {
    "resource_aware": resource_aware,
    "least_loaded": least_loaded,
    "predictive": predictive,
}


def choose_node(
    strategy: str | Strategy,
    nodes: Sequence[NodeCapacity],
    loads: Loads,
    request: Request,
    **options: Any,
) -> str | None:
    """The node ``strategy`` picks: a name in ``STRATEGIES`` (``options`` go to it as
    keywords) or a callable such as a ``WeightedRoundRobin`` instance."""
    if callable(strategy):
        return strategy(nodes, loads, request, **options)
    if strategy == "weighted_round_robin":
        raise ConfigError("strategy 'weighted_round_robin' keeps state between calls: pass a "
                          "WeightedRoundRobin() instance as the strategy, one per placement loop")
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown placement strategy {strategy!r}; expected one of "
                          f"{', '.join([*STRATEGIES, 'weighted_round_robin'])}")
    return STRATEGIES[strategy](nodes, loads, request, **options)


def suggest_strategy(prediction: Prediction, *, io_below: float = 0.3, long_s: float = 60.0) -> str:
    """A strategy name for a component by its predicted shape: I/O-bound (p90
    utilisation under ``io_below``) -> "least_loaded" (best called with by="tasks");
    long (p90 duration over ``long_s``) -> "predictive"; otherwise "resource_aware"."""
    if prediction.cpu_util_p90 < io_below:
        return "least_loaded"
    if prediction.duration_p90 > long_s:
        return "predictive"
    return "resource_aware"
