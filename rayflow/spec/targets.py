"""What can be run: a ``@rf.workflow``, a ``WorkflowSpec``, a dict, a spec file, or "module:attr".

Owns turning any of those plus inputs into a Blueprint, and the text that names the
target in the run store (so another process can rebuild it). Must not import ray.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from rayflow.core import local_code
from rayflow.core.errors import SpecError
from rayflow.dsl.workflow import Workflow
from rayflow.plan import Blueprint
from rayflow.spec.convert import to_blueprint
from rayflow.spec.loading import first_line
from rayflow.spec.model import WorkflowSpec

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def load_target(target: Any) -> tuple[Workflow | WorkflowSpec, str]:
    """The workflow object and the text naming it (spec path or module:attr)."""
    if isinstance(target, Workflow):
        return target, target.target
    if isinstance(target, WorkflowSpec):
        return target, ""
    if isinstance(target, dict):
        return WorkflowSpec.model_validate(target), ""
    if isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if text.endswith(SPEC_SUFFIXES) or os.path.isfile(text):
            path = Path(text).expanduser().resolve()
            local_code.add_dir(os.getcwd())   # `function: mymod:fn` imports as beside a script
            local_code.add_dir(str(path.parent), ship=True)
            return WorkflowSpec.from_file(str(path)), _recorded_path(path)
        if ":" in text:
            return _import_target(text), text
        raise SpecError(f"target {text!r}: expected a spec file (.yaml, .yml, .json) or 'module:workflow'")
    raise SpecError(f"cannot run a {type(target).__name__}; expected a @rf.workflow, a WorkflowSpec, a dict, a spec path or 'module:workflow'")


RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"   # set by Ray for the driver of a submitted job


def _recorded_path(path: Path) -> str:
    """The spec path a run records: absolute, except in a Ray job, whose working directory
    is a temporary copy of the submitter's: there the path relative to it (as submitted)."""
    if RAY_JOB_ENV in os.environ:
        try:
            return str(path.relative_to(Path.cwd().resolve()))
        except ValueError:
            pass
    return str(path)


def _import_target(text: str) -> Workflow | WorkflowSpec:
    module_name, _, attr = text.partition(":")
    local_code.add_dir(os.getcwd())  # as `python -m` does: the current folder's modules
    if not module_name or not attr:
        raise SpecError(f"target {text!r}: expected 'module:workflow', e.g. 'rayflow.examples.etl:pipeline'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"target {text!r}: cannot import module {module_name!r}: {first_line(exc)}") from exc
    except (Exception, SystemExit) as exc:   # the module itself fails: SyntaxError, ZeroDivisionError, exit()
        raise SpecError(f"target {text!r}: importing module {module_name!r} raised "
                        f"{type(exc).__name__}: {first_line(exc)}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part, None)
        except Exception as exc:  # noqa: BLE001 - a module __getattr__ or property that fails
            raise SpecError(f"target {text!r}: reading {attr!r} of module {module_name!r} raised "
                            f"{type(exc).__name__}: {first_line(exc)}") from exc
        if obj is None:
            raise SpecError(f"target {text!r}: module {module_name!r} has no attribute {attr!r}")
    if isinstance(obj, (Workflow, WorkflowSpec)):
        return obj
    if isinstance(obj, dict):
        return WorkflowSpec.model_validate(obj)
    raise SpecError(f"target {text!r} is a {type(obj).__name__}, not a @rf.workflow or a spec")


def blueprint_of(target: Any, inputs: dict[str, Any]) -> Blueprint:
    """Trace or convert ``target`` with ``inputs`` into a Blueprint."""
    obj, name = load_target(target)
    if isinstance(obj, Workflow):
        return obj.build(**inputs)
    return to_blueprint(obj, inputs, target=name)


def spec_document(target: Any) -> dict[str, Any] | None:
    """The spec behind ``target`` as a JSON object (what a run records so that any process
    can plan it again, without the file), or None when ``target`` is not a spec."""
    if isinstance(target, Workflow):
        return None
    if isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if not (text.endswith(SPEC_SUFFIXES) or os.path.isfile(text)):
            return None
    obj, _ = load_target(target) if not isinstance(target, WorkflowSpec) else (target, "")
    if not isinstance(obj, WorkflowSpec):
        return None
    return obj.model_dump(mode="json", by_alias=True, exclude_none=True)
