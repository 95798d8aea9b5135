"""Plan: from a Blueprint (what to call) to a Plan (how to run it). Pure, no Ray."""

from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.template import NodeRef
from rayflow.plan.planner import ClusterShape, Plan, Task, make_plan

__all__ = ["Blueprint", "Call", "ClusterShape", "NodeRef", "Plan", "Task", "make_plan"]
