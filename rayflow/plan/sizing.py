"""The sizing port: what the planner asks of a resource model, in one planning pass.

``make_plan(blueprint, sizing=...)`` takes any ``PlanSizing``: ``durations`` gives
predicted durations that order the work (the HEFT upward ranks and the fusion
decisions use them, as ``estimates`` would), ``resources`` gives new resource requests
for the components it sizes (``sizing="auto"``), as changes to their
``ComponentOptions``. The planner builds every Task itself; the sizing only answers
questions about them. The implementation over the learned model is
``rayflow.predict.history.ModelSizing``. Pure; no Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# component id -> ComponentOptions fields to change, e.g. {"num_cpus": 2.0, "memory": 2**30}
Overrides = Mapping[str, Mapping[str, Any]]


class PlanSizing(Protocol):
    """Predictions for a plan's Tasks (``tasks``: component id -> ``rayflow.plan.Task``)."""

    def durations(self, tasks: Mapping[str, Any]) -> Mapping[str, float]:
        """Predicted seconds of the components it knows; empty to order by the given
        estimates (asked once, before the order is fixed: the tasks' priorities, cache
        keys and kinds are not final yet, and are set on these same tasks afterwards, so
        read them during the call and keep none)."""

    def resources(self, tasks: Mapping[str, Any]) -> Overrides:
        """The option changes for the components it sizes; the rest keep what they
        declare (asked once, of the final tasks, before the feasibility check)."""
