"""Synthetic run history with a known truth, for the predict tests.

duration = A * rows (x lognormal-ish noise), peak memory = B * input_bytes + C (+ noise),
CPU busy 0.9 of the wall time for the "cpu" kind, 0.05 for the "io" kind.
"""

from __future__ import annotations

import numpy as np

from rayflow.predict import Sample

A = 2e-5            # seconds per row
B = 3.0             # bytes of memory per input byte
C = 200 << 20       # the worker's own footprint
BYTES_PER_ROW = 100
COMPONENT = "pipeline.steps:transform"


def true_duration(rows: int) -> float:
    return A * rows


def true_memory(input_bytes: int) -> float:
    return B * input_bytes + C


def history(
    n: int,
    *,
    seed: int = 0,
    component: str = COMPONENT,
    fingerprint: str = "v1",
    a: float = A,
    util: float = 0.9,
    config: dict[str, float] | None = None,
) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        rows = int(rng.uniform(1e4, 1e6))
        nbytes = rows * BYTES_PER_ROW
        duration = max(a * rows * (1 + 0.15 * rng.standard_normal()), 1e-3)
        peak = int(B * nbytes + C + (20 << 20) * rng.standard_normal())
        cpu_s = duration * util * rng.uniform(0.8, 1.0)
        out.append(Sample(component, fingerprint, dict(config or {"k": 3.0}), nbytes, rows, 1, "node-1",
                          duration, cpu_s, peak, False, 1.0, None))
    return out


def planned(rows: int, *, component: str = COMPONENT, fingerprint: str = "v1",
            config: dict[str, float] | None = None, num_cpus: float = 1.0) -> Sample:
    """A sample as the engine builds it at plan time: features, no outcomes."""
    return Sample(component, fingerprint, dict(config or {"k": 3.0}), rows * BYTES_PER_ROW, rows, 1,
                  num_cpus=num_cpus)
