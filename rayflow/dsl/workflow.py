"""``@rf.workflow``: trace a Python function into a Blueprint.

The workflow function runs once, on the driver, with the run's inputs; each
component call inside it records a node. Owns id assignment (function name, then
``_1``, ``_2``...), the conversion of NodeHandles into NodeRefs, input binding, and
turning an exception the function raises while it is traced into a one-line SpecError
(the cause chained). Must not import ray.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rayflow.core.blueprint import Blueprint, Call, check_signature
from rayflow.core.errors import DuplicateIdError, RayflowError, SpecError
from rayflow.core.groups import Group
from rayflow.core.options import FAILURE_STRATEGIES, with_sizing
from rayflow.core.template import NodeRef
from rayflow.dsl.component import Component
from rayflow.dsl.tracing import BUILDER


class NodeHandle:
    """The future output of a component inside a workflow function (not a value)."""

    __slots__ = ("id", "_builder", "index")

    def __init__(self, node_id: str, builder: _Builder, index: int | None = None) -> None:
        self.id = node_id
        self._builder = builder
        self.index = index   # one output of a component with num_outputs

    def __repr__(self) -> str:
        return f"<rayflow node {self.id}>" if self.index is None else f"<rayflow node {self.id}[{self.index}]>"

    def _num_outputs(self) -> int | None:
        call = self._builder.calls.get(self.id) if self.index is None else None
        return call.options.num_outputs if call is not None else None

    def __getitem__(self, index: int) -> NodeHandle:
        n = self._num_outputs()
        if not n:
            raise TypeError(f"node {self.id!r} has one output; declare the component with "
                            "num_outputs=N to return N values and index them")
        if isinstance(index, bool) or not isinstance(index, int) or not -n <= index < n:
            raise IndexError(f"node {self.id!r} has {n} outputs (num_outputs={n}); got index {index!r}")
        return NodeHandle(self.id, self._builder, index % n)

    def __bool__(self) -> bool:
        raise TypeError(
            f"node {self.id!r} has no value while the workflow is being built; "
            "pass it to another component instead of testing it"
        )

    def __iter__(self):
        n = self._num_outputs()
        if n:
            return iter([self[i] for i in range(n)])
        raise TypeError(
            f"node {self.id!r} cannot be iterated while the workflow is being built; "
            "pass it whole to a component (fan-out needs a count known when building)"
        )

    def __reduce__(self):
        raise TypeError(f"node {self.id!r} is a build-time handle and cannot be pickled")


_PLAIN = frozenset({int, float, str, bool, bytes, type(None)})
_CALL_TYPES = {"task": "python", "actor": "actor", "batch": "batch"}   # option kind -> spec type


class _Builder:
    """Collects the calls of one workflow trace, and the groups they were made in."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self._next_suffix: dict[str, int] = {}
        self.groups: dict[str, Group] = {}        # name -> options (members filled at the end)
        self.members: dict[str, list[str]] = {}
        self.group: str | None = None             # the group calls are made in now

    def add(self, comp: Component, args: tuple, kwargs: dict, node_id: str | None = None) -> NodeHandle:
        opts = comp.default_options
        node_id = node_id or opts.id or self._auto_id(comp.base_name)
        if node_id in self.calls:
            raise DuplicateIdError(f"two components share the id {node_id!r}; give one another id with .options(id=...)", component=node_id)
        convert = self._convert
        deps: dict[str, None] = {}   # the upstreams, in first-use order, found while converting
        call = Call(
            id=node_id,
            fn=comp.fn,
            args=tuple([convert(a, deps) for a in args]) if args else (),
            kwargs={k: convert(v, deps) for k, v in kwargs.items()} if kwargs else {},
            options=opts,
            type=_CALL_TYPES[opts.kind],
            deps=tuple(deps),
        )
        check_signature(call)
        object.__setattr__(call, "checked", True)  # frozen; set once, before anyone else sees it
        self.calls[node_id] = call
        if self.group is not None:
            self.members[self.group].append(node_id)
        return NodeHandle(node_id, self)

    def enter_group(self, group: Group) -> None:
        """Calls made from now on are members of ``group`` (see rayflow.dsl.groups)."""
        if self.group is not None:
            raise SpecError(f"group {group.name!r} is opened inside group {self.group!r}; groups do not nest")
        known = self.groups.setdefault(group.name, group)
        if known != group:
            raise SpecError(f"group {group.name!r} is opened again with other options "
                            f"(max_concurrency={group.max_concurrency!r}, failure_strategy={group.failure_strategy!r}; "
                            f"first: {known.max_concurrency!r}, {known.failure_strategy!r})")
        self.members.setdefault(group.name, [])
        self.group = group.name

    def exit_group(self) -> None:
        self.group = None

    def built_groups(self) -> tuple[Group, ...]:
        return tuple(replace(g, members=tuple(self.members[name])) for name, g in self.groups.items())

    def _auto_id(self, base: str) -> str:
        if base not in self.calls and base not in self._next_suffix:
            self._next_suffix[base] = 1
            return base
        n = self._next_suffix.get(base, 1)
        while f"{base}_{n}" in self.calls:
            n += 1
        self._next_suffix[base] = n + 1
        return f"{base}_{n}"

    def _convert(self, value: Any, deps: dict[str, None]) -> Any:
        """``value`` with each NodeHandle made a NodeRef, whose id is added to ``deps``."""
        kind = type(value)
        if kind in _PLAIN:
            return value
        if kind is NodeHandle:
            if value._builder is not self:
                raise SpecError(f"node {value.id!r} belongs to another workflow build", component=value.id)
            deps[value.id] = None
            return NodeRef(value.id, value.index)
        if isinstance(value, list):
            return [self._convert(v, deps) for v in value]
        if isinstance(value, tuple):
            return tuple(self._convert(v, deps) for v in value)
        if isinstance(value, dict):
            return {k: self._convert(v, deps) for k, v in value.items()}
        return value


class Workflow:
    """A traced workflow: ``build(**inputs)`` gives the Blueprint of one run."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None, failure_strategy: str,
                 max_concurrency: int | None, sizing: str | None = None, placement: str | None = None) -> None:
        if failure_strategy not in FAILURE_STRATEGIES:
            raise SpecError(f"workflow {name or fn.__name__!r} field 'failure_strategy': expected one of {', '.join(FAILURE_STRATEGIES)}, got {failure_strategy!r}")
        self.fn = fn
        self.name = name or fn.__name__
        self.failure_strategy = failure_strategy
        self.max_concurrency = max_concurrency
        self.sizing = sizing
        self.placement = placement
        self.target = f"{fn.__module__}:{fn.__qualname__}"
        functools.update_wrapper(self, fn, updated=())

    def build(self, **inputs: Any) -> Blueprint:
        bound = self._bind(inputs)
        builder = _Builder()
        token = BUILDER.set(builder)
        try:
            returned = self.fn(*bound.args, **bound.kwargs)
        except RayflowError:
            raise                      # already one line, naming its culprit
        except Exception as exc:
            raise self._traced_error(exc) from exc
        finally:
            BUILDER.reset(token)
        return Blueprint(
            name=self.name,
            calls=with_sizing(builder.calls, self.sizing, self.placement),
            output=builder._convert(returned, {}),
            failure_strategy=self.failure_strategy,
            max_concurrency=self.max_concurrency,
            target=self.target,
            inputs={k: v for k, v in bound.arguments.items()},
            groups=builder.built_groups(),
        )

    def _traced_error(self, exc: Exception) -> SpecError:
        try:
            text = " ".join(str(exc).split())
        except Exception:  # noqa: BLE001 - an exception whose __str__ raises
            text = "(its message cannot be read)"
        text = text if len(text) <= 200 else text[:197] + "..."
        return SpecError(f"workflow {self.name!r} ({self.target}) raised {type(exc).__name__} while it was "
                         f"traced: {text or '(no message)'}")

    def _bind(self, inputs: dict[str, Any]) -> inspect.BoundArguments:
        sig = inspect.signature(self.fn)
        try:
            bound = sig.bind(**inputs)
        except TypeError as exc:
            names = ", ".join(sig.parameters) or "none"
            raise SpecError(f"workflow {self.name!r}: inputs do not fit: {exc} (inputs: {names})") from None
        bound.apply_defaults()
        return bound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Outside a run, call the plain function (components run in-process)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<rayflow workflow {self.name}>"


def workflow(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
             failure_strategy: str = "fail_fast", max_concurrency: int | None = None,
             sizing: str | None = None, placement: str | None = None) -> Any:
    """Declare a workflow. Use bare (``@rf.workflow``) or with options."""

    def wrap(f: Callable[..., Any]) -> Workflow:
        return Workflow(f, name=name, failure_strategy=failure_strategy, max_concurrency=max_concurrency,
                        sizing=sizing, placement=placement)

    if fn is not None:
        return wrap(fn)
    return wrap
