"""What a target becomes on the wire: ``{"spec": {...}}`` or ``{"workflow": "..."}``.

Owns reading what ``Client.submit`` is given, on the client's side: a dict (sent as it is),
an ``rf.WorkflowSpec`` (its JSON export, which ``WorkflowSpec.model_validate`` reads
back), a spec file (.yaml/.yml/.json, read and parsed here, named after the file as
``WorkflowSpec.from_file`` names it), an ``@rf.workflow`` defined in an importable module
(its ``module:attr``), or any other string (a registered workflow's name or an installed
``module:attr``, which the server resolves). Code never travels: a server only imports
what it has installed. Must not import rayflow.spec or rayflow.dsl (a laptop with the
client alone need not load them): a WorkflowSpec or Workflow given is recognised through
its module, already loaded when one exists.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from rayflow.core.errors import SpecError

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def submit_body(target: Any) -> dict[str, Any]:
    """The ``spec`` or ``workflow`` part of a ``POST /v1/runs`` body for ``target``."""
    if isinstance(target, dict):
        return {"spec": target}
    spec = _spec_export(target)
    if spec is not None:
        return {"spec": spec}
    workflow = _workflow_target(target)
    if workflow is not None:
        return {"workflow": workflow}
    if isinstance(target, os.PathLike) or (isinstance(target, str) and _is_spec_file(target)):
        return {"spec": read_spec_file(os.fspath(target))}
    if isinstance(target, str) and target.strip():
        return {"workflow": target.strip()}
    raise SpecError(f"cannot submit a {type(target).__name__} to a server; expected a spec (dict, "
                    "rf.WorkflowSpec or a .yaml/.yml/.json file), a registered workflow's name or 'module:workflow'")


def spec_document(spec: Any) -> dict[str, Any]:
    """A spec as JSON for ``POST /v1/workflows``: a dict, a WorkflowSpec or a spec file."""
    if isinstance(spec, dict):
        return spec
    exported = _spec_export(spec)
    if exported is not None:
        return exported
    if isinstance(spec, (str, os.PathLike)):
        return read_spec_file(os.fspath(spec))
    raise SpecError(f"spec: expected a dict, an rf.WorkflowSpec or a spec file, got {type(spec).__name__}")


def _is_spec_file(text: str) -> bool:
    return text.lower().endswith(SPEC_SUFFIXES) or os.path.isfile(text)


def read_spec_file(path: str) -> dict[str, Any]:
    """A spec file's document (YAML, or JSON by its suffix); SpecError naming the file."""
    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read spec file {str(p)!r}: {exc.strerror or exc}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml  # only for YAML files

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - json.JSONDecodeError or yaml.YAMLError, whichever parsed
        raise _not_valid(p, exc) from None
    if not isinstance(data, dict):
        raise SpecError(f"spec {str(p)!r}: expected a mapping at the top level, got {type(data).__name__}")
    if "name" not in data:
        data = {**data, "name": p.stem}   # as WorkflowSpec.from_file names it
    return data


def _not_valid(path: Path, exc: Exception) -> SpecError:
    fmt = "JSON" if path.suffix.lower() == ".json" else "YAML"
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SpecError(f"spec {str(path)!r} is not valid {fmt}: {reason}")


def _spec_export(value: Any) -> dict[str, Any] | None:
    model = sys.modules.get("rayflow.spec.model")
    if model is None or not isinstance(value, model.WorkflowSpec):
        return None
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


def _workflow_target(value: Any) -> str | None:
    dsl = sys.modules.get("rayflow.dsl.workflow")
    if dsl is None or not isinstance(value, dsl.Workflow):
        return None
    target = value.target
    if target.startswith("__main__:") or "<locals>" in target:
        raise SpecError(f"workflow {value.name!r} is defined in {target.partition(':')[0]!r}, which a server "
                        "cannot import; move it into an installed module, or submit a spec")
    return target
