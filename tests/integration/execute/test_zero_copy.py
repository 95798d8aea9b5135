"""Zero-copy through the object store: a batch stage reading a 1 GiB table does not copy it."""

from __future__ import annotations

import pytest

import rayflow as rf
from tests.fns import zero_copy as z

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


@rf.workflow
def mapped_wf(mib: int = 512):
    table = z.big_table(mib)
    return {"whole": z.read_all(table), "parts": rf.map(z.batch_sum, table, batch_size=1 << 21)}


@pytest.mark.slow
def test_a_dynamic_map_over_a_large_table_copies_none_of_it(ray_session, service):
    handle = rf.submit(mapped_wf, mib=512)
    out = handle.result(timeout=300)
    parts = out["parts"]
    assert len(parts) == 512 // 16                       # 32 batches of 2 Mi rows (16 MiB each)
    assert sum(p["sum"] for p in parts) == pytest.approx(out["whole"])
    anon = [p["rss_anon"] for p in parts]
    if None in anon:
        pytest.skip("RssAnon is not reported on this platform")
    coordinator = handle.metrics()["components"]["map_batch_sum"]["peak_rss_bytes"]
    print(f"largest private memory of an item's worker {max(anon) / MIB:.0f} MiB; "
          f"map coordinator peak RSS {(coordinator or 0) / MIB:.0f} MiB")
    # Each item reads its batch from the shared table in the object store (shared pages,
    # not RssAnon), so a worker's private memory stays far below the table's 512 MiB. (Peak
    # RSS would count the shared pages every earlier call of a reused worker touched.)
    assert max(anon) < 256 * MIB, max(anon) / MIB
