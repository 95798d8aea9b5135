"""The ``Prediction`` value and the rule-based fallback used before there is history.

Owns what a prediction says (quantiles of duration, peak memory and CPU utilisation,
where they came from and why) and the rules that answer when a component has fewer
samples than a model needs, or features a model never saw:

- duration: the median of the few runs seen (p90: their maximum x 1.5); with none, a
  quarter of the declared ``timeout_s`` (p90: the timeout), else ``DEFAULT_DURATION_S``.
- memory: the largest peak seen x 1.25 (p99: x 1.5); with none, the input size x
  ``MEMORY_FACTOR`` (p50: x 2), never below ``MEMORY_FLOOR``; p99 is p90 x 1.5.
- CPU utilisation: the declared ``num_cpus``.

Pure: no scikit-learn, no ray, no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rayflow.predict.features import Sample

DEFAULT_DURATION_S = 1.0        # the graph analysis's default weight, too
MEMORY_FLOOR = 256 << 20        # a Python worker with numpy/pyarrow loaded uses about this
MEMORY_FACTOR = 4.0             # input read, decoded and an output built beside it
FEW_DURATION_MARGIN = 1.5
FEW_MEMORY_MARGIN = 1.25
P99_OVER_P90 = 1.5

TARGETS = ("duration", "memory", "cpu_util")
Source = Literal["model", "rules"]


@dataclass(frozen=True)
class Prediction:
    """Predicted use of one component attempt. Seconds, bytes, and cores busy (cpu_s/wall)."""

    duration_p50: float
    duration_p90: float
    memory_p50: float
    memory_p90: float
    memory_p99: float
    cpu_util_p50: float
    cpu_util_p90: float
    n_samples: int
    source: Source
    reason: str = ""
    from_rules: tuple[str, ...] = ()     # targets the rules filled: "duration", "memory", "cpu_util"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rule_prediction(
    sample: Sample,
    *,
    reason: str,
    timeout_s: float | None = None,
    history: Sequence[Sample] = (),
) -> Prediction:
    """The fallback for ``sample`` (its declared ``num_cpus`` and input size), refined by
    the few earlier attempts in ``history`` when there are any."""
    d50, d90 = _duration(timeout_s, history)
    m50, m90, m99 = _memory(sample.input_bytes, history)
    cpu = float(sample.num_cpus)
    return Prediction(d50, d90, m50, m90, m99, cpu, cpu, len(history), "rules", reason, TARGETS)


def _duration(timeout_s: float | None, history: Sequence[Sample]) -> tuple[float, float]:
    seen = [s.duration_s for s in history if s.duration_s is not None and not s.oom_killed]
    if seen:
        return float(statistics.median(seen)), max(seen) * FEW_DURATION_MARGIN
    if timeout_s:
        return timeout_s / 4.0, float(timeout_s)
    return DEFAULT_DURATION_S, DEFAULT_DURATION_S


def _memory(input_bytes: int, history: Sequence[Sample]) -> tuple[float, float, float]:
    seen = [s.memory_need for s in history if s.memory_need is not None]
    if seen:
        top = max(seen)
        return float(statistics.median(seen)), top * FEW_MEMORY_MARGIN, top * P99_OVER_P90
    return memory_from_input(input_bytes)


def memory_from_input(input_bytes: int) -> tuple[float, float, float]:
    """Memory p50, p90, p99 by the size rule: input x 2 and x ``MEMORY_FACTOR``, floored."""
    p50 = max(float(MEMORY_FLOOR), 2.0 * input_bytes)
    p90 = max(float(MEMORY_FLOOR), MEMORY_FACTOR * input_bytes)
    return p50, p90, p90 * P99_OVER_P90

