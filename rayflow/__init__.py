"""rayflow: a Ray-native workflow orchestrator. Public API (see API.md); re-exports only."""

from rayflow.api import explain, get_run, init, list_runs, resume, run, shutdown, stats, submit
from rayflow.core.errors import (
    ComponentTimeout,
    ConfigError,
    CycleError,
    DuplicateIdError,
    FunctionImportError,
    InfeasibleResourceError,
    RayflowError,
    ResourceError,
    RunBusy,
    RunCancelled,
    RunNotFound,
    SelfLoopError,
    SignatureError,
    SpecError,
    UnknownComponentError,
    WorkflowFailed,
)
from rayflow.core.options import CachePolicy
from rayflow.dsl import Component, Workflow, component, workflow
from rayflow.dsl.dynamic import dynamic_map
from rayflow.dsl.groups import fan_out, group
from rayflow.dsl.patterns import map_reduce, scatter_gather
from rayflow.plan import Plan
from rayflow.runs.handle import RunHandle
from rayflow.spec import WorkflowSpec
from rayflow.store.port import RunRecord

map = dynamic_map   # rf.map (not in __all__: a star import must not shadow the builtin)

__version__ = "0.1.0"

__all__ = [
    "CachePolicy", "Component", "ComponentTimeout", "ConfigError", "CycleError", "DuplicateIdError",
    "FunctionImportError", "InfeasibleResourceError", "Plan", "RayflowError", "ResourceError",
    "RunBusy", "RunCancelled", "RunHandle", "RunNotFound", "RunRecord", "SelfLoopError", "SignatureError",
    "SpecError", "UnknownComponentError", "Workflow", "WorkflowFailed", "WorkflowSpec",
    "component", "dynamic_map", "explain", "fan_out", "get_run", "group", "init", "list_runs", "map_reduce",
    "resume", "run", "scatter_gather",
    "shutdown", "stats", "submit", "workflow",
]
