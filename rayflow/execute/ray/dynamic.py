"""The Ray side of a dynamic map (``rf.map``): a coordinator task fanning out one task per item.

The map component runs as a Ray task that asks for no CPU (``num_cpus=0``). It receives
its upstream ObjectRefs unresolved, reads the items in its own worker (never on the
driver), and submits one child task per item with the mapped component's resources and
Ray retry policy, keeping at most ``max_concurrency`` children in flight (``ray.wait``).
Its value is the list of the children's results, in order; its metadata (a dict, not the
packed record of ordinary calls) carries the per-item outcome (``rayflow.execute.worker.dynamic``).

Data: a list's items travel to their children as arguments (Ray puts large ones in the
object store). A table is never cut up in the coordinator: every child receives the
table's ObjectRef (read zero-copy from the object store) and an (offset, rows) span,
and slices its record batch itself. Memory: the coordinator holds the finished results
(read zero-copy where Arrow or numpy) until all are in, then returns them as one list
object; keep a map's total output within what one worker and the object store hold,
or reduce the items' results before returning them.

Cancelling the map cancels its children (a ``finally`` in the coordinator); fail_fast
cancels the children in flight and submits no more. Worker-crash retries of the
coordinator resubmit its children. ``MapStrategy`` (rayflow.execute.ray.strategy.Strategy)
submits a map component's coordinator for the Ray executor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import ray
from ray import cloudpickle
from ray.exceptions import RayError

from rayflow.core.template import Slot
from rayflow.execute.port import CheckpointTarget, Completion, LogTarget
from rayflow.execute.ray.calls import (
    decode_info,
    encode_info,
    one_completion,
    resource_options,
    retry_options,
    worker_context,
)
from rayflow.execute.ray.strategy import InFlight
from rayflow.execute.worker.dynamic import (
    DynamicMap,
    Tally,
    batch_at,
    for_item,
    table_spans,
    work_items,
)
from rayflow.execute.worker.invoke import (
    CallInfo,
    ComponentFailure,
    Reported,
    invoke,
    pack_meta,
    unpack_meta,
)
from rayflow.plan import Plan, Task

POLL_S = 0.2      # the longest the coordinator blocks in one wait
WAIT_HEAD = 64    # the oldest items a blocking wait names (each named ref costs on every wait)


def submit_map(task: Task, info: bytes, deps: list[Any]) -> tuple[Any, Any]:
    """Start ``task`` (whose function is a DynamicMap): (value ref, metadata ref). The
    upstream refs travel inside a list, so Ray hands them over unresolved."""
    remote = _MAP_TASK.options(num_returns=2, **resource_options(task), **retry_options(task))
    return remote.remote(task.fn, info, list(deps))


def _map_task(mapper: DynamicMap, blob: bytes, deps: list[Any]) -> tuple[Any, dict[str, Any]]:
    """The coordinator: resolve the upstream values here, then fan out (see module doc)."""
    info = decode_info(blob)
    values = _resolve(deps)
    fan_out = _FanOut(mapper, info, deps)
    value, meta = invoke(fan_out, info, values, worker_context)
    return value, meta


def _resolve(deps: list[Any]) -> list[Any]:
    """The upstream values; an upstream's failure is raised as that upstream's (so the map
    is UPSTREAM_FAILED, not FAILED)."""
    try:
        return ray.get(deps) if deps else []
    except RayError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, ComponentFailure):
            raise cause from None
        raise


class _FanOut:
    """Called by ``invoke`` in the coordinator as the map's function: ``(items, **kwargs)``."""

    def __init__(self, mapper: DynamicMap, info: CallInfo, deps: list[Any]) -> None:
        self.mapper = mapper
        self.info = info
        self.deps = deps

    def __call__(self, items: Any, **kwargs: Any) -> Reported:
        m = self.mapper
        item = Task(id=self.info.id, fn=m.fn, fn_ref=None, args=(), kwargs={}, deps=(), options=m.options,
                    priority=0.0)
        common = (ray.put(m.fn), _encode(m.item_info()), ray.put(kwargs) if kwargs else None)
        if isinstance(items, (pa.Table, pa.RecordBatch)):
            table = items if isinstance(items, pa.Table) else pa.Table.from_batches([items])
            spans = table_spans(table, m.batch_size)
            source = self._source_of(items)
            remote = _SPAN_TASK.options(num_returns=2, **resource_options(item), **retry_options(item))
            return self._run(len(spans), lambda i: remote.remote(*common, source, *spans[i], i))
        work = work_items(items, m.batch_size)
        remote = _ITEM_TASK.options(num_returns=2, **resource_options(item), **retry_options(item))
        return self._run(len(work), lambda i: remote.remote(*common, work[i], i))

    def _source_of(self, items: Any) -> Any:
        """The ref the children read the table from: the upstream's own object when the items
        are an upstream output as it is, else one new object."""
        if self.info.args is None:   # the inputs in order: the items are the first
            return self.deps[0]
        first = self.info.args[0] if self.info.args else None
        if self.info.has_slots and isinstance(first, Slot):
            return self.deps[first.index]
        return ray.put(items)

    def _run(self, n: int, submit: Callable[[int], Any]) -> Reported:
        """Submit the items, at most ``max_concurrency`` in flight, and gather them in order."""
        m = self.mapper
        tally = Tally(n, m.failure_strategy, m.max_concurrency)
        pending: dict[Any, tuple[int, Any]] = {}   # meta ref -> (item, value ref)
        done: dict[int, Any] = {}                  # item -> value ref, for the items that succeeded
        nxt, cancelled = 0, False
        try:
            while nxt < n or pending:
                while nxt < n and (m.max_concurrency is None or len(pending) < m.max_concurrency):
                    value_ref, meta_ref = submit(nxt)
                    pending[meta_ref] = (nxt, value_ref)
                    nxt += 1
                for ref in _ready(list(pending)):
                    i, value_ref = pending.pop(ref)
                    failure = _settle(tally, i, ref, value_ref, done)
                    if failure is not None and m.failure_strategy == "fail_fast":
                        raise tally.failure(i, *failure)
        except KeyboardInterrupt:   # the map was cancelled
            cancelled = True
            raise
        finally:
            _cancel(list(pending), cancelled=cancelled)
        values = dict(zip(done, ray.get(list(done.values())), strict=True)) if done else {}
        return Reported([values.get(i) for i in range(n)], tally.outcome())


def _ready(refs: list[Any]) -> list[Any]:
    """The refs ready now, after waiting for one of the oldest (up to ``POLL_S``: a cancelled
    coordinator notices its interrupt only when control comes back to Python)."""
    ray.wait(refs[:WAIT_HEAD], num_returns=1, timeout=POLL_S)
    return ray.wait(refs, num_returns=len(refs), timeout=0)[0]


def _settle(tally: Tally, index: int, meta_ref: Any, value_ref: Any,
            done: dict[int, Any]) -> tuple[str, str | None] | None:
    """Record item ``index``'s outcome; its (error, detail) when it failed."""
    try:
        meta = unpack_meta(ray.get(meta_ref))
    except Exception as err:  # noqa: BLE001 - every item error is recorded
        cause = err if isinstance(err, ComponentFailure) else getattr(err, "cause", None)
        _read_once(value_ref)
        if isinstance(cause, ComponentFailure):
            tally.error(index, cause.one_line(), cause.meta)
            return cause.one_line(), cause.detail
        first = next((line for line in str(err).splitlines() if line.strip()), "")
        error = f"{type(err).__name__}: {first}"[:500]
        tally.error(index, error, {})
        return error, None
    tally.ok(index, meta)
    done[index] = value_ref
    return None


def _cancel(refs: list[Any], *, cancelled: bool) -> None:
    """Cancel the children still running. Normally a finished child is left alone (cancelling
    one races in Ray: see RayExecutor.cancel). Once the coordinator itself is ``cancelled``,
    Ray interrupts every wait it makes: then each child not yet seen to end is cancelled."""
    if not refs:
        return
    finished = set() if cancelled else set(ray.wait(refs, num_returns=len(refs), timeout=0)[0])
    for ref in refs:
        if ref not in finished:
            try:
                ray.cancel(ref, force=False, recursive=True)
            except (Exception, KeyboardInterrupt):  # noqa: BLE001 - a child that cannot be cancelled runs to its end
                pass


def _read_once(value_ref: Any) -> None:
    """Read a failed child's value once, so Ray does not log it as an unhandled error."""
    try:
        ray.get(value_ref, timeout=0)
    except Exception:  # noqa: BLE001 - the error was recorded from the metadata
        pass


def _encode(info: CallInfo) -> bytes:
    return cloudpickle.dumps(info.fields())   # decode_info reads it (retry_on may be any class)


def _run_item(fn: Any, blob: bytes, kwargs: dict | None, item: Any, index: int) -> tuple[Any, bytes]:
    """Item ``index``, in its own task: (value, packed meta), or raise ComponentFailure."""
    target = functools.partial(fn, **kwargs) if kwargs else fn
    value, meta = invoke(target, for_item(decode_info(blob), index), (item,), worker_context)
    return value, pack_meta(meta)


def _run_span(fn: Any, blob: bytes, kwargs: dict | None, table: Any, offset: int, rows: int,
              index: int) -> tuple[Any, bytes]:
    """One record batch of a shared table, cut here (zero-copy) from its span."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    return _run_item(fn, blob, kwargs, batch_at(table, offset, rows), index)


_MAP_TASK = ray.remote(_map_task)
_ITEM_TASK = ray.remote(_run_item)
_SPAN_TASK = ray.remote(_run_span)



class MapStrategy:
    """Dynamic maps: each map component one coordinator call (module doc)."""

    def __init__(self, calls: InFlight) -> None:
        self._calls = calls
        self._checkpoints = False
        self._logs: LogTarget | None = None

    def start(self, plan: Plan, *, checkpoints: CheckpointTarget | None, logs: LogTarget | None = None) -> None:
        self._checkpoints = checkpoints is not None
        self._logs = logs

    def submit(self, task: Task, deps: list[Any]) -> Any:
        return self._calls.started(task, submit_map(task, encode_info(task, self._checkpoints, self._logs), deps))

    def complete(self, head: str, value: Any, value_ref: Any) -> list[Completion]:
        return one_completion(head, value, value_ref)

    def head_of(self, cid: str) -> str:
        return cid

    def stops(self, head: str, asked: set[str]) -> bool:
        return True

    def cancel(self, head: str) -> None:
        pass

    def shutdown(self) -> None:
        pass


__all__ = ["MapStrategy", "submit_map"]
