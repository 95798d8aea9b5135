"""Plan: from a Blueprint (what to call) to a Plan (how to run it). Pure, no Ray."""

from rayflow.plan.blueprint import Blueprint, Call
from rayflow.plan.planner import ClusterShape, Plan, Task, make_plan
from rayflow.plan.template import NodeRef

__all__ = ["Blueprint", "Call", "ClusterShape", "NodeRef", "Plan", "Task", "make_plan"]
