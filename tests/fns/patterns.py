"""Components for the group and dynamic-map suites (importable by Ray workers)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

import rayflow as rf


@rf.component(num_cpus=0.1)
def numbers(n: int) -> list:
    """A list whose length is known only when this runs."""
    return list(range(n))


@rf.component(num_cpus=0.1)
def table(n: int, chunk: int | None = None) -> pa.Table:
    """``n`` rows; with ``chunk``, made of chunks of that many rows (several record batches)."""
    t = pa.table({"x": list(range(n))})
    if chunk:
        t = pa.Table.from_batches(t.to_batches(max_chunksize=chunk))
    return t


@rf.component(num_cpus=0.1)
def square(x: int, offset: int = 0) -> int:
    return x * x + offset


@rf.component(num_cpus=0.1)
def square_or_fail(x: int, bad: int = 3) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x * x


@rf.component(num_cpus=0.1)
def slow_or_fail(x: int, bad: int = 3, pause: float = 0.3) -> int:
    """Fails on ``bad`` at once; the others take ``pause`` seconds."""
    if x == bad:
        raise ValueError(f"item {x} is bad")
    time.sleep(pause)
    return x


@rf.component(num_cpus=0.1)
def span(x: int, pause: float = 0.2) -> tuple:
    """(started, ended) of this call: what overlaps can be measured from."""
    started = time.time()
    time.sleep(pause)
    return started, time.time()


@rf.component(num_cpus=0.1)
def logged_nap(x: int, ledger: str, pause: float = 3.0) -> int:
    """Writes "start", naps, writes "end" (to see whether a cancelled call went on)."""
    with open(ledger, "a") as f:
        f.write(f"start {x}\n")
    time.sleep(pause)
    with open(ledger, "a") as f:
        f.write(f"end {x}\n")
    return x


@rf.component(num_cpus=0.1)
def batch_stats(batch: pa.RecordBatch) -> dict:
    """The rows and the first and last x of one record batch (fails on anything else)."""
    assert isinstance(batch, pa.RecordBatch), type(batch)
    xs = batch.column("x").to_pylist()
    return {"rows": batch.num_rows, "first": xs[0], "last": xs[-1]}


@rf.component(num_cpus=0.1)
def batch_rows_or_fail(batch: pa.RecordBatch, bad_first: int = 0) -> int:
    if batch.column("x")[0].as_py() == bad_first:
        raise ValueError(f"batch at {bad_first} is bad")
    return batch.num_rows


@rf.component(num_cpus=0.1, max_retries=2, retry_exceptions=(ConnectionError,))
def flaky_item(ledger: str, fail_times: int = 1) -> int:
    """Fails ``fail_times`` times per ledger file (one per item), then returns the attempt."""
    path = Path(ledger)
    with path.open("a") as f:
        f.write("x")
    attempts = len(path.read_text())
    if attempts <= fail_times:
        raise ConnectionError(f"attempt {attempts} failed")
    return attempts


@rf.component(num_cpus=0.5)
def assigned_cpus(x: int) -> float:
    """The CPUs Ray gave this call (Ray executor only)."""
    import ray

    return ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)


@rf.component(num_cpus=0.1)
def collect(results: list) -> list:
    return list(results)
