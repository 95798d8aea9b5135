"""rayflow: a Ray-native workflow orchestrator. Public API (see API.md); re-exports only.

The names load on first use (PEP 562), so ``import rayflow`` costs next to nothing: a
process that only talks to a server (``rf.Client``, ``rayflow --server URL ...``) never
loads the planner, pyarrow or the service. The first use of any other public name loads
the whole API at once, the composition root ``rayflow.api`` with it (which registers the
cluster's run host), as importing the package eagerly did.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rayflow.api import explain, get_run, init, list_runs, resume, run, shutdown, stats, submit
    from rayflow.client import Client
    from rayflow.core.errors import (
        ComponentNotFound,
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
    from rayflow.dsl.connectors import http, secret, sql
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
    "CachePolicy", "Client", "Component", "ComponentNotFound", "ComponentTimeout", "ConfigError", "CycleError", "DuplicateIdError",
    "FunctionImportError", "InfeasibleResourceError", "Plan", "RayflowError", "ResourceError",
    "RunBusy", "RunCancelled", "RunHandle", "RunNotFound", "RunRecord", "SelfLoopError", "SignatureError",
    "SpecError", "UnknownComponentError", "Workflow", "WorkflowFailed", "WorkflowSpec",
    "component", "dynamic_map", "explain", "fan_out", "get_run", "group", "http", "init", "list_runs", "map_reduce",
    "resume", "run", "scatter_gather", "secret", "sql",
    "shutdown", "stats", "submit", "workflow",
]


def _load_api() -> None:
    """Bind every public name (but Client) in this module, as an eager import would."""
    import rayflow.api as api  # not `from rayflow import api`: that asks this module's __getattr__
    import rayflow.core.errors as errors
    from rayflow.core.options import CachePolicy
    from rayflow.dsl import Component, Workflow, component, workflow
    from rayflow.dsl.connectors import http, secret, sql
    from rayflow.dsl.dynamic import dynamic_map
    from rayflow.dsl.groups import fan_out, group
    from rayflow.dsl.patterns import map_reduce, scatter_gather
    from rayflow.plan import Plan
    from rayflow.runs.handle import RunHandle
    from rayflow.spec import WorkflowSpec
    from rayflow.store.port import RunRecord

    names: dict[str, Any] = {name: getattr(api, name) for name in _API_FUNCTIONS}
    names.update({name: getattr(errors, name) for name in _ERRORS})
    names.update(CachePolicy=CachePolicy, Component=Component, Workflow=Workflow, component=component,
                 workflow=workflow, dynamic_map=dynamic_map, map=dynamic_map, fan_out=fan_out, group=group,
                 map_reduce=map_reduce, scatter_gather=scatter_gather, Plan=Plan, RunHandle=RunHandle,
                 sql=sql, http=http, secret=secret,
                 WorkflowSpec=WorkflowSpec, RunRecord=RunRecord)
    globals().update(names)


_API_FUNCTIONS = ("explain", "get_run", "init", "list_runs", "resume", "run", "shutdown", "stats", "submit")
_ERRORS = ("ComponentNotFound", "ComponentTimeout", "ConfigError", "CycleError", "DuplicateIdError", "FunctionImportError",
           "InfeasibleResourceError", "RayflowError", "ResourceError", "RunBusy", "RunCancelled", "RunNotFound",
           "SelfLoopError", "SignatureError", "SpecError", "UnknownComponentError", "WorkflowFailed")
_API_NAMES = frozenset(__all__) - {"Client"} | {"map"}


def __getattr__(name: str) -> Any:
    if name == "Client":
        from rayflow.client import Client

        globals()["Client"] = Client
        return Client
    if name in _API_NAMES:
        _load_api()
        return globals()[name]
    if not name.startswith("_"):   # a subpackage not imported yet (rayflow.spec, ...): import it
        try:
            return importlib.import_module(f"rayflow.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"rayflow.{name}":
                raise
    raise AttributeError(f"module 'rayflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "map"})
