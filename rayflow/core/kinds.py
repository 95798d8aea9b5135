"""The kinds of call a planned component runs as.

Owns ``CallKind``, the one name every layer uses for how a component's call is made: the
planner sets it on each Task (rayflow.plan.planner), executors choose their submission
strategy by it (rayflow.execute.ray.executor). Pure: the standard library only.

- ``TASK``: a plain call, one per component.
- ``ACTOR``: a call on a member of the component's actor pool (``Task.pool``).
- ``STREAM``: a stage of a stream, a chain of batch components run as a pipeline of
  actors (``Plan.streams``); the stream's head starts the whole chain.
- ``FUSED``: a member of a fused group, run with the others in one call (``Plan.fused``).
- ``MAP``: a dynamic map (``rf.map``): a coordinator call fanning out one call per item.

A stream or fused member runs as such only where the executor can run the whole chain
or group at once (no ``max_concurrency`` bound, resources for every stage); otherwise it
runs as a plain ``TASK``.
"""

from __future__ import annotations

import enum
from typing import Any


class CallKind(str, enum.Enum):
    """How a component's call is made (module doc)."""

    TASK = "task"
    ACTOR = "actor"
    STREAM = "stream"
    FUSED = "fused"
    MAP = "map"


# What marks a dynamic map's function (rayflow.execute.worker.dynamic.DynamicMap) to the
# layers below execute, which cannot import it: a class attribute set to True.
MAP_MARKER = "rayflow_dynamic_map"


def is_dynamic_map(fn: Any) -> bool:
    """Whether ``fn`` is a dynamic map's function (its class carries MAP_MARKER)."""
    return getattr(type(fn), MAP_MARKER, False) is True


__all__ = ["MAP_MARKER", "CallKind", "is_dynamic_map"]
