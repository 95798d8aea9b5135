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


def apply_batches(fn: Callable[..., Any], source: Any, batch_size: int, config: Mapping[str, Any]) -> pa.Table:
    """``fn(batch, **config)`` for every batch of ``source``; the results as one table."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    parts: list[pa.RecordBatch] = []
    seen = 0
    for seen, batch in enumerate(iter_batches(source, batch_size), start=1):
        parts.extend(_as_batches(fn(batch, **config), name, seen - 1))
    if not seen:   # no input rows: the output's schema is what fn makes of an empty batch
        schema = _schema_of(source)
        if schema is None:
            return pa.table({})
        parts.extend(_as_batches(fn(pa.RecordBatch.from_pylist([], schema=schema), **config), name, 0))
    first = parts[0].schema if parts else None
    for i, part in enumerate(parts):
        if not part.schema.equals(first):
            raise ValueError(f"batch function {name} returned a different schema for batch {i} "
                             f"({_short(part.schema)}) than for the first ({_short(first)})")
    return pa.Table.from_batches(parts, schema=first) if parts else pa.table({})


def _as_batches(out: Any, name: str, index: int) -> list[pa.RecordBatch]:
    if isinstance(out, pa.RecordBatch):
        return [out]
    if isinstance(out, pa.Table):
        return out.to_batches()
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
