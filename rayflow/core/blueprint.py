"""The Blueprint: a workflow resolved to calls, whichever way it was written.

Both front ends produce one: tracing a ``@rf.workflow`` function (rayflow.dsl) and
converting a ``WorkflowSpec`` (rayflow.spec). A Call holds the callable, its argument
template (upstream outputs as NodeRef leaves) and validated options. Pure; no Ray.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rayflow.core.errors import SignatureError, SpecError, UnknownComponentError
from rayflow.core.groups import Group, check_groups
from rayflow.core.options import FAILURE_STRATEGIES, ComponentOptions
from rayflow.core.template import collect_refs


@dataclass(frozen=True)
class Call:
    """One node: call ``fn(*args, **kwargs)`` with NodeRefs replaced by upstream outputs."""

    id: str
    fn: Callable[..., Any] | None
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: ComponentOptions = field(default_factory=ComponentOptions)
    fn_ref: str | None = None        # "module:callable", imported on the worker when set
    type: str = "python"
    checked: bool = False            # arguments already bound to the signature (DSL calls)
    # upstream ids, in first-use order: found in args and kwargs unless the maker passes them
    # (the DSL finds them while converting the arguments)
    deps: tuple[str, ...] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.deps is None:
            refs = collect_refs(self.args)
            collect_refs(self.kwargs, refs)
            object.__setattr__(self, "deps", tuple(refs))

    @property
    def name(self) -> str:
        if self.fn_ref:
            return self.fn_ref
        return getattr(self.fn, "__qualname__", None) or self.type


@dataclass(frozen=True)
class Blueprint:
    """A whole workflow, ready to plan: calls by id, outputs, workflow options."""

    name: str
    calls: dict[str, Call]
    output: Any = None               # template of the return value (NodeRef leaves)
    failure_strategy: str = "fail_fast"
    max_concurrency: int | None = None
    target: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    groups: tuple[Group, ...] = ()   # named sets of calls with their own bound and failure strategy

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", check_groups(self.groups, self.calls))
        if self.failure_strategy not in FAILURE_STRATEGIES:
            raise SpecError(
                f"workflow {self.name!r} field 'failure_strategy': expected one of "
                f"{', '.join(FAILURE_STRATEGIES)}, got {self.failure_strategy!r}"
            )
        mc = self.max_concurrency
        if mc is not None and (isinstance(mc, bool) or not isinstance(mc, int) or mc < 1):
            raise SpecError(f"workflow {self.name!r} field 'max_concurrency': expected an integer >= 1 or None, got {mc!r}")
        for ref in collect_refs(self.output):
            if ref not in self.calls:
                raise UnknownComponentError(f"workflow {self.name!r} output names unknown component {ref!r}", component=ref)

    @property
    def output_ids(self) -> tuple[str, ...]:
        return tuple(collect_refs(self.output))

    def deps(self) -> dict[str, tuple[str, ...]]:
        return {cid: call.deps for cid, call in self.calls.items()}


def check_signature(call: Call) -> None:
    """Raise SignatureError when ``call``'s arguments cannot bind to its function."""
    if call.fn is None or call.checked:
        return
    if inspect.isclass(call.fn):
        _bind(call, call.fn, (), dict(call.options.init_kwargs), what="init_kwargs of")
        _bind(call, call.fn.__call__, (None, *call.args), call.kwargs, what="")
    else:
        _bind(call, call.fn, call.args, call.kwargs, what="")


@functools.lru_cache(maxsize=4096)
def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # builtins without a signature: the call itself decides


# Whether arguments bind to a signature depends only on how many are positional and
# which names are passed: shapes that bound once are remembered (a fan-out of 10,000
# calls of one function binds once).
_BOUND_SHAPES: set[tuple] = set()
_BOUND_SHAPES_MAX = 100_000


def _bind(call: Call, fn: Callable[..., Any], args: tuple, kwargs: dict, *, what: str) -> None:
    shape = (fn, len(args), tuple(kwargs))
    try:
        if shape in _BOUND_SHAPES:
            return
    except TypeError:  # an unhashable callable: bind every time
        shape = None
    _bind_signature(call, fn, args, kwargs, what=what)
    if shape is not None:
        if len(_BOUND_SHAPES) >= _BOUND_SHAPES_MAX:
            _BOUND_SHAPES.clear()
        _BOUND_SHAPES.add(shape)


def _bind_signature(call: Call, fn: Callable[..., Any], args: tuple, kwargs: dict, *, what: str) -> None:
    try:
        sig = _signature(fn)
    except TypeError:  # an unhashable callable
        sig = inspect.signature(fn)
    if sig is None:
        return
    params = sig.parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in kwargs if k not in params or params[k].kind is inspect.Parameter.POSITIONAL_ONLY]
        if unknown:
            names = ", ".join(p for p in params if p != "self") or "none"
            raise SignatureError(
                f"component {call.id!r}: unknown {what}argument/port {unknown[0]!r} for {call.name} "
                f"(parameters: {names})",
                component=call.id,
            )
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        ports = ", ".join(p for p in sig.parameters if p != "self") or "none"
        raise SignatureError(
            f"component {call.id!r}: {what}arguments do not fit {call.name}: {exc} "
            f"(parameters: {ports})",
            component=call.id,
        ) from None
