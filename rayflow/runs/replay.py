"""What a resumed run may keep: checkpoints of components that ran the code that would run now.

A run records what ran: its spec (for runs of a spec file, a ``WorkflowSpec`` or a dict),
its import path (for Python workflows) and, per component, the code fingerprint and the
upstream ids and numeric literal arguments it ran with (``ComponentRecord.features``
``fp`` and ``config``, and ``.upstream``). Resume
plans the recorded spec again, never the file as it is now; then ``reusable`` keeps a
checkpoint only when its component's code and upstreams are what they were: a component
whose code changed runs again, and so does everything downstream of it (its inputs will
differ). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rayflow.predict.features import function_features
from rayflow.runs.recorder import literal_config


def reusable(plan: Any, found: Mapping[str, Any], earlier: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The checkpoints in ``found`` that ``plan`` may restore, and why each other component
    of ``plan`` that has one runs again ({component id: reason}).

    ``earlier``: the run's component records from before (id -> ComponentRecord)."""
    changed = {cid: why for cid in plan.tasks if (why := _changed(plan, cid, earlier.get(cid))) is not None}
    stale: dict[str, str] = dict(changed)
    for cid, why in changed.items():
        for below in plan.dag.descendants(cid):
            stale.setdefault(below, f"upstream {cid!r} {why.removeprefix('its ')}")
    keep = {cid: c for cid, c in found.items() if cid in plan.tasks and cid not in stale}
    return keep, {cid: why for cid, why in stale.items() if cid in found}


def _changed(plan: Any, cid: str, record: Any) -> str | None:
    """Why ``cid`` cannot reuse what it ran before (None: it can, or it never ran)."""
    if record is None or not record.features:
        return None
    before = record.features.get("fp") or ""
    now = function_features(plan.tasks[cid]).get("fp") or ""
    if before and now and before != now:
        return "its code changed since it ran"
    if record.upstream and set(record.upstream) != set(plan.tasks[cid].deps):
        return "its upstream components changed since it ran"
    if record.features.get("config", {}) != literal_config(plan.tasks[cid]):
        return "its arguments changed since it ran"
    return None
