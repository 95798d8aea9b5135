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
    """The sum of its batch (touching every page of it), and this worker's private memory
    (RssAnon: a copy of the input would be there; shared object-store pages are not)."""
    import pyarrow.compute as pc

    total = pc.sum(batch["x"]).as_py()
    with open("/proc/self/status") as f:
        anon = next((int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:")), None)
    return {"sum": total, "rss_anon": anon}
