"""Placement of components on nodes by a rayflow strategy (the Ray adapter's part).

Owns the view of the cluster a run places against (alive nodes: CPUs, memory) and the
load rayflow itself placed on each node (what is in flight, with its request and its
predicted duration), and turns a strategy's choice into Ray's soft node affinity: Ray
still runs the call elsewhere if the chosen node cannot take it. The choices are the
pure functions of ``rayflow.predict.ordering``. Components with ``placement`` unset or
"ray" are left to Ray's scheduler.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rayflow.predict.ordering import (
    NodeCapacity,
    NodeLoad,
    Request,
    Running,
    WeightedRoundRobin,
    choose_node,
)

DEFAULT_DURATION_S = 1.0


class Placer:
    """Chooses a node per call; ``done(cid)`` when its call is final."""

    def __init__(self, durations: dict[str, float] | None = None) -> None:
        self.nodes = [NodeCapacity(n["NodeID"], float(n["Resources"].get("CPU", 0.0)),
                                   int(n["Resources"].get("memory", 0)))
                      for n in ray.nodes() if n.get("Alive")]
        self._durations = durations or {}
        self._running: dict[str, dict[str, tuple[float, Running]]] = {n.node_id: {} for n in self.nodes}
        self._where: dict[str, str] = {}
        self._rr = WeightedRoundRobin()

    def strategy_for(self, task: Any) -> Any:
        name = task.options.placement
        return self._rr if name == "weighted_round_robin" else name

    def options(self, task: Any) -> dict[str, Any]:
        """Ray options placing ``task``'s call (empty: Ray chooses)."""
        if not self.nodes:
            return {}
        now = time.monotonic()
        loads = {node: NodeLoad(tuple(_left(r, started, now) for started, r in calls.values()))
                 for node, calls in self._running.items()}
        o = task.options
        duration = self._durations.get(task.id, DEFAULT_DURATION_S)
        node = choose_node(self.strategy_for(task), self.nodes, loads, Request(o.num_cpus, o.memory, duration))
        if node is None:
            return {}
        self._running[node][task.id] = (now, Running(duration, o.num_cpus, o.memory or 0))
        self._where[task.id] = node
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=True)}

    def done(self, cid: str) -> None:
        node = self._where.pop(cid, None)
        if node is not None:
            self._running[node].pop(cid, None)


def _left(running: Running, started: float, now: float) -> Running:
    """What a placed call is predicted to hold from now on (its remaining time)."""
    return Running(max(running.ends_in_s - (now - started), 0.0), running.num_cpus, running.memory)
