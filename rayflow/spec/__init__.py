"""Spec: the declarative workflow (YAML/JSON/dict) as pydantic models, and its conversion."""

from rayflow.spec.model import ComponentSpec, ConnectionSpec, ResourcesSpec, WorkflowSpec

__all__ = ["ComponentSpec", "ConnectionSpec", "ResourcesSpec", "WorkflowSpec"]
