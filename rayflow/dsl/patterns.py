"""Parallel patterns, built while a workflow is traced: map-reduce with a tree reduce,
and scatter-gather over the partitions of an Arrow table.

Call them inside a ``@rf.workflow`` function like components; they add ordinary
components to the workflow, so every part has its own state, timings, retries and
resources, and the run's failure strategy applies to each part as to any component.

- ``map_reduce(mapper, reducer, items, fan_in=4)``: ``mapper(item)`` for every item
  (a list known while tracing), then ``reducer(list_of_results)`` over groups of at most
  ``fan_in``, level after level, until one value is left (a tree: the reduce of 1,000
  parts is 4 levels deep with ``fan_in=8``, not one call holding 1,000 inputs). The
  reducer must accept its own results as parts (sum, merge, concatenate...).
- ``scatter_gather(data, process, parts, by=None, mode="hash")``: one component splits
  ``data`` (an Arrow table, or the node producing one) into ``parts`` tables, each its
  own output; ``process(part)`` runs on each; the results are concatenated in partition
  order. ``by=None`` splits by row position (order kept); ``by="column"`` with
  ``mode="hash"`` sends equal keys to the same part, ``mode="range"`` sorts by the
  column and cuts it into contiguous ranges (gathered in key order).
Pure: pyarrow and numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rayflow.core.errors import SpecError
from rayflow.dsl.component import Component, component

MODES = ("hash", "range")


def map_reduce(mapper: Component, reducer: Component, items: Sequence[Any], *, fan_in: int = 4) -> Any:
    """The node of the final reduce of ``mapper(item)`` over ``items`` (see the module doc)."""
    if isinstance(fan_in, bool) or not isinstance(fan_in, int) or fan_in < 2:
        raise SpecError(f"map_reduce field 'fan_in': expected an integer >= 2, got {fan_in!r}")
    items = list(items)
    if not items:
        raise SpecError("map_reduce: no items to map (the list is empty)")
    level = [mapper(item) for item in items]
    while True:
        level = [reducer(level[i:i + fan_in]) for i in range(0, len(level), fan_in)]
        if len(level) == 1:
            return level[0]


def scatter_gather(data: Any, process: Component, parts: int, *, by: str | None = None,
                   mode: str = "hash") -> Any:
    """The node of the gathered table (see the module doc)."""
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise SpecError(f"scatter_gather field 'parts': expected an integer >= 1, got {parts!r}")
    if mode not in MODES:
        raise SpecError(f"scatter_gather field 'mode': expected one of {', '.join(MODES)}, got {mode!r}")
    pieces = partition.options(num_outputs=parts)(data, parts=parts, by=by, mode=mode)
    return gather([process(pieces[i]) for i in range(parts)])


@component(num_cpus=1)
def partition(table: pa.Table, parts: int, by: str | None = None, mode: str = "hash") -> tuple:
    """``table`` split into ``parts`` tables (zero-copy slices when split by position)."""
    if by is None:
        step = -(-table.num_rows // parts) if table.num_rows else 0
        return tuple(table.slice(i * step, step) for i in range(parts))
    if by not in table.column_names:
        raise KeyError(f"no column {by!r} to partition by (columns: {', '.join(table.column_names)})")
    if mode == "range":
        ordered = table.sort_by(by)
        step = -(-ordered.num_rows // parts) if ordered.num_rows else 0
        return tuple(ordered.slice(i * step, step) for i in range(parts))
    codes = pc.dictionary_encode(table[by]).combine_chunks().indices.to_numpy(zero_copy_only=False)
    # equal keys share a dictionary code, so they land in one part; codes spread round-robin
    which = codes % parts
    return tuple(table.filter(pa.array(which == p)) for p in range(parts))


@component(num_cpus=1)
def gather(tables: list) -> pa.Table:
    """The tables concatenated in order (schemas must agree)."""
    return pa.concat_tables(tables)


__all__ = ["MODES", "gather", "map_reduce", "partition", "scatter_gather"]
