"""The Python front end: ``@rf.component`` and ``@rf.workflow`` build Blueprints by tracing."""

from rayflow.dsl.component import Component, component
from rayflow.dsl.workflow import NodeHandle, Workflow, workflow

__all__ = ["Component", "NodeHandle", "Workflow", "component", "workflow"]
