"""Components used by the executor contract suite (importable by Ray workers)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import rayflow as rf


@rf.component(num_cpus=0.1)
def const(x):
    return x


@rf.component(num_cpus=0.1)
def add(*xs):
    return sum(xs)


@rf.component(num_cpus=0.1)
def inc(x):
    return x + 1


@rf.component(num_cpus=0.1)
def total(parts: list):
    return sum(parts)


@rf.component(num_cpus=0.1)
def boom(x=None, message="boom"):
    raise ValueError(message)


@rf.component(num_cpus=0.1)
def sleepy(seconds, value=None):
    time.sleep(seconds)
    return value


@rf.component(num_cpus=0.1)
def flaky(ledger: str, fail_times: int, value=1):
    """Fails ``fail_times`` times (counted in a ledger file), then returns ``value``."""
    path = Path(ledger)
    with path.open("a") as f:
        f.write("x")
    if len(path.read_text()) <= fail_times:
        raise ConnectionError(f"attempt {len(path.read_text())} failed")
    return value


@rf.component(num_cpus=0.1)
def record(ledger: str, value=None):
    """Appends this pid to a ledger file (to count executions)."""
    with open(ledger, "a") as f:
        f.write(f"{os.getpid()}\n")
    return value


@rf.component(kind="actor", concurrency=2, num_cpus=0.1, init_kwargs={"offset": 100})
class Offset:
    """A stateful actor component: counts its calls, adds an offset."""

    def __init__(self, offset: int = 0):
        self.offset = offset
        self.calls = 0
        self.pid = os.getpid()

    def __call__(self, x):
        self.calls += 1
        return {"value": x + self.offset, "pid": self.pid, "calls": self.calls}


# -- batch components ----------------------------------------------------------------


@rf.component(num_cpus=0.1)
def numbers(n: int):
    import pyarrow as pa

    return pa.table({"x": list(range(n)), "key": [i % 3 for i in range(n)]})


@rf.component(num_cpus=0.1, kind="batch", batch_size=100)
def scale(batch, factor: float = 2.0):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa.record_batch({"x": pc.multiply(batch["x"], factor), "key": batch["key"],
                            "rows_in_batch": pa.array([batch.num_rows] * batch.num_rows)})


@rf.component(num_cpus=0.1, kind="batch", batch_size=100)
def keep_key(batch, key: int):
    import pyarrow.compute as pc

    return batch.filter(pc.equal(batch["key"], key))


@rf.component(num_cpus=0.1, kind="batch")
def not_arrow(batch):
    return {"rows": batch.num_rows}


@rf.component(num_cpus=0.1)
def column_sum(table, column: str = "x"):
    import pyarrow.compute as pc

    return pc.sum(table[column]).as_py()


# -- several outputs -----------------------------------------------------------------


@rf.component(num_cpus=0.1, num_outputs=3)
def split3(xs: list):
    return xs[0::3], xs[1::3], xs[2::3]


@rf.component(num_cpus=0.1, num_outputs=2)
def wrong_count(x=None):
    return 1, 2, 3


@rf.component(num_cpus=0.1)
def both(pair: tuple):
    return list(pair)


# -- patterns --------------------------------------------------------------------------


@rf.component(num_cpus=0.1)
def keyed(n: int):
    import pyarrow as pa

    return pa.table({"key": [i % 4 for i in range(n)], "x": list(range(n))})


@rf.component(num_cpus=0.1)
def mark_part(table):
    import pyarrow as pa

    keys = sorted(set(table.column("key").to_pylist()))
    return table.append_column("part_keys", pa.array([",".join(map(str, keys))] * table.num_rows))


@rf.component(num_cpus=0.1)
def fail_on_key(table, key: int = 3):
    if key in table.column("key").to_pylist():
        raise ValueError(f"bad key {key} in this part")
    return table


# -- streams ---------------------------------------------------------------------------


@rf.component(num_cpus=0.1, kind="batch", batch_size=1000)
def parse(batch):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa.record_batch({"x": pc.cast(batch["x"], pa.float64()), "key": batch["key"]})


@rf.component(num_cpus=0.1, kind="batch", batch_size=1000, buffer_size=2)
def slow_square(batch, pause: float = 0.0):
    import time

    import pyarrow as pa
    import pyarrow.compute as pc

    time.sleep(pause)
    return pa.record_batch({"y": pc.multiply(batch["x"], batch["x"]), "key": batch["key"]})


@rf.component(num_cpus=0.1, kind="batch", batch_size=1000)
def tail_stage(batch, pause: float = 0.0, fail_at_key_sum: int | None = None):
    import time

    import pyarrow.compute as pc

    time.sleep(pause)
    if fail_at_key_sum is not None and pc.sum(batch["key"]).as_py() >= fail_at_key_sum:
        raise ValueError("tail_stage cannot take this batch")
    return batch


def ledger_peak(path: str) -> tuple[int, int]:
    """From a ledger of ``ledger_first``/``ledger_last`` lines: the batches that entered
    the stream, and the most that were inside it at once."""
    with open(path) as f:
        events = sorted((float(t), kind) for kind, _, t in (line.split() for line in f.read().splitlines()))
    in_flight = peak = 0
    for _, kind in events:
        in_flight += 1 if kind == "in" else -1
        peak = max(peak, in_flight)
    return sum(1 for _, k in events if k == "in"), peak


@rf.component(num_cpus=0.1, kind="batch", batch_size=100, buffer_size=3)
def ledger_first(batch, path: str):
    import time

    with open(path, "a") as f:
        f.write(f"in {batch['x'][0].as_py()} {time.time()}\n")
    return batch


@rf.component(num_cpus=0.1, kind="batch", batch_size=100)
def ledger_last(batch, path: str, pause: float = 0.02):
    import time

    time.sleep(pause)
    with open(path, "a") as f:
        f.write(f"out {batch['x'][0].as_py()} {time.time()}\n")
    return batch


@rf.component(kind="batch", batch_size=1000)     # num_cpus=1 each: three need more than 2 CPUs
def whole_cpu_stage(batch):
    return batch
