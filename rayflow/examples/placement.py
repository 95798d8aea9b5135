"""Placement on a cluster: one component asks for the custom resource ``node_b``.

Ray runs ``on_node_b`` only on a node that offers ``node_b`` (``cluster/local.sh start``
starts such a node); ``anywhere`` has no such request. Each returns where it ran, and
``where`` gathers both. Run it with ``rayflow run rayflow/examples/placement.yaml
--address auto`` or ``rayflow run rayflow.examples.placement:pipeline --address auto``.
On a cluster without ``node_b`` the run is rejected before it starts.
"""

from __future__ import annotations

import os
import socket

import rayflow as rf


def _here() -> dict:
    """This worker's Ray node id (None outside Ray, e.g. ``--executor local``), host and pid."""
    import ray  # imported where the component runs: importing this module does not import Ray

    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    return {"node_id": node_id, "host": socket.gethostname(), "pid": os.getpid()}


@rf.component(resources={"node_b": 1}, num_cpus=0.5)
def on_node_b() -> dict:
    """Runs only where the custom resource ``node_b`` is offered."""
    return _here()


@rf.component(num_cpus=0.5)
def anywhere() -> dict:
    """No custom resource: Ray places it on any node with half a CPU free."""
    return _here()


@rf.component(num_cpus=0.1)
def where(node_b: dict, other: dict) -> dict:
    """Both placements, keyed by component."""
    return {"on_node_b": node_b, "anywhere": other}


@rf.workflow(name="placement")
def pipeline():
    return where(on_node_b(), anywhere())


# -- rayflow's placement strategies (placement=... on a workflow or a component) ------------


@rf.component(num_cpus=0.5)
def hop(previous: dict | None, i: int, pause_s: float = 0.2) -> dict:
    """Waits ``pause_s`` and says where it ran (after ``previous``, when given)."""
    import time

    time.sleep(pause_s)
    return {**_here(), "i": i}


@rf.workflow(name="round_robin", placement="weighted_round_robin")
def round_robin(n: int = 4):
    """A chain: Ray alone would keep it where its input is; weighted round robin spreads
    its steps over the nodes in proportion to their CPUs."""
    x, steps = None, []
    for i in range(n):
        x = hop(x, i)
        steps.append(x)
    return steps


@rf.workflow(name="least_loaded", placement="least_loaded")
def least_loaded(n: int = 3, pause_s: float = 1.0):
    """Independent steps, each to the node with the smallest share of its CPUs taken."""
    return [hop(None, i, pause_s) for i in range(n)]
