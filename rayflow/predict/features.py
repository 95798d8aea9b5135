"""Features of one component attempt, and the matrix a model of its family trains on.

Owns the ``Sample`` value (what one attempt looked like before it ran, and what it
used), the extraction of numeric config from a call's literal arguments, turning a
run-store ``ComponentRecord`` into a ``Sample``, and the stable feature layout of one
component family (``to_matrix``). Pure: numpy only; must not import scikit-learn, ray,
or touch a store.

Layout (one row per sample, the same columns for every sample of a family):

    log1p(input_bytes), log1p(input_rows), input_rows_known, n_upstreams,
    then per config key, sorted: cfg:<key>, has:<key>

A missing value is 0 with its indicator column 0 (the ``*_known`` / ``has:*`` columns),
so any regressor can read the matrix, whether or not it accepts NaN.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rayflow.store.port import ComponentRecord

BASE_FEATURES = ("log_input_bytes", "log_input_rows", "input_rows_known", "n_upstreams")
FINGERPRINT_CHARS = 16   # of the code fingerprint kept per attempt: 64 bits tell code versions apart
MAX_CPU_UTIL = 64.0
# Substrings of a component error that mean the attempt was killed for memory (Ray's
# OutOfMemoryError and its memory monitor's message); matched case-insensitively.
OOM_MARKERS = ("outofmemoryerror", "out of memory", "running low on memory", "oom-kill")


@dataclass(frozen=True)
class Sample:
    """One attempt of one component: its features, and (once it ran) its outcomes.

    At plan time build it with the outcomes left unset (``duration_s`` None ...) and
    ``num_cpus``/``memory`` set to what the component declares; ``ResourceModel.predict``
    reads the features only.
    """

    component: str                          # the function, "module:qualname"
    fingerprint: str = ""                   # code fingerprint (rayflow.cache.code_fingerprint)
    config: Mapping[str, float] = field(default_factory=dict)   # numeric literal arguments
    input_bytes: int = 0
    input_rows: int | None = None           # None when unknown
    n_upstreams: int = 0
    node_id: str | None = None
    duration_s: float | None = None
    cpu_s: float | None = None
    peak_rss_bytes: int | None = None
    oom_killed: bool = False
    num_cpus: float = 1.0                   # requested (or declared, at plan time)
    memory: int | None = None               # requested bytes (or declared); None: no request

    @property
    def cpu_util(self) -> float | None:
        """CPU time over wall time (cores busy on average), clipped to [0, 64]."""
        if self.cpu_s is None or not self.duration_s or self.duration_s <= 0:
            return None
        return min(max(self.cpu_s / self.duration_s, 0.0), MAX_CPU_UTIL)

    @property
    def memory_need(self) -> float | None:
        """Bytes the attempt needed, at least: its peak; for an OOM kill, the larger of its
        peak and its request (it needed more than it was allowed)."""
        if self.oom_killed:
            known = [v for v in (self.peak_rss_bytes, self.memory) if v]
            return float(max(known)) if known else None
        return None if self.peak_rss_bytes is None else float(self.peak_rss_bytes)


def numeric_config(arguments: Mapping[str, Any]) -> dict[str, float]:
    """The numeric literal arguments of a call (ints, finite floats, bools as 0/1), by name.

    Anything else (strings, upstream references, containers) is left out: it is not a
    feature a regressor can read."""
    out: dict[str, float] = {}
    for name, value in arguments.items():
        if isinstance(value, numbers.Real):   # bool, int, float and numpy's scalars
            number = float(value)
            if math.isfinite(number):
                out[str(name)] = number
    return out


def is_oom(error: str | None) -> bool:
    """Whether a component's error text says it was killed for memory."""
    text = (error or "").lower()
    return any(marker in text for marker in OOM_MARKERS)


def sample_from_record(
    record: ComponentRecord,
    *,
    component: str,
    fingerprint: str = "",
    config: Mapping[str, float] | None = None,
    input_bytes: int = 0,
    input_rows: int | None = None,
) -> Sample | None:
    """A training sample from a finished component record, or None when it teaches nothing.

    Kept: SUCCEEDED attempts that ran (not served from the cache) and attempts killed
    for memory (their peak is a lower bound of the need). Other failures are dropped:
    their timings say nothing about a normal run. The record does not know the
    function, its config or its input size: the caller passes those from the plan."""
    oom = is_oom(record.error)
    if record.cached or not (record.state == "SUCCEEDED" or oom):
        return None
    resources = record.resources or {}
    memory = resources.get("memory")
    return Sample(
        component=component,
        fingerprint=fingerprint,
        config=dict(config or {}),
        input_bytes=int(input_bytes),
        input_rows=input_rows,
        n_upstreams=len(record.upstream),
        node_id=record.node_id,
        duration_s=record.duration_s,
        cpu_s=record.cpu_s,
        peak_rss_bytes=record.peak_rss_bytes,
        oom_killed=oom,
        num_cpus=float(resources.get("num_cpus", 1.0)),
        memory=int(memory) if memory else None,
    )


def config_keys(samples: Iterable[Sample]) -> tuple[str, ...]:
    """Every config key any of ``samples`` has, sorted: the family's config columns."""
    keys: set[str] = set()
    for s in samples:
        keys.update(s.config)
    return tuple(sorted(keys))


def feature_names(keys: Sequence[str]) -> list[str]:
    """Column names of the layout for config ``keys`` (as ``config_keys`` returns them)."""
    names = list(BASE_FEATURES)
    for key in keys:
        names += [f"cfg:{key}", f"has:{key}"]
    return names


def feature_row(sample: Sample, keys: Sequence[str]) -> np.ndarray:
    """One sample as a row of the layout for ``keys`` (config keys outside ``keys`` are ignored)."""
    rows_known = sample.input_rows is not None and sample.input_rows >= 0
    row = [
        math.log1p(max(sample.input_bytes, 0)),
        math.log1p(sample.input_rows) if rows_known else 0.0,
        1.0 if rows_known else 0.0,
        float(sample.n_upstreams),
    ]
    for key in keys:
        value = sample.config.get(key)
        present = value is not None and math.isfinite(value)
        row += [float(value) if present else 0.0, 1.0 if present else 0.0]
    return np.asarray(row, dtype=np.float64)


def to_matrix(samples: Sequence[Sample], keys: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """``(X, feature_names)`` for samples of one component family.

    ``keys``: the config columns; by default every key the samples have, sorted. Pass
    the keys a model was trained with to lay out new samples the same way."""
    keys = config_keys(samples) if keys is None else tuple(keys)
    names = feature_names(keys)
    if not samples:
        return np.empty((0, len(names))), names
    return np.vstack([feature_row(s, keys) for s in samples]), names


def function_features(task: Any) -> dict[str, str]:
    """The component family a task belongs to: ``fn`` ("module:qualname", or its
    ``module:callable`` reference) and ``fp``, its code fingerprint ("" when it has none)."""
    import inspect

    from rayflow.plan.fingerprints import code_fingerprint

    fn = task.fn
    if fn is None:
        return {"fn": task.fn_ref or task.id, "fp": ""}
    inner = inspect.unwrap(fn)
    name = task.fn_ref or f"{getattr(inner, '__module__', '?')}:{getattr(inner, '__qualname__', type(inner).__name__)}"
    try:
        fp = code_fingerprint(fn, task.options.version)[:FINGERPRINT_CHARS]
    except Exception:  # noqa: BLE001 - a callable without a fingerprint still has a family
        fp = ""
    return {"fn": name, "fp": fp}
