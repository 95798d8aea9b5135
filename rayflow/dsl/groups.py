"""Fan-out/fan-in groups while a workflow is traced: ``rf.group`` and ``rf.fan_out``.

- ``with rf.group("score", max_concurrency=4, failure_strategy="continue_on_error"):``
  every component called inside the block is a member of the group ``score``. Opening
  a group of the same name again (in a loop) adds to it; its options must be the same.
  Groups do not nest, and a component is in one group at most.
- ``rf.fan_out(fn, items, max_concurrency=4, failure_strategy=..., name="score",
  kwargs={...})``: ``fn(item, **kwargs)`` for every item (a list known while tracing;
  items may be nodes), each call a member of the group ``name`` (default: the
  component's name) with the id ``{name}_{i}`` (a later fan_out into the same group
  numbers on); returns the list of nodes, so
  ``join(rf.fan_out(...))`` fans in.

``max_concurrency`` bounds the members in flight at once; ``failure_strategy`` (None:
the run's) decides what a member's failure does to the others and to the run.
``rayflow.execute.state`` has the exact semantics; docs/patterns.md shows them.
Outside a workflow both are plain: ``group`` does nothing, ``fan_out`` calls ``fn``
on each item in turn. Must not import ray.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from rayflow.core.errors import SpecError
from rayflow.core.groups import Group
from rayflow.dsl.component import Component
from rayflow.dsl.tracing import current_builder
from rayflow.dsl.workflow import NodeHandle


@contextlib.contextmanager
def group(name: str, *, max_concurrency: int | None = None,
          failure_strategy: str | None = None) -> Iterator[str]:
    """Make every component called in the block a member of group ``name`` (see module doc)."""
    options = Group(name, (), max_concurrency, failure_strategy)   # checked here, before any call
    builder = current_builder()
    if builder is None:
        yield name
        return
    builder.enter_group(options)
    try:
        yield name
    finally:
        builder.exit_group()


def fan_out(fn: Component, items: Iterable[Any], *, max_concurrency: int | None = None,
            failure_strategy: str | None = None, name: str | None = None,
            kwargs: Mapping[str, Any] | None = None) -> list[Any]:
    """The nodes of ``fn(item, **kwargs)`` for every item, members of one group (module doc)."""
    if not isinstance(fn, Component):
        raise TypeError(f"rf.fan_out: expected a component (@rf.component), got {type(fn).__name__} {fn!r}")
    if isinstance(items, NodeHandle) and items.index is None and not items._num_outputs():
        raise SpecError(f"rf.fan_out: the items come from node {items.id!r}, known only when it has run; "
                        "use rf.map to fan out over a list known at run time")
    items = list(items)
    kw = dict(kwargs or {})
    gname = name or fn.base_name
    builder = current_builder()
    if builder is None:
        return [fn(item, **kw) for item in items]
    with group(gname, max_concurrency=max_concurrency, failure_strategy=failure_strategy):
        first = len(builder.members[gname])   # a second fan_out into the group goes on numbering
        return [builder.add(fn, (item,), kw, node_id=f"{gname}_{first + i}") for i, item in enumerate(items)]


__all__ = ["fan_out", "group"]
