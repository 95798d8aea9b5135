"""Zero-copy through the object store: a batch stage reading a 1 GiB table does not copy it."""

from __future__ import annotations

import pytest

import rayflow as rf
from tests.execute import zero_copy_fns as z

MIB = 1024 * 1024


@rf.workflow
def zero_copy_wf(mib: int = 1024):
    table = z.big_table(mib)
    return {"whole": z.read_all(table), "batches": z.batch_sums(table)}


@pytest.mark.slow
def test_a_batch_stage_reading_a_1_gib_table_does_not_double_the_workers_memory(ray_session, service):
    handle = rf.submit(zero_copy_wf, mib=1024)
    out = handle.result(timeout=300)
    assert out["batches"].num_rows == 1024 // 8          # 128 batches of 1 Mi rows (8 MiB each)
    assert sum(out["batches"].column("s").to_pylist()) == pytest.approx(out["whole"])
    comps = handle.metrics()["components"]
    whole, batches = comps["read_all"]["peak_rss_bytes"], comps["batch_sums"]["peak_rss_bytes"]
    if whole is None or batches is None:
        pytest.skip("peak memory is not measured on this platform")
    # Both map the same 1 GiB input from the object store; a copy would add another GiB.
    print(f"peak RSS MiB: read_all {whole / MIB:.0f}, batch_sums {batches / MIB:.0f}")
    assert batches < whole + 256 * MIB, (batches / MIB, whole / MIB)
