"""Components of the zero-copy test (importable by Ray workers)."""

from __future__ import annotations

import rayflow as rf


@rf.component(num_cpus=0.5)
def big_table(mib: int):
    import numpy as np
    import pyarrow as pa

    return pa.table({"x": np.arange(mib * 1024 * 1024 // 8, dtype=np.float64)})


@rf.component(num_cpus=0.5)
def read_all(table):
    import pyarrow.compute as pc

    return pc.sum(table["x"]).as_py()     # touches every page of the input


@rf.component(num_cpus=0.5, kind="batch", batch_size=1 << 20)
def batch_sums(batch):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa.record_batch({"s": [pc.sum(batch["x"]).as_py()]})


@rf.component(num_cpus=0.5)
def batch_sum(batch):
    import pyarrow.compute as pc

    return pc.sum(batch["x"]).as_py()     # touches every page of its batch only
