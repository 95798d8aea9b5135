"""What a resumed run may keep: checkpoints of components that ran the code that would run now.

A run records what ran: its spec (for runs of a spec file, a ``WorkflowSpec`` or a dict),
its import path (for Python workflows) and, per component, the code fingerprint and the
upstream ids and numeric literal arguments it ran with (``ComponentRecord.features``
``fp`` and ``config``, and ``.upstream``). Resume
plans the recorded spec again, never the file as it is now; then ``reusable`` keeps a
checkpoint only when its component's code and upstreams are what they were: a component
whose code changed runs again, and so does everything downstream of it (its inputs will
differ). ``trusted`` then keeps only the checkpoints the run reads that pass the store's
check (they verify and decode): one that does not is as if missing, and its component
runs again. Pure: no I/O but the check it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def trusted(plan: Any, restored: Mapping[str, Any], check: Callable[[Any], None]) -> tuple[dict[str, Any], dict[str, str]]:
    """The checkpoints of ``restored`` a resumed run can read, and why each other one runs
    again. Those the run reads (by a component still to run, or as the workflow's output)
    must pass ``check`` (it raises for one that would not verify or decode, or cannot be
    read); one that fails is not restored (its component runs again), so what it reads
    is read and checked in turn."""
    keep, dropped, checked = dict(restored), {}, set()
    outputs, children = set(plan.output_ids), plan.dag.children
    while todo := [c for c in keep if c not in checked and (c in outputs or any(k not in keep for k in children(c)))]:
        for cid in todo:
            checked.add(cid)
            try:
                check(keep[cid])
            except Exception as exc:  # noqa: BLE001 - an unusable checkpoint is a missing one
                dropped[cid] = f"its checkpoint cannot be used ({type(exc).__name__}: {exc})"[:300]
                del keep[cid]
    return keep, dropped


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
