"""Streams whose input is a literal source (Parquet files, a dataset, an iterable of
batches): on Ray the head stage reads it itself, so no input batch passes through the
object store before the first stage; the results, the bound on batches in flight and
the errors are those of a stream over an upstream's table, under both executors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rayflow as rf
from tests.fns import execute as fns


def _write_parquet(directory, n: int, files: int = 3) -> str:
    directory.mkdir()
    per = n // files
    for i in range(files):
        start = i * per
        stop = n if i == files - 1 else start + per
        pq.write_table(pa.table({"x": list(range(start, stop)), "key": [j % 4 for j in range(start, stop)]}),
                       directory / f"part-{i}.parquet", row_group_size=500)
    return str(directory)


class Batches:
    """A picklable iterable of record batches (a generator object cannot travel)."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def __iter__(self):
        for start in range(0, self.n, self.size):
            xs = list(range(start, min(self.n, start + self.size)))
            yield pa.record_batch({"x": xs, "key": [x % 4 for x in xs]})


@rf.workflow
def parquet_stream(path: str):
    return fns.tail_stage(fns.slow_square(fns.parse(path)))


@rf.workflow
def iterable_stream(n: int = 5000):
    return fns.tail_stage(fns.slow_square(fns.parse(Batches(n, 700))))


@rf.workflow
def ledger_parquet_stream(source: str, path: str):
    return fns.ledger_last(fns.ledger_first(source, path=path), path=path)


def test_a_stream_over_parquet_files_reads_them_in_its_head_stage(executor, service, tmp_path):
    path = _write_parquet(tmp_path / "data", 9_000)
    assert rf.explain(parquet_stream, path=path).streams == (("parse", "slow_square", "tail_stage"),)
    handle = rf.submit(parquet_stream, executor=executor, path=path)
    table = handle.result(timeout=120)
    assert sorted(table.column("y").to_pylist()) == [float(i * i) for i in range(9_000)]
    comps = handle.metrics()["components"]
    assert all(comps[s]["state"] == "SUCCEEDED" for s in ("parse", "slow_square", "tail_stage"))


def test_a_stream_over_an_iterable_of_batches(executor, service):
    table = rf.run(iterable_stream, executor=executor, n=5000)
    assert table.column("y").to_pylist() == [float(i * i) for i in range(5000)]


def test_a_stream_over_no_files_rows_keeps_the_schema(executor, service, tmp_path):
    directory = tmp_path / "empty"
    directory.mkdir()
    pq.write_table(pa.table({"x": pa.array([], pa.int64()), "key": pa.array([], pa.int64())}),
                   directory / "part-0.parquet")
    table = rf.run(parquet_stream, executor=executor, path=str(directory))
    assert table.num_rows == 0 and table.column_names == ["y", "key"]


def test_an_unreadable_source_fails_the_head_stage(executor, service, tmp_path):
    handle = rf.submit(parquet_stream, executor=executor, path=str(tmp_path / "missing"))
    assert handle.wait(timeout=120) == "FAILED"
    states = {c: m["state"] for c, m in handle.metrics()["components"].items()}
    assert states["parse"] == "FAILED", states
    assert states["tail_stage"] in ("UPSTREAM_FAILED", "SKIPPED", "CANCELLED"), states
    assert "missing" in (handle.record().error or "")


def test_a_head_read_stream_keeps_at_most_buffer_size_batches_in_flight(executor, service, tmp_path):
    if executor == "local":
        pytest.skip("the local executor runs a stream's stages one after the other, on all of the data")
    source = _write_parquet(tmp_path / "data", 2000, files=2)
    ledger = tmp_path / "ledger.txt"
    table = rf.run(ledger_parquet_stream, executor=executor, source=source, path=str(ledger))
    assert table.num_rows == 2000
    entered, peak = fns.ledger_peak(str(ledger))
    assert entered == 20
    assert 2 <= peak <= 3 + 1   # overlapping, and at most buffer_size=3 (+1 entering as one leaves)
