"""Progress of a stream, counted batch by batch: what its coordinator reports while it runs.

Owns the counting and its throttle (a report at most every ``every_s`` seconds, so a
stream of thousands of small batches costs a handful of reports, not one per batch),
the snapshot a report carries, and the row count of a stream's input when the input
tells it without being read (a table, a Parquet dataset, a list of batches, or any
iterable with an integer ``num_rows`` attribute; a plain generator does not).

A snapshot is a plain dict (it travels through Ray and into JSON):
``stages`` (the stream's members, in order), ``batches`` and ``rows`` (batches and
input rows that went through the last stage), ``rows_out`` (rows the last stage
returned), ``total_rows`` (the input's rows, None when unknown), ``elapsed_s`` (since
the stream started), ``rows_per_s`` (since the first batch left the last stage, so the
stages' start-up does not count) and ``done``. Pure: pyarrow only; must not import ray.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

REPORT_EVERY_S = 0.5


def source_rows(source: Any) -> int | None:
    """The rows in a stream's input when known without reading it; None otherwise."""
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return source.num_rows
    if isinstance(source, ds.Dataset):
        return _count(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            return _count(ds.dataset(os.fspath(source), format="parquet"))
        except (OSError, ValueError, pa.ArrowException):
            return None   # the stream reports the error when it reads the input
    if isinstance(source, (list, tuple)):
        if all(isinstance(item, (pa.Table, pa.RecordBatch)) for item in source):
            return sum(item.num_rows for item in source)
        return None
    try:
        declared = getattr(source, "num_rows", None)
    except Exception:  # noqa: BLE001 - a property that fails: progress without a total
        return None
    if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
        return declared
    return None


def _count(dataset: ds.Dataset) -> int | None:
    try:
        return dataset.count_rows()   # Parquet: from the files' metadata
    except (OSError, ValueError, pa.ArrowException):
        return None


class StreamCounter:
    """Counts the batches leaving a stream's last stage; ``add`` says when a report is due.

    The first report is due at once (so a watcher learns the total early), then at most
    one every ``every_s`` seconds; ``snapshot(done=True)`` is the last."""

    def __init__(self, stages: Sequence[str], total_rows: int | None, *, every_s: float = REPORT_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stages = tuple(stages)
        self.total_rows = total_rows
        self.every_s = every_s
        self.batches = 0
        self.rows = 0
        self.rows_out = 0
        self._clock = clock
        self._started = clock()
        self._next = self._started   # the first report is due at once
        self._first: tuple[float, int] | None = None   # when the first batch came out, and its rows

    def add(self, rows_in: int, rows_out: int) -> bool:
        """Count one batch (its input rows and the last stage's output rows); True when a
        report is due."""
        self.batches += 1
        self.rows += rows_in
        self.rows_out += rows_out
        if self._first is None:
            self._first = (self._clock(), rows_in)
        return self.due()

    def due(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.every_s
        return True

    def rows_per_s(self) -> float:
        """Rows per second since the first batch came out (0.0 until a second one has)."""
        if self._first is None:
            return 0.0
        since, first_rows = self._first
        seconds = self._clock() - since
        return (self.rows - first_rows) / seconds if seconds > 0 else 0.0

    def snapshot(self, *, done: bool = False) -> dict[str, Any]:
        elapsed = max(0.0, self._clock() - self._started)
        return {
            "stages": list(self.stages),
            "batches": self.batches,
            "rows": self.rows,
            "rows_out": self.rows_out,
            "total_rows": self.total_rows,
            "elapsed_s": elapsed,
            "rows_per_s": self.rows_per_s(),
            "done": done,
        }
