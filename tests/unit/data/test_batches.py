"""Batch components' data plane: reading batches from every kind of input, applying a function."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from rayflow.data.batches import (
    BatchFunction,
    BatchInputError,
    apply_batches,
    batch_function,
    iter_batches,
)


def table(n: int) -> pa.Table:
    return pa.table({"x": pa.array(range(n), pa.int64()), "y": pa.array([float(i) for i in range(n)])})


def double(batch: pa.RecordBatch, factor: int = 2) -> pa.RecordBatch:
    return pa.record_batch({"x": pc.multiply(batch["x"], factor)})


def sizes(batches) -> list[int]:
    return [b.num_rows for b in batches]


def test_a_table_is_read_in_slices_of_at_most_batch_size_rows_without_copying():
    t = table(1000)
    batches = list(iter_batches(t, 300))
    assert sizes(batches) == [300, 300, 300, 100]
    source = t.column("x").chunk(0).buffers()[1]
    assert batches[1].column(0).buffers()[1].address == source.address   # a view, not a copy


def test_a_record_batch_is_sliced():
    assert sizes(iter_batches(table(10).to_batches()[0], 4)) == [4, 4, 2]


def test_parquet_path_and_dataset(tmp_path):
    pq.write_table(table(250), tmp_path / "part-0.parquet")
    pq.write_table(table(50), tmp_path / "part-1.parquet")
    assert sum(sizes(iter_batches(str(tmp_path), 100))) == 300
    assert sum(sizes(iter_batches(tmp_path / "part-0.parquet", 100))) == 250
    assert max(sizes(iter_batches(ds.dataset(str(tmp_path)), 100))) <= 100


def test_a_generator_of_batches_and_tables():
    def gen():
        yield table(5).to_batches()[0]
        yield table(7)

    assert sizes(iter_batches(gen(), 3)) == [3, 2, 3, 3, 1]


@pytest.mark.parametrize("bad", [42, {"x": [1]}, [1, 2]])
def test_other_inputs_are_refused_with_what_was_expected(bad):
    with pytest.raises(BatchInputError, match="expected (a )?pyarrow"):
        list(iter_batches(bad, 10))


def test_apply_concatenates_the_results_in_order_and_passes_config():
    out = apply_batches(double, table(10), 3, {"factor": 5})
    assert out.column("x").to_pylist() == [5 * i for i in range(10)]


def test_results_may_be_tables_or_filtered_batches():
    def evens(batch):
        return pa.Table.from_batches([batch.filter(pc.equal(pc.bit_wise_and(batch["x"], 1), 0))])

    assert apply_batches(evens, table(10), 4, {}).column("x").to_pylist() == [0, 2, 4, 6, 8]


def test_an_empty_input_gives_the_functions_schema_with_no_rows():
    out = apply_batches(double, table(0), 10, {})
    assert out.num_rows == 0 and out.schema.names == ["x"]


def test_a_result_that_is_not_arrow_names_the_function_and_the_batch():
    def to_dict(batch):
        return {"n": batch.num_rows}

    with pytest.raises(TypeError, match=r"to_dict returned a dict for batch 0; expected pyarrow.RecordBatch"):
        apply_batches(to_dict, table(3), 10, {})


def test_results_with_different_schemas_are_refused():
    def flaky_schema(batch):
        name = "a" if batch["x"][0].as_py() == 0 else "b"
        return pa.record_batch({name: batch["x"]})

    with pytest.raises(ValueError, match="different schema for batch 1"):
        apply_batches(flaky_schema, table(4), 2, {})


def test_one_wrapper_per_function_and_size_and_it_pickles():
    import pickle

    assert batch_function(double, 100) is batch_function(double, 100)
    wrapper = pickle.loads(pickle.dumps(batch_function(double, 3)))
    assert isinstance(wrapper, BatchFunction) and wrapper.batch_size == 3
    assert wrapper(table(4), factor=3).column("x").to_pylist() == [0, 3, 6, 9]
