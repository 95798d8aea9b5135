"""A small ETL example: generate rows, clean them in parallel partitions, aggregate.

Run it with ``rayflow run rayflow.examples.etl:pipeline`` or, as a spec, with
``rayflow run rayflow/examples/etl.yaml``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

import rayflow as rf


@rf.component
def load(n: int = 1000, seed: int = 0) -> pa.Table:
    """Generate ``n`` synthetic rows (id, amount, with a few invalid amounts)."""
    ids = pa.array(range(n), pa.int64())
    amounts = pc.subtract(pc.multiply(pc.bit_wise_and(pc.add(ids, seed), 127), 3), 20)
    return pa.table({"id": ids, "amount": amounts})


@rf.component(num_cpus=0.5)
def clean(table: pa.Table, part: int = 0, parts: int = 1) -> pa.Table:
    """Keep this partition's rows with a non-negative amount."""
    ids = table["id"]
    mine = pc.equal(pc.subtract(ids, pc.multiply(pc.divide(ids, parts), parts)), part)
    keep = pc.and_(mine, pc.greater_equal(table["amount"], 0))
    return table.filter(keep)


@rf.component
def total(*tables: pa.Table) -> dict:
    """Row count and amount sum over every partition."""
    rows = sum(t.num_rows for t in tables)
    amount = sum(pc.sum(t["amount"]).as_py() or 0 for t in tables)
    return {"rows": rows, "amount": amount}


@rf.workflow(name="etl")
def pipeline(n: int = 1000, parts: int = 4):
    table = load(n)
    cleaned = [clean.options(id=f"clean_{i}")(table, part=i, parts=parts) for i in range(parts)]
    return total(*cleaned)
