"""Argument templates: nested lists/tuples/dicts whose leaves may be upstream references.

Owns collecting the references of a template and filling them with values. Used
on the driver (to find dependencies) and in workers (to build the call); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeRef:
    """Stands for the output of component ``id`` inside an argument template."""

    id: str


@dataclass(frozen=True, slots=True)
class Slot:
    """Position ``index`` in the list of upstream values handed to a worker."""

    index: int

    def __reduce__(self):  # pickled once per upstream of every call: keep it a flat tuple
        return (Slot, (self.index,))


def collect_refs(template: Any, out: dict[str, None] | None = None) -> dict[str, None]:
    """Upstream ids in first-use order (as dict keys, for order and uniqueness)."""
    if out is None:
        out = {}
    if isinstance(template, NodeRef):
        out.setdefault(template.id, None)
    elif isinstance(template, (list, tuple)):
        for item in template:
            kind = type(item)
            if kind is NodeRef:
                out.setdefault(item.id, None)
            elif kind not in _LEAVES:
                collect_refs(item, out)
    elif isinstance(template, dict):
        for item in template.values():
            if type(item) not in _LEAVES:
                collect_refs(item, out)
    return out


_LEAVES = frozenset({int, float, str, bool, bytes, type(None)})   # never hold a NodeRef


def to_slots(template: Any, index: dict[str, int]) -> Any:
    """Replace each NodeRef by the Slot of its id's position in the upstream list."""
    if isinstance(template, NodeRef):
        return Slot(index[template.id])
    if isinstance(template, list):
        return [to_slots(t, index) for t in template]
    if isinstance(template, tuple):
        return tuple(to_slots(t, index) for t in template)
    if isinstance(template, dict):
        return {k: to_slots(v, index) for k, v in template.items()}
    return template


def fill(template: Any, values: tuple | list) -> Any:
    """Replace each Slot (or NodeRef keyed by values dict) by its value."""
    if isinstance(template, Slot):
        return values[template.index]
    if isinstance(template, list):
        return [fill(t, values) for t in template]
    if isinstance(template, tuple):
        return tuple(fill(t, values) for t in template)
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    return template


def fill_refs(template: Any, values: dict[str, Any]) -> Any:
    """Replace each NodeRef by ``values[id]`` (the workflow's output template)."""
    if isinstance(template, NodeRef):
        return values[template.id]
    if isinstance(template, list):
        return [fill_refs(t, values) for t in template]
    if isinstance(template, tuple):
        return tuple(fill_refs(t, values) for t in template)
    if isinstance(template, dict):
        return {k: fill_refs(v, values) for k, v in template.items()}
    return template
