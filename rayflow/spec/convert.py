"""WorkflowSpec + inputs -> Blueprint.

Owns the meaning of a spec: ``{$input: name}`` references, connections (ports are
keyword arguments; several connections to one port make a list; connections with
no port are positional, in listed order), outputs (default: every sink), types and
options, groups. Must not import ray.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from rayflow.connect.components import http_call_of, sql_call
from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.errors import (
    DuplicateIdError,
    SelfLoopError,
    SignatureError,
    SpecError,
    UnknownComponentError,
)
from rayflow.core.groups import Group
from rayflow.core.options import ComponentOptions, normalize, with_sizing
from rayflow.core.resolve import import_callable, import_exception
from rayflow.core.template import NodeRef, collect_refs
from rayflow.spec.model import RUNNABLE_TYPES, ComponentSpec, WorkflowSpec, _name

__all__ = ["RUNNABLE_TYPES", "to_blueprint"]


def to_blueprint(spec: WorkflowSpec, inputs: dict[str, Any] | None = None, *, target: str = "") -> Blueprint:
    """Resolve functions, inputs and connections; raise a SpecError naming the culprit."""
    values = _inputs(spec, inputs or {})
    ids = _check_ids(spec)
    positional, ported = _connections(spec, ids)
    calls: dict[str, Call] = {}
    for comp in spec.components:
        config = _resolve_inputs(comp.config, values, comp.id)
        for port, refs in ported[comp.id].items():
            if port in config:
                raise SignatureError(f"component {comp.id!r}: port {port!r} is connected and also set in config", component=comp.id)
            config[port] = refs[0] if len(refs) == 1 else list(refs)
        if comp.type in ("sql", "http"):
            calls[comp.id] = _connector(comp, values, tuple(positional[comp.id]), ported[comp.id])
            continue
        calls[comp.id] = Call(
            id=comp.id,
            fn=_function(comp),
            args=tuple(positional[comp.id]),
            kwargs=config,
            options=_options(comp),
            fn_ref=comp.function,
            type=comp.type,
        )
    return Blueprint(
        name=spec.name,
        calls=with_sizing(calls, spec.sizing, spec.placement),
        output=_output(spec, calls),
        failure_strategy=spec.failure_strategy,
        max_concurrency=spec.max_concurrency,
        target=target,
        inputs=values,
        groups=tuple(Group(g.name, tuple(g.members), g.max_concurrency, g.failure_strategy) for g in spec.groups),
    )


def _inputs(spec: WorkflowSpec, given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(spec.inputs))
    if unknown:
        known = ", ".join(sorted(spec.inputs)) or "none"
        raise SpecError(f"workflow {spec.name!r} has no input {unknown[0]!r} (inputs: {known})")
    return {**spec.inputs, **given}


def _check_ids(spec: WorkflowSpec) -> set[str]:
    seen: set[str] = set()
    for comp in spec.components:
        if comp.id in seen:
            raise DuplicateIdError(f"two components share the id {comp.id!r}", component=comp.id)
        seen.add(comp.id)
    return seen


def _connections(spec: WorkflowSpec, ids: set[str]):
    positional: dict[str, list[NodeRef]] = defaultdict(list)
    ported: dict[str, dict[str, list[NodeRef]]] = defaultdict(dict)
    for n, conn in enumerate(spec.connections, start=1):
        for end in (conn.source, conn.target):
            if end not in ids:
                raise UnknownComponentError(
                    f"connection #{n} ({_name(conn.source)} -> {_name(conn.target)}) names unknown component {end!r}",
                    component=end,
                )
        if conn.source == conn.target:
            raise SelfLoopError(f"component {conn.source!r} is connected to itself (connection #{n})", component=conn.source)
        if conn.port:
            ported[conn.target].setdefault(conn.port, []).append(NodeRef(conn.source))
        else:
            positional[conn.target].append(NodeRef(conn.source))
    return positional, ported


def _resolve_inputs(value: Any, inputs: dict[str, Any], cid: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$input"}:
            name = value["$input"]
            if not isinstance(name, str):
                raise SpecError(f"component {cid!r} field 'config': {{$input: NAME}} expects the name of an input, "
                                f"got {type(name).__name__} {_name(name)}", component=cid)
            if name not in inputs:
                known = ", ".join(sorted(inputs)) or "none"
                raise SpecError(f"component {cid!r} reads unknown input {name!r} (inputs: {known})", component=cid)
            return inputs[name]
        return {k: _resolve_inputs(v, inputs, cid) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_inputs(v, inputs, cid) for v in value]
    return value


def _connector(comp: ComponentSpec, values: dict[str, Any], positional: tuple,
               ported: dict[str, list[NodeRef]]) -> Call:
    """A ``type: sql``/``type: http`` component's call (rayflow.connect.components): its
    fields with inputs read, and the connections to its ports (``params``, ``table``,
    ``data``, ``body``, ...) in place of those fields."""
    if comp.config:
        raise SpecError(f"component {comp.id!r} field 'config': a {comp.type} component takes its fields "
                        "at the top level (url, query, params, ...), not in config", component=comp.id)
    block = comp.sql if comp.type == "sql" else comp.http
    assert block is not None   # the model checked it
    fields = _resolve_inputs(block.model_dump(exclude_unset=True) if comp.type == "sql" else block.call_fields(),
                             values, comp.id)
    for port, refs in ported.items():
        if port not in _CONNECTOR_PORTS[comp.type]:
            raise SignatureError(f"component {comp.id!r}: a {comp.type} component has no port {port!r} "
                                 f"(ports: {', '.join(_CONNECTOR_PORTS[comp.type])})", component=comp.id)
        fields[port] = refs[0] if len(refs) == 1 else list(refs)
    if comp.type == "sql":
        made = sql_call(comp.id, {**fields, "batch_size": comp.batch_size}, positional, _has_refs)
    else:
        http = comp.http
        made = http_call_of(comp.id, fields, positional, batch_size=comp.batch_size,
                            stream=bool(http and http.stream), in_flight=http.in_flight if http else None)
    opts = _options(comp)
    opts = normalize(replace(opts, kind=made.kind, batch_size=made.batch_size), component=comp.id)
    return Call(id=comp.id, fn=made.fn, args=made.args, kwargs=made.kwargs, options=opts, type=comp.type,
                checked=True)


_CONNECTOR_PORTS = {"sql": ("params", "table", "data"), "http": ("body", "params", "headers", "url")}


def _has_refs(value: Any) -> bool:
    return bool(collect_refs(value))


def _function(comp: ComponentSpec):
    if comp.function is None:
        return None
    return import_callable(comp.function, component=comp.id)


def _options(comp: ComponentSpec) -> ComponentOptions:
    res = comp.resources
    retry: Any = comp.retry_exceptions
    if isinstance(retry, list):
        retry = tuple(import_exception(name, component=comp.id) for name in retry)
    opts = ComponentOptions(
        id=comp.id,
        num_cpus=1.0 if res.num_cpus is None else res.num_cpus,
        num_gpus=0.0 if res.num_gpus is None else res.num_gpus,
        memory=res.memory,
        resources=dict(res.custom),
        max_retries=comp.max_retries,
        retry_exceptions=retry,
        timeout_s=comp.timeout_s,
        cache=comp.cache,
        checkpoint=comp.checkpoint,
        sizing=comp.sizing,
        placement=comp.placement,
        kind=RUNNABLE_TYPES.get(comp.type, "task"),
        concurrency=comp.concurrency,
        batch_size=comp.batch_size,
        num_outputs=comp.num_outputs,
        buffer_size=comp.buffer_size,
        init_kwargs=dict(comp.init),
        version=comp.version,
        fuse=comp.fuse,
    )
    return normalize(opts, component=comp.id)


def _output(spec: WorkflowSpec, calls: dict[str, Call]) -> Any:
    outputs = spec.outputs
    if outputs is None:
        has_children = {ref.id for call in calls.values() for ref in map(NodeRef, call.deps)}
        sinks = [cid for cid in calls if cid not in has_children]
        return NodeRef(sinks[0]) if len(sinks) == 1 else {cid: NodeRef(cid) for cid in sinks}
    names = [outputs] if isinstance(outputs, str) else list(outputs)
    for name in names:
        if name not in calls:
            raise UnknownComponentError(f"workflow {spec.name!r} output names unknown component {name!r}", component=name)
    return NodeRef(outputs) if isinstance(outputs, str) else {n: NodeRef(n) for n in names}
