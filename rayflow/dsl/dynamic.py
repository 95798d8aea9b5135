"""``rf.map``: a dynamic map, traced as one component of the workflow.

``rf.map(fn, items, max_concurrency=None, failure_strategy="fail_fast", batch_size=None,
name=None, kwargs=None)`` returns the node whose value is ``[fn(item, **kwargs) for item
in items]``, where ``items`` is a node (or a literal) whose value, a list or an Arrow
table, is known only at run time: a table is mapped over its record batches (at most
``batch_size`` rows each); a list item by item (or in lists of ``batch_size`` items).
``kwargs`` may hold nodes (each call gets their values).

The map is one component (id ``name``, default ``map_<fn>``) that asks for no CPU; each
item runs with ``fn``'s declared resources, timeout and retries (on Ray: one task per
item, at most ``max_concurrency`` at once; on the local executor: one after another).
``rayflow.execute.worker.dynamic`` documents the failure strategies, the value and the per-item
outcome that metrics show. The mapped component's ``cache`` and ``checkpoint`` apply to
the map's whole list. Outside a workflow it is a plain in-process map. Must not import ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rayflow.core.errors import SpecError
from rayflow.core.options import FAILURE_STRATEGIES, ComponentOptions
from rayflow.dsl.component import Component
from rayflow.dsl.tracing import current_builder
from rayflow.execute.worker.dynamic import DynamicMap
from rayflow.plan.fingerprints import code_fingerprint


def dynamic_map(fn: Component, items: Any, *, max_concurrency: int | None = None,
                failure_strategy: str = "fail_fast", batch_size: int | None = None, name: str | None = None,
                kwargs: Mapping[str, Any] | None = None) -> Any:
    """The node of the list of ``fn(item, **kwargs)`` over ``items`` known at run time (module doc)."""
    who = f"rf.map({getattr(fn, 'base_name', fn)!r})"
    if not isinstance(fn, Component):
        raise TypeError(f"rf.map: expected a component (@rf.component), got {type(fn).__name__} {fn!r}")
    if fn.default_options.kind == "actor":
        raise SpecError(f"{who}: an actor component cannot be mapped; map a task or batch component")
    _check_bound(who, "max_concurrency", max_concurrency)
    _check_bound(who, "batch_size", batch_size)
    if failure_strategy not in FAILURE_STRATEGIES:
        raise SpecError(f"{who} field 'failure_strategy': expected one of {', '.join(FAILURE_STRATEGIES)}, "
                        f"got {failure_strategy!r}")
    item = fn.default_options
    mapper = DynamicMap(fn.fn, item, max_concurrency=max_concurrency, failure_strategy=failure_strategy,
                        batch_size=batch_size)
    kw = dict(kwargs or {})
    builder = current_builder()
    if builder is None:
        return mapper(items, **kw).value
    node_id = name or builder._auto_id(f"map_{fn.base_name}")
    options = ComponentOptions().merged(
        {"num_cpus": 0, "sizing": "static", "placement": "ray", "cache": item.cache, "checkpoint": item.checkpoint,
         "version": _version(fn, failure_strategy, batch_size), "fuse": False},   # it fans out: never fused
        component=node_id)
    return builder.add(Component(mapper, options), (items,), kw, node_id=node_id)


def _version(fn: Component, failure_strategy: str, batch_size: int | None) -> str | None:
    """A cached map's key covers the mapped code (or its declared version) and the settings
    that change its value; an uncached map keeps the component's version."""
    item = fn.default_options
    if item.cache is None:
        return item.version
    code = item.version if item.version is not None else code_fingerprint(fn.fn)
    return f"{code}+map({failure_strategy},{batch_size})"


def _check_bound(who: str, field: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise SpecError(f"{who} field {field!r}: expected an integer >= 1 or None, got {value!r}")


__all__ = ["dynamic_map"]
