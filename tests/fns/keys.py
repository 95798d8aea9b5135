"""Fixed inputs whose cache keys must be the same in every process (test_keys.py runs
``sample_keys`` here and in a subprocess with another hash seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from rayflow.plan.fingerprints import code_fingerprint, component_key, value_fingerprint


def transform(table: pa.Table, factor: float = 2.0) -> pa.Table:
    return table.append_column("y", pa.compute.multiply(table["x"], factor))


class Model:
    def predict(self, x: float) -> float:
        return x * 3


def sample_keys() -> dict[str, str]:
    values = {
        "json": {"n": 10, "names": ["a", "b"], "nested": {"z": 1.5, "a": None}},
        "set": {"alpha", "beta", "gamma", "delta"},
        "frozenset": frozenset({"x", "y", 3}),
        "tuple": (1, "two", 3.0),
        "array": np.arange(12, dtype=np.int32).reshape(3, 4),
        "table": pa.table({"x": [1, 2, 3], "s": ["a", "b", None]}),
        "path": Path(__file__),
        "complex": complex(1, 2),
    }
    keys = {name: value_fingerprint(v) for name, v in values.items()}
    keys["code"] = code_fingerprint(transform)
    keys["class"] = code_fingerprint(Model)
    keys["component"] = component_key(keys["code"], {"factor": 2.0}, [keys["table"]], ["0" * 64])
    return keys
