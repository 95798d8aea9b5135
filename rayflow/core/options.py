"""Component options: Ray's names and units, parsed and checked once.

Owns the ``ComponentOptions`` value (resources, retries, timeout, kind, ...) and the
parsing of resource quantities such as "512MiB". Pure: no Ray, no I/O. Every
error names the component and the field, with the expected and the actual value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rayflow.core.errors import ResourceError, SpecError

KINDS = ("task", "actor", "batch")
FAILURE_STRATEGIES = ("fail_fast", "continue_on_error")

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
    "ti": 1024**4, "tib": 1024**4,
}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_memory(value: Any, *, component: str | None = None, field_name: str = "memory") -> int | None:
    """Bytes from an int/float or a string such as "512MiB", "2GiB", "1.5GB"."""
    if value is None:
        return None
    where = _where(component, field_name)
    if isinstance(value, bool):
        raise ResourceError(f"{where}: expected bytes or a size like '512MiB', got {value!r}", component=component)
    if isinstance(value, (int, float)):
        number = _float(value)
    elif isinstance(value, str):
        match = _QUANTITY.match(value)
        unit = match.group(2).lower() if match else None
        if not match or unit not in _UNITS:
            raise ResourceError(
                f"{where}: cannot parse {value!r}; expected bytes or a size like '512MiB', '2GiB', '1GB'",
                component=component,
            )
        number = float(match.group(1)) * _UNITS[unit]
    else:
        raise ResourceError(f"{where}: expected bytes or a size like '512MiB', got {type(value).__name__} {value!r}", component=component)
    _check_number(number, where, component)
    return int(number)


def parse_amount(value: Any, *, component: str | None, field_name: str) -> float | None:
    """A non-negative finite number (CPUs, GPUs, custom resource units)."""
    if value is None:
        return None
    where = _where(component, field_name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ResourceError(f"{where}: expected a non-negative number, got {value!r}", component=component)
    try:
        number = _float(value)
    except ValueError:
        raise ResourceError(f"{where}: expected a non-negative number, got {value!r}", component=component) from None
    _check_number(number, where, component)
    return number


def _float(value: Any) -> float:
    """``float(value)``, infinite for an int too large for a float (``_check_number`` refuses it)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _check_number(number: float, where: str, component: str | None) -> None:
    if math.isnan(number) or math.isinf(number):
        raise ResourceError(f"{where}: expected a finite non-negative number, got {number}", component=component)
    if number < 0:
        raise ResourceError(f"{where}: expected a non-negative number, got {number:g}", component=component)


SIZINGS = (None, "auto", "static")   # static: the declared resources, even in a sizing="auto" workflow
PLACEMENTS = (None, "ray", "resource_aware", "least_loaded", "weighted_round_robin", "predictive")


@dataclass(frozen=True)
class CachePolicy:
    """How a component's result is cached across runs (``cache=CachePolicy(...)``;
    ``cache=True`` is ``CachePolicy()``, a dict its fields). ``ttl_s``: how long an entry
    serves (None: until evicted); ``ignore``: argument names left out of the key (a log
    level, a progress flag)."""

    ttl_s: float | None = None
    ignore: tuple[str, ...] = ()


def parse_cache(value: Any, cid: str | None) -> CachePolicy | None:
    """``cache`` as given (None/False, True, a dict, a CachePolicy) -> a policy or None (off)."""
    if value is None or value is False:
        return None
    if value is True:
        return CachePolicy()
    if isinstance(value, CachePolicy):
        policy = value
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - {"ttl_s", "ignore"})
        if unknown:
            raise SpecError(f"component {cid!r} field 'cache': unknown key(s) {', '.join(unknown)}; "
                            "expected ttl_s, ignore", component=cid)
        policy = CachePolicy(ttl_s=value.get("ttl_s"), ignore=tuple(value.get("ignore") or ()))
    else:
        raise SpecError(f"component {cid!r} field 'cache': expected true, false or {{ttl_s, ignore}}, "
                        f"got {value!r}", component=cid)
    ttl = parse_amount(policy.ttl_s, component=cid, field_name="cache.ttl_s")
    if ttl is not None and ttl <= 0:
        raise SpecError(f"component {cid!r} field 'cache.ttl_s': expected a positive number of seconds, got {ttl}",
                        component=cid)
    if not all(isinstance(n, str) for n in policy.ignore):
        raise SpecError(f"component {cid!r} field 'cache.ignore': expected argument names, got {policy.ignore!r}",
                        component=cid)
    return CachePolicy(ttl_s=ttl, ignore=tuple(policy.ignore))


def _where(component: str | None, field_name: str) -> str:
    return f"component {component!r} field {field_name!r}" if component else f"field {field_name!r}"


@dataclass(frozen=True)
class ComponentOptions:
    """Validated options of one component. Units as in Ray: CPUs, GPUs, bytes."""

    id: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    max_retries: int = 0
    retry_exceptions: bool | tuple[type[BaseException], ...] = False
    timeout_s: float | None = None
    cache: CachePolicy | None = None  # None: not cached; True/dict/CachePolicy when given
    checkpoint: bool = True           # keep the output where a resumed run can read it
    sizing: str | None = None         # "auto": num_cpus and memory from the resource model
    placement: str | None = None      # None/"ray": Ray's scheduler; else a rayflow strategy (PLACEMENTS)
    kind: str = "task"
    concurrency: int = 1
    batch_size: int | None = None     # kind="batch": rows per batch (at most)
    buffer_size: int | None = None    # kind="batch" in a stream: batches in flight (at most)
    num_outputs: int | None = None    # the function returns this many values, each its own output
    init_kwargs: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None
    fuse: bool | None = None          # True: may run fused with its neighbours; None: when history says it is tiny

    def merged(self, overrides: Mapping[str, Any], *, component: str | None = None) -> ComponentOptions:
        """A copy with ``overrides`` applied and checked (as Ray's ``.options``)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            who = f"component {component!r}: " if component else ""
            raise SpecError(
                f"{who}unknown option(s) {', '.join(unknown)}; expected one of {', '.join(sorted(known))}",
                component=component,
            )
        return normalize(replace(self, **overrides), component=component or overrides.get("id"))

    def ray_resources(self) -> dict[str, float]:
        """The request as one resource dict, named as Ray names them (CPU, GPU, memory, custom)."""
        req: dict[str, float] = {"CPU": self.num_cpus}
        if self.num_gpus:
            req["GPU"] = self.num_gpus
        if self.memory:
            req["memory"] = float(self.memory)
        req.update(self.resources)
        return req

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            out["num_gpus"] = self.num_gpus
        if self.memory:
            out["memory"] = self.memory
        if self.resources:
            out["resources"] = dict(self.resources)
        return out


def normalize(opts: ComponentOptions, *, component: str | None) -> ComponentOptions:
    """Parse and check every field; raise a one-line SpecError naming the culprit."""
    cid = component or opts.id
    custom = _parse_custom(opts.resources, cid)
    retries = _parse_int(opts.max_retries, cid, "max_retries", minimum=0)
    concurrency = _parse_int(opts.concurrency, cid, "concurrency", minimum=1)
    batch_size = None if opts.batch_size is None else _parse_int(opts.batch_size, cid, "batch_size", minimum=1)
    buffer_size = None if opts.buffer_size is None else _parse_int(opts.buffer_size, cid, "buffer_size", minimum=1)
    num_outputs = None if opts.num_outputs is None else _parse_int(opts.num_outputs, cid, "num_outputs", minimum=1)
    if opts.sizing not in SIZINGS:
        raise SpecError(f"component {cid!r} field 'sizing': expected one of auto, static, got {opts.sizing!r}",
                        component=cid)
    if opts.placement not in PLACEMENTS:
        raise SpecError(f"component {cid!r} field 'placement': expected one of "
                        f"{', '.join(p for p in PLACEMENTS if p)}, got {opts.placement!r}", component=cid)
    if opts.fuse is not None and not isinstance(opts.fuse, bool):
        raise SpecError(f"component {cid!r} field 'fuse': expected true, false or null, got {opts.fuse!r}", component=cid)
    if not isinstance(opts.checkpoint, bool):
        raise SpecError(f"component {cid!r} field 'checkpoint': expected true or false, got {opts.checkpoint!r}", component=cid)
    if opts.kind not in KINDS:
        raise SpecError(f"component {cid!r} field 'kind': expected one of {', '.join(KINDS)}, got {opts.kind!r}", component=cid)
    timeout = parse_amount(opts.timeout_s, component=cid, field_name="timeout_s")
    if timeout is not None and timeout == 0:
        raise SpecError(f"component {cid!r} field 'timeout_s': expected a positive number of seconds, got 0", component=cid)
    return replace(
        opts,
        num_cpus=parse_amount(opts.num_cpus, component=cid, field_name="num_cpus") or 0.0,
        num_gpus=parse_amount(opts.num_gpus, component=cid, field_name="num_gpus") or 0.0,
        memory=parse_memory(opts.memory, component=cid),
        resources=custom,
        max_retries=retries,
        retry_exceptions=_parse_retry_exceptions(opts.retry_exceptions, cid),
        timeout_s=timeout,
        cache=parse_cache(opts.cache, cid),
        concurrency=concurrency,
        batch_size=batch_size,
        num_outputs=num_outputs,
        buffer_size=buffer_size,
        init_kwargs=dict(opts.init_kwargs or {}),
    )


def _parse_custom(resources: Any, cid: str | None) -> dict[str, float]:
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise ResourceError(f"component {cid!r} field 'resources': expected a dict of name -> amount, got {resources!r}", component=cid)
    out = {}
    for name, amount in resources.items():
        if name in ("CPU", "GPU", "memory"):
            raise ResourceError(
                f"component {cid!r} field 'resources': {name!r} is not a custom resource; use num_cpus, num_gpus or memory",
                component=cid,
            )
        out[str(name)] = parse_amount(amount, component=cid, field_name=f"resources.{name}")
    return out


def _parse_int(value: Any, cid: str | None, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"component {cid!r} field {name!r}: expected an integer >= {minimum}, got {value!r}", component=cid)
    return value


def _parse_retry_exceptions(value: Any, cid: str | None) -> bool | tuple[type[BaseException], ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, type) and issubclass(value, BaseException):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, type) and issubclass(v, BaseException) for v in value):
        return tuple(value)
    raise SpecError(
        f"component {cid!r} field 'retry_exceptions': expected True, False or a list of exception classes, got {value!r}",
        component=cid,
    )


def with_sizing(calls: Mapping[str, Any], sizing: str | None, placement: str | None = None) -> dict[str, Any]:
    """A workflow's ``sizing`` and ``placement`` applied to each call that did not choose its own."""
    if sizing not in SIZINGS:
        raise SpecError(f"workflow field 'sizing': expected one of auto, static, got {sizing!r}")
    if placement not in PLACEMENTS:
        raise SpecError(f"workflow field 'placement': expected one of {', '.join(p for p in PLACEMENTS if p)}, "
                        f"got {placement!r}")
    out = dict(calls)
    for field_name, value in (("sizing", sizing), ("placement", placement)):
        if value is None:
            continue
        for cid, call in out.items():
            if getattr(call.options, field_name) is None:
                out[cid] = replace(call, options=replace(call.options, **{field_name: value}))
    return out
