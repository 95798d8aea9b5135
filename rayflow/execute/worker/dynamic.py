"""Dynamic map: one component that calls a function on every item of a value known only
at run time, and what it reports about the items. Pure: no Ray.

A ``DynamicMap`` is the function of a map component (``rf.map`` builds it). Its input is
a list (or tuple, or range) or an Arrow table / record batch:

- a list: one call per item; with ``batch_size=N``, one call per list of at most N items;
- a ``pa.Table`` / ``pa.RecordBatch``: one call per record batch (``table.to_batches()``,
  each at most ``batch_size`` rows when given), each a zero-copy ``pa.RecordBatch``.

The value is the list of results, in input order. ``failure_strategy``:

- ``fail_fast``: the first failed item (after its own retries) stops the map: items not
  started are not started, items in flight are cancelled, and the component fails
  with ``MapItemFailed`` ("item 3 of 10 failed: ValueError: ...").
- ``continue_on_error``: every item runs; a failed item's result is ``None``, the
  component succeeds, and its outcome lists the failures.

Each item keeps the mapped component's ``timeout_s``, ``max_retries`` and
``retry_exceptions``. The outcome (``meta["outcome"]``, then ``ComponentRecord.outcome``
and ``h.metrics()["components"][id]["outcome"]``) holds ``items``, ``succeeded``,
``failed``, ``cancelled``, ``retries``, ``item_s`` (p50, p95, max, total seconds of the
items that ended), ``peak_rss_bytes`` (the largest peak memory of an item's worker during
its call; None where not measured), ``durations_s`` (per item in order, None where it did not end; only
for maps of at most ``LISTED_ITEMS`` items) and ``errors`` (``{"item": i, "error": ...}``,
the first ``LISTED_ERRORS``).

This module runs the items in-process, one after another (the local executor, or a
plain call outside a workflow); ``rayflow.execute.ray.dynamic`` runs them as Ray tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from rayflow.core.options import FAILURE_STRATEGIES, ComponentOptions
from rayflow.core.template import Slot
from rayflow.execute.worker import capture
from rayflow.execute.worker.invoke import (
    CallInfo,
    ComponentFailure,
    Reported,
    RetryableFailure,
    invoke,
)

LISTED_ITEMS = 1000    # per-item durations are listed for maps of at most this many items
LISTED_ERRORS = 100    # errors listed in the outcome (the count is always exact)


class MapItemFailed(Exception):
    """An item of a fail_fast map failed: the map fails, reporting what its items did."""

    def __init__(self, message: str, outcome: dict[str, Any]) -> None:
        super().__init__(message)
        self.outcome = outcome

    def __reduce__(self):
        return (type(self), (self.args[0], self.outcome))


class DynamicMap:
    """The function of a map component: ``DynamicMap(fn, options, ...)(items, **kwargs)``
    calls ``fn(item, **kwargs)`` for every item in-process and returns ``Reported(results,
    outcome)``. ``options`` are the mapped component's (resources, retries, timeout)."""

    rayflow_dynamic_map = True   # rayflow.core.kinds.MAP_MARKER: how the planner knows a map

    def __init__(self, fn: Callable[..., Any], options: ComponentOptions, *, max_concurrency: int | None = None,
                 failure_strategy: str = "fail_fast", batch_size: int | None = None) -> None:
        if failure_strategy not in FAILURE_STRATEGIES:
            raise ValueError(f"failure_strategy: expected one of {', '.join(FAILURE_STRATEGIES)}, "
                             f"got {failure_strategy!r}")
        self.fn = fn
        self.options = options
        self.max_concurrency = max_concurrency
        self.failure_strategy = failure_strategy
        self.batch_size = batch_size
        functools.update_wrapper(self, fn, updated=())   # its name, doc and signature are fn's

    def __call__(self, items: Any, **kwargs: Any) -> Reported:
        work = work_items(items, self.batch_size)
        return run_in_process(self, work, kwargs)

    def __reduce__(self):
        return (_remake, (self.fn, self.options, self.max_concurrency, self.failure_strategy, self.batch_size))

    def __repr__(self) -> str:
        return f"<rayflow dynamic map of {getattr(self.fn, '__qualname__', self.fn)!r}>"

    def item_info(self) -> CallInfo:
        """The CallInfo of the items' calls: the item is its only argument (Slot 0). Called
        while the map's own call runs: its id is the map's (``for_item`` names one item),
        and the items' logs go where the map's go, each its own."""
        o = self.options
        log = capture.current()
        owner = log.component if log is not None else getattr(self.fn, "__name__", "item")
        # an item's log is written where the map runs it (its meta never reaches the driver)
        return CallInfo(owner, (Slot(0),), {}, o.timeout_s, o.retry_exceptions, True,
                        log=log.target._replace(inline_bytes=0) if log is not None else None)


def for_item(info: CallInfo, index: int) -> CallInfo:
    """The items' CallInfo for item ``index``: ``map[3]`` in its errors and its log."""
    return info._replace(id=f"{info.id}[{index}]")


def _remake(fn: Any, options: ComponentOptions, max_concurrency: int | None, failure_strategy: str,
            batch_size: int | None) -> DynamicMap:
    return DynamicMap(fn, options, max_concurrency=max_concurrency, failure_strategy=failure_strategy,
                      batch_size=batch_size)


# -- the items --------------------------------------------------------------------------


def work_items(items: Any, batch_size: int | None) -> Sequence[Any]:
    """What the map calls its function on (see the module doc); TypeError for anything else."""
    if isinstance(items, pa.Table):
        return [b for b in items.to_batches(max_chunksize=batch_size) if b.num_rows]
    if isinstance(items, pa.RecordBatch):
        return [b for b in pa.Table.from_batches([items]).to_batches(max_chunksize=batch_size) if b.num_rows]
    if isinstance(items, (list, tuple, range)):
        if batch_size is None:
            return items
        return [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    raise TypeError(f"a dynamic map needs a list, tuple, pyarrow.Table or pyarrow.RecordBatch to map over, "
                    f"got {type(items).__name__}")


def table_spans(table: pa.Table, batch_size: int | None) -> list[tuple[int, int]]:
    """(offset, rows) of each of ``table``'s record batches that ``work_items`` gives, so a
    worker can cut its batch from the shared table itself (``batch_at``)."""
    spans, offset = [], 0
    for batch in table.to_batches(max_chunksize=batch_size):
        if batch.num_rows:
            spans.append((offset, batch.num_rows))
        offset += batch.num_rows
    return spans


def batch_at(table: pa.Table, offset: int, rows: int) -> pa.RecordBatch:
    """The record batch at ``offset`` (zero-copy: a span from ``table_spans`` lies inside one
    chunk of every column; any other span is combined, which copies)."""
    parts = table.slice(offset, rows).to_batches()
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts, schema=table.schema).combine_chunks().to_batches()[0]


# -- the outcome ------------------------------------------------------------------------


class Tally:
    """What the items of one map did, as it goes; ``outcome()`` is the JSON-friendly summary."""

    def __init__(self, n: int, failure_strategy: str, max_concurrency: int | None) -> None:
        self.n = n
        self.strategy = failure_strategy
        self.max_concurrency = max_concurrency
        self.durations: list[float | None] = [None] * n
        self.errors: list[dict[str, Any]] = []
        self.succeeded = self.failed = self.retries = 0
        self.peak_rss_bytes: int | None = None

    def ok(self, index: int, meta: Mapping[str, Any]) -> None:
        self.succeeded += 1
        self._timed(index, meta)

    def error(self, index: int, error: str, meta: Mapping[str, Any]) -> None:
        self.failed += 1
        self._timed(index, meta)
        if len(self.errors) < LISTED_ERRORS:
            self.errors.append({"item": index, "error": error})

    def _timed(self, index: int, meta: Mapping[str, Any]) -> None:
        started, ended = meta.get("started_at"), meta.get("ended_at")
        if started is not None and ended is not None:
            self.durations[index] = max(0.0, ended - started)
        self.retries += int(meta.get("attempt", 0) or 0)
        peak = meta.get("peak_rss_bytes")
        if peak is not None and (self.peak_rss_bytes is None or peak > self.peak_rss_bytes):
            self.peak_rss_bytes = peak

    def failure(self, index: int, error: str, detail: str | None = None) -> MapItemFailed:
        """The error that fails a fail_fast map at item ``index``."""
        text = f"item {index} of {self.n} failed: {error}"
        return MapItemFailed(f"{text}\n{detail}" if detail else text, self.outcome())

    def outcome(self) -> dict[str, Any]:
        ended = sorted(d for d in self.durations if d is not None)
        out: dict[str, Any] = {
            "items": self.n, "succeeded": self.succeeded, "failed": self.failed,
            "cancelled": self.n - self.succeeded - self.failed, "retries": self.retries,
            "failure_strategy": self.strategy, "max_concurrency": self.max_concurrency,
            "item_s": {"p50": _at(ended, 0.5), "p95": _at(ended, 0.95), "max": ended[-1] if ended else None,
                       "total": sum(ended)},
            "errors": list(self.errors), "peak_rss_bytes": self.peak_rss_bytes,
        }
        if self.n <= LISTED_ITEMS:
            out["durations_s"] = list(self.durations)
        return out


def _at(data: list[float], q: float) -> float | None:
    return data[min(len(data) - 1, int(q * len(data)))] if data else None


# -- in-process ---------------------------------------------------------------------------


def run_in_process(dm: DynamicMap, work: Sequence[Any], kwargs: Mapping[str, Any]) -> Reported:
    """Every item, one after another, each with its own retries and timeout."""
    tally = Tally(len(work), dm.failure_strategy, dm.max_concurrency)
    fn = functools.partial(dm.fn, **kwargs) if kwargs else dm.fn
    info = dm.item_info()
    results: list[Any] = [None] * len(work)
    for i, item in enumerate(work):
        try:
            results[i], meta = _call_item(fn, for_item(info, i), item, dm.options.max_retries)
        except ComponentFailure as failure:
            tally.error(i, failure.one_line(), failure.meta)
            if dm.failure_strategy == "fail_fast":
                raise tally.failure(i, failure.one_line(), failure.detail) from None
            continue
        tally.ok(i, meta)
    return Reported(results, tally.outcome())


def _call_item(fn: Callable[..., Any], info: CallInfo, item: Any, max_retries: int) -> tuple[Any, dict]:
    attempt = 0
    while True:
        try:
            value, meta = invoke(fn, info, (item,))
        except RetryableFailure as failure:
            if attempt >= max_retries:
                failure.meta["attempt"] = attempt
                raise
            attempt += 1
            continue
        meta["attempt"] = attempt
        return value, meta


__all__ = ["LISTED_ERRORS", "LISTED_ITEMS", "DynamicMap", "MapItemFailed", "Tally", "batch_at", "for_item",
           "run_in_process", "table_spans", "work_items"]
