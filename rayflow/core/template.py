"""Argument templates: nested lists/tuples/dicts whose leaves may be upstream references.

Owns collecting the references of a template and filling them with values. Used
on the driver (to find dependencies) and in workers (to build the call); pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeRef:
    """Stands for the output of component ``id`` inside an argument template; ``index``
    picks one output of a component declared with ``num_outputs``."""

    id: str
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Slot:
    """Position ``index`` in the list of upstream values handed to a worker."""

    index: int

    def __reduce__(self):  # pickled once per upstream of every call: keep it a flat tuple
        return (Slot, (self.index,))


@dataclass(frozen=True, slots=True)
class SlotRun:
    """A list of the upstream values at positions ``start`` to ``stop - 1``, in order: a
    fan-in (a list of nodes) travels as this one object instead of a Slot per node."""

    start: int
    stop: int

    def __reduce__(self):
        return (SlotRun, (self.start, self.stop))


def _visit_refs(template: Any, visit: Callable[[NodeRef], Any]) -> None:
    """Call ``visit`` on every NodeRef of ``template``, in order."""
    if isinstance(template, NodeRef):
        visit(template)
    elif isinstance(template, (list, tuple)):
        for item in template:
            if type(item) not in _LEAVES:
                _visit_refs(item, visit)
    elif isinstance(template, dict):
        for item in template.values():
            if type(item) not in _LEAVES:
                _visit_refs(item, visit)


def collect_refs(template: Any, out: dict[str, None] | None = None) -> dict[str, None]:
    """Upstream ids in first-use order (as dict keys, for order and uniqueness)."""
    out = {} if out is None else out
    _visit_refs(template, lambda ref: out.setdefault(ref.id, None))
    return out


_LEAVES = frozenset({int, float, str, bool, bytes, type(None)})   # never hold a NodeRef


def map_refs(template: Any, replace: Callable[[NodeRef], Any]) -> Any:
    """A copy of ``template`` with each NodeRef replaced by ``replace(ref)`` (driver side)."""
    if isinstance(template, NodeRef):
        return replace(template)
    if isinstance(template, list):
        return [map_refs(t, replace) for t in template]
    if isinstance(template, tuple):
        return tuple(map_refs(t, replace) for t in template)
    if isinstance(template, dict):
        return {k: map_refs(v, replace) for k, v in template.items()}
    return template


def expand_outputs(template: Any, multi: Mapping[str, int]) -> Any:
    """Each whole reference to a component with several outputs becomes the tuple of
    references to each of them (the consumer receives them all, as a tuple)."""
    def expand(ref: NodeRef) -> Any:
        n = multi.get(ref.id) if ref.index is None else None
        return tuple(NodeRef(ref.id, i) for i in range(n)) if n else ref

    return map_refs(template, expand)


def slot(i: int) -> Slot:
    """The Slot of position ``i``: one shared object per position (Slots are immutable, and
    a plan of 10,000 components would otherwise build one per reference)."""
    try:
        return _SLOTS[i]
    except IndexError:
        _SLOTS.extend(Slot(j) for j in range(len(_SLOTS), max(i + 1, 2 * len(_SLOTS))))
        return _SLOTS[i]


_SLOTS: list[Slot] = [Slot(i) for i in range(64)]


def to_slots(template: Any, index: Mapping[tuple[str, int | None], int]) -> Any:
    """Replace each NodeRef by the Slot of its (id, output) position in the inputs list;
    a list of references to consecutive positions becomes one SlotRun."""
    kind = type(template)
    if kind is NodeRef:
        return slot(index[(template.id, template.index)])
    if kind in _LEAVES:
        return template
    if kind is tuple:   # a call's positional arguments: mostly references and plain values
        return tuple(slot(index[(t.id, t.index)]) if type(t) is NodeRef else
                     t if type(t) in _LEAVES else to_slots(t, index) for t in template)
    if isinstance(template, list):
        if template and all(type(t) is NodeRef for t in template):
            first = index[(template[0].id, template[0].index)]
            if all(index[(t.id, t.index)] == first + i for i, t in enumerate(template)):
                return SlotRun(first, first + len(template))
        return [to_slots(t, index) for t in template]
    if isinstance(template, tuple):
        return tuple(to_slots(t, index) for t in template)
    if isinstance(template, dict):
        return {k: to_slots(v, index) for k, v in template.items()} if template else {}
    return template


def inputs_in_order(args: tuple, n: int) -> bool:
    """``args`` are Slots 0 to ``n - 1`` in order (n >= 1): the call's inputs as they are."""
    return n > 0 and len(args) == n and all(type(a) is Slot and a.index == i for i, a in enumerate(args))


def fill(template: Any, values: tuple | list) -> Any:
    """Replace each Slot by its value (in workers, per call: kept as one tight function)."""
    if isinstance(template, Slot):
        return values[template.index]
    if isinstance(template, SlotRun):
        return list(values[template.start:template.stop])
    if isinstance(template, list):
        return [fill(t, values) for t in template]
    if isinstance(template, tuple):
        return tuple(fill(t, values) for t in template)
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    return template


def collect_inputs(template: Any, out: dict[tuple[str, int | None], None] | None = None,
                   ) -> dict[tuple[str, int | None], None]:
    """The (id, output index) pairs a template reads, in first-use order (dict keys)."""
    out = {} if out is None else out
    _visit_refs(template, lambda ref: out.setdefault((ref.id, ref.index), None))
    return out


def fill_refs(template: Any, values: Mapping[str, Any]) -> Any:
    """Replace each NodeRef by ``values[id]`` (or its ``index``-th output): the workflow's
    output template."""
    def value(ref: NodeRef) -> Any:
        out = values[ref.id]
        return out if ref.index is None else out[ref.index]

    return map_refs(template, value)
