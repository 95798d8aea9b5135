"""Batch stages for the connector tests: a SQL source through two stages into a SQL sink."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def double(batch: pa.RecordBatch) -> pa.RecordBatch:
    """amount * 2 (as a float)."""
    i = batch.schema.get_field_index("amount")
    doubled = pc.multiply(pc.cast(batch.column(i), pa.float64()), 2.0)
    return batch.set_column(i, "amount", doubled)


def tag(batch: pa.RecordBatch, label: str = "x") -> pa.RecordBatch:
    """A ``label`` column."""
    return batch.append_column("label", pa.array([label] * batch.num_rows, pa.string()))


def params_of(value: str = "") -> list:
    """A read's parameters, computed upstream."""
    return [value]


def ids_of(values: list) -> list:
    return [{"id": v} for v in values]
