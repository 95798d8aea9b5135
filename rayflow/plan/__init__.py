"""Plan: from a Blueprint (what to call) to a Plan (how to run it), a read-only value.
Predictions come in through the sizing port (``PlanSizing``). Pure, no Ray."""

from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.template import NodeRef
from rayflow.plan.frozen import FrozenDict
from rayflow.plan.planner import ClusterShape, Plan, Task, make_plan
from rayflow.plan.sizing import PlanSizing

__all__ = ["Blueprint", "Call", "ClusterShape", "FrozenDict", "NodeRef", "Plan", "PlanSizing", "Task", "make_plan"]
