"""Batch components: a function applied to every Arrow record batch of its input.

A component declared with ``kind="batch"`` is ``fn(batch: pa.RecordBatch, **config)``
returning a ``pa.RecordBatch`` or ``pa.Table``. Its first argument (the upstream
output, or a literal) may be a ``pa.Table``, a ``pa.RecordBatch``, a Parquet path or
directory, a ``pyarrow.dataset.Dataset``, or an iterable of batches or tables; the
function sees it in batches of at most ``batch_size`` rows, and the component's output
is one ``pa.Table`` of everything it returned, in order.

Zero-copy: batches of a table are slices of its buffers (no rows are copied or
converted to Python objects), and the output table is assembled from the returned
batches without copying them. Pure: pyarrow only, no ray.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

DEFAULT_BATCH_SIZE = 65_536
READAHEAD_BATCHES = 2
READAHEAD_FILES = 1


class BatchInputError(TypeError):
    """The input of a batch component is not something Arrow batches can be read from."""


def iter_batches(source: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
    """The record batches of ``source``, each of at most ``batch_size`` rows."""
    if isinstance(source, pa.RecordBatch):
        yield from _slices(source, batch_size)
    elif isinstance(source, pa.Table):
        yield from source.to_batches(max_chunksize=batch_size)
    elif isinstance(source, ds.Dataset):
        yield from _scan(source, batch_size)
    elif isinstance(source, (str, os.PathLike)):
        yield from _scan(ds.dataset(os.fspath(source), format="parquet"), batch_size)
    elif isinstance(source, Iterable) and not isinstance(source, (bytes, dict)):
        for i, item in enumerate(source):
            if isinstance(item, pa.RecordBatch):
                yield from _slices(item, batch_size)
            elif isinstance(item, pa.Table):
                yield from item.to_batches(max_chunksize=batch_size)
            else:
                raise BatchInputError(f"item {i} of the input is a {type(item).__name__}, "
                                      "expected pyarrow.RecordBatch or pyarrow.Table")
    else:
        raise BatchInputError(
            f"the input is a {type(source).__name__}; expected a pyarrow.Table or RecordBatch, "
            "a Parquet path, a pyarrow dataset, or an iterable of batches"
        )


def _scan(dataset: ds.Dataset, batch_size: int) -> Iterator[pa.RecordBatch]:
    """A dataset's batches with little read-ahead (one file, two batches), so memory
    follows the batch size, not the files'."""
    return dataset.to_batches(batch_size=batch_size, batch_readahead=READAHEAD_BATCHES,
                              fragment_readahead=READAHEAD_FILES)


def _slices(batch: pa.RecordBatch, batch_size: int) -> Iterator[pa.RecordBatch]:
    if batch.num_rows <= batch_size:
        yield batch
        return
    for start in range(0, batch.num_rows, batch_size):
        yield batch.slice(start, batch_size)


def _schema_of(source: Any) -> pa.Schema | None:
    if isinstance(source, (pa.Table, pa.RecordBatch, ds.Dataset)):
        return source.schema
    return None


def batches_to_apply(source: Any, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The batches a batch function is applied to: those of ``source``, or, when it has no
    rows but a known schema, one empty batch of it (so the output's schema is what the
    function makes of it)."""
    seen = False
    for batch in iter_batches(source, batch_size):
        seen = True
        yield batch
    schema = None if seen else _schema_of(source)
    if schema is not None:
        yield pa.RecordBatch.from_pylist([], schema=schema)


def apply_batches(fn: Callable[..., Any], source: Any, batch_size: int, config: Mapping[str, Any]) -> pa.Table:
    """``fn(batch, **config)`` for every batch of ``source``; the results as one table."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    parts = [_checked(fn(batch, **config), name, i) for i, batch in enumerate(batches_to_apply(source, batch_size))]
    return concat_results(parts, f"batch function {name}")


def concat_results(parts: list[pa.RecordBatch | pa.Table], who: str) -> pa.Table:
    """``parts`` as one table, without copying (an empty one without columns when there are
    no parts; an empty part keeps its schema); a schema that changes between parts is an
    error naming ``who``."""
    if not parts:
        return pa.table({})
    first = parts[0].schema
    for i, part in enumerate(parts):
        if not part.schema.equals(first):
            raise ValueError(f"{who} returned a different schema for batch {i} "
                             f"({_short(part.schema)}) than for the first ({_short(first)})")
    return pa.concat_tables([p if isinstance(p, pa.Table) else pa.Table.from_batches([p]) for p in parts])


def _checked(out: Any, name: str, index: int) -> pa.RecordBatch | pa.Table:
    if isinstance(out, (pa.RecordBatch, pa.Table)):
        return out
    raise TypeError(f"batch function {name} returned a {type(out).__name__} for batch {index}; "
                    "expected pyarrow.RecordBatch or pyarrow.Table")


def _short(schema: pa.Schema | None) -> str:
    return "none" if schema is None else ", ".join(f"{f.name}: {f.type}" for f in schema)


class BatchFunction:
    """What a batch component's task calls: ``BatchFunction(fn, n)(data, **config)``."""

    def __init__(self, fn: Callable[..., Any], batch_size: int) -> None:
        self.fn = fn
        self.batch_size = batch_size
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, data: Any, **config: Any) -> pa.Table:
        return apply_batches(self.fn, data, self.batch_size, config)

    def __reduce__(self):
        return (batch_function, (self.fn, self.batch_size))


@functools.lru_cache(maxsize=1024)
def batch_function(fn: Callable[..., Any], batch_size: int) -> BatchFunction:
    """One wrapper per (function, batch size), so the executor reuses what it built for it."""
    return BatchFunction(fn, batch_size)
