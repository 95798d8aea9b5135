"""Streams on Ray: a chain of batch components run as a pipeline of actors.

A coordinator task (no CPU of its own) feeds the head's input batch by batch: an
upstream's table (already in the object store) it slices into zero-copy views and puts;
a literal source (Parquet files, a dataset, an iterable of batches) the head stage's
actor reads itself, ``buffer`` pulls ahead, so no input batch is put in the object
store before the first stage's output (one copy of the data fewer). Each batch goes
through one actor per stage (each with its stage's resources), stage i+1
working on batch j-1 while stage i works on batch j; at most ``buffer`` batches are in
flight through the stream at once, so memory is bounded by the buffer, not the data.
Each stage call goes through ``invoke`` (timeout per batch, failures as
ComponentFailure), and each actor reports its stage's timings at the end: first
start, last end, CPU time and peak memory summed or maxed over its batches. While it
runs, the coordinator counts the batches (and input rows) leaving the last stage and
reports them to the run's progress channel at most every half second, fire and forget
(rayflow/execute/ray/progress.py); its last count comes back with the timings. See
rayflow/plan/streams.py for which chains become streams. One of the modules
importing ray.

On the driver, ``StreamStrategy`` (rayflow.execute.ray.strategy.Strategy) starts a
stream when the loop submits its head, hands out the last stage's output, and maps
the coordinator's outcome to one Completion per stage. A stream runs as one only in
a run without ``max_concurrency`` and when all its stages' actors fit in the cluster
at once; otherwise its stages run one after another, as plain tasks.
"""

from __future__ import annotations

import collections
import logging
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import ray
from ray import cloudpickle
from ray.exceptions import RayTaskError

from rayflow.core import notes
from rayflow.core.template import Slot, fill
from rayflow.data.batches import DEFAULT_BATCH_SIZE, BatchFunction, batches_to_apply, concat_results
from rayflow.data.progress import StreamCounter, source_rows
from rayflow.execute.port import CheckpointTarget, Completion, LogTarget
from rayflow.execute.ray.calls import (
    completion_from_error,
    mark_handled,
    resource_options,
    worker_context,
)
from rayflow.execute.ray.progress import FINAL_KEY, Channel, StreamWatch
from rayflow.execute.ray.strategy import InFlight, Strategy
from rayflow.execute.worker import capture
from rayflow.execute.worker.invoke import (
    CallInfo,
    ComponentFailure,
    check_inputs,
    invoke,
    pack_meta,
    unpack_meta,
)
from rayflow.plan import Plan, Task
from rayflow.plan.streams import DEFAULT_BUFFER

log = logging.getLogger("rayflow")


@dataclass(frozen=True)
class Stage:
    """What a stage actor needs: its component, function, config and resources."""

    id: str
    fn: Any
    config: dict[str, Any]
    batch_size: int
    timeout_s: float | None
    resources: dict[str, Any]
    log: LogTarget | None = None   # where the stage's log goes (one for all its batches)


class StreamFailure(ComponentFailure):
    """A stage of a stream failed; ``done`` holds the packed timings of the other stages."""

    def __init__(self, component: str, error_type: str, message: str, detail: str,
                 meta: dict, timed_out: bool = False, done: dict[str, bytes] | None = None) -> None:
        super().__init__(component, error_type, message, detail, meta, timed_out)
        self.done = dict(done or {})

    def __reduce__(self):
        return (type(self), (self.component, self.error_type, self.message, self.detail, self.meta,
                             self.timed_out, self.done))


class _StageActor:
    def __init__(self, stage: Stage) -> None:
        self._fn = BatchFunction(stage.fn, stage.batch_size)
        self._context = worker_context
        self._info = CallInfo(stage.id, (Slot(0),), stage.config, stage.timeout_s, False, True)
        self._first: float | None = None
        self._last = 0.0
        self._cpu = 0.0
        self._peak: int | None = None
        self._place: dict[str, Any] = {}
        self._outcome: dict[str, Any] = {}
        # one log for all the stage's batches (the stream is one attempt of each stage)
        self._log = capture.start(stage.log, stage.id, 1) if stage.log is not None else None

    def open(self, data: Any) -> None:
        """Read ``data`` (a literal source: a Parquet path or dataset, an iterable of
        batches) here, batch by batch, for ``pull``: the head stage decodes its own input,
        so no batch is put in the object store before the first stage's output."""
        self._source = batches_to_apply(data, self._fn.batch_size)

    def pull(self) -> tuple[pa.Table | None, int]:
        """The next batch through this stage, and its input rows; (None, 0) at the end."""
        try:
            batch = next(self._source, None)
        except Exception as exc:  # reading the input failed: the head stage's failure
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            raise ComponentFailure(self._info.id, type(exc).__name__, str(exc), detail, {}) from None
        if batch is None:
            return None, 0
        return self.apply(batch), batch.num_rows

    def apply(self, batch: Any) -> pa.Table | None:
        if batch is None:   # the end of a head-read input passes through
            return None
        if self._log is None:
            value, meta = invoke(self._fn, self._info, (batch,), self._context)
        else:
            capture.bind(self._log)
            try:
                value, meta = invoke(self._fn, self._info, (batch,), self._context)
            except ComponentFailure as failure:
                capture.end(self._log, failure.meta, failed=True)
                self._log = None   # ended with the failure (its timings carry no second copy)
                raise
            finally:
                capture.bind(None)
        self._first = meta["started_at"] if self._first is None else self._first
        self._last, self._cpu = meta["ended_at"], self._cpu + meta["cpu_s"]
        peak = meta.get("peak_rss_bytes")
        if peak is not None:
            self._peak = peak if self._peak is None else max(self._peak, peak)
        self._place = {k: meta[k] for k in ("node_id", "worker_id") if k in meta}
        if "outcome" in meta:   # what each batch's call reported, as one outcome of the stage
            self._outcome = notes.merge(self._outcome, meta["outcome"])
        return value

    def timings(self) -> bytes:
        started = self._first if self._first is not None else self._last
        meta = {"started_at": started or 0.0, "ended_at": self._last or started or 0.0,
                "cpu_s": self._cpu, "peak_rss_bytes": self._peak, **self._place}
        if self._outcome:
            meta["outcome"] = self._outcome
        if self._log is not None:
            capture.end(self._log, meta, failed=False)
        return pack_meta(meta)


_STAGE_ACTOR = ray.remote(_StageActor)


def stage_of(task: Task, log: LogTarget | None = None) -> Stage:
    o = task.options
    fn = task.fn.fn if isinstance(task.fn, BatchFunction) else task.fn
    return Stage(task.id, fn, dict(task.kwargs), o.batch_size or DEFAULT_BATCH_SIZE, o.timeout_s,
                 resource_options(task), log)


def fits_together(tasks: list[Task]) -> bool:
    """Whether all the stages' actors can hold their resources at once in this cluster;
    if not, they would wait on each other forever, so the stream must not start."""
    need: dict[str, float] = {}
    for task in tasks:
        for name, amount in task.options.ray_resources().items():
            need[name] = need.get(name, 0.0) + amount
    have = ray.cluster_resources()
    return all(have.get(name, 0.0) >= amount for name, amount in need.items() if amount > 0)


def encode_stream(head: Task, stages: list[Stage], buffer: int, channel: Channel | None = None) -> bytes:
    """What the coordinator needs: the head's input, the stages, the buffer, and where to
    report progress (None: nowhere)."""
    return cloudpickle.dumps((head.args[0], stages, buffer, channel))


def run_stream(blob: bytes, *deps: Any) -> tuple[pa.Table, dict[str, Any]]:
    """The coordinator task: the last stage's output as one table, and each stage's timings
    (with the last progress snapshot under ``FINAL_KEY`` when progress is reported)."""
    source, stages, buffer, channel = cloudpickle.loads(blob)
    check_inputs(deps)   # an upstream failed inside a fused call: the stream is upstream-failed
    data = fill(source, deps)
    actors = [_STAGE_ACTOR.options(**s.resources).remote(s) for s in stages]
    parts: list[pa.Table] = []
    try:
        progress = _Progress(channel, [s.id for s in stages], data)   # counts rows while the actors start
        try:
            feed = _pulled if not deps else _put
            for out in feed(data, actors, stages[0].batch_size, buffer, progress):
                parts.append(out)
        except RayTaskError as err:
            cause = getattr(err, "cause", None)
            if not isinstance(cause, ComponentFailure):
                raise
            done = dict(zip([s.id for s in stages], ray.get([a.timings.remote() for a in actors]), strict=True))
            raise StreamFailure(cause.component, cause.error_type, cause.message, cause.detail, cause.meta,
                                cause.timed_out, done) from None
        timings = dict(zip([s.id for s in stages], ray.get([a.timings.remote() for a in actors]), strict=True))
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
    return concat_results(parts, f"stage {stages[-1].id!r}"), {**timings, **progress.final()}


def _put(data: Any, actors: list, batch_size: int, buffer: int, progress: _Progress) -> Iterator[pa.Table]:
    """An upstream's table (already in the object store): the coordinator slices it into
    batches, zero-copy, and puts each view for the first stage."""
    in_flight: collections.deque = collections.deque()
    for batch in batches_to_apply(data, batch_size):
        ref = ray.put(_for_put(batch))
        for actor in actors:
            ref = actor.apply.remote(ref)
        in_flight.append((ref, batch.num_rows))
        if len(in_flight) >= buffer:
            yield progress.through(*in_flight.popleft())
    while in_flight:
        yield progress.through(*in_flight.popleft())


def _pulled(data: Any, actors: list, batch_size: int, buffer: int, progress: _Progress) -> Iterator[pa.Table]:
    """A literal source (files, a dataset, a generator object): the head stage reads it
    itself, ``buffer`` pulls ahead; a pull past the end yields None through every stage."""
    head, rest = actors[0], actors[1:]
    head.open.remote(data)
    in_flight: collections.deque = collections.deque()
    ended = False
    while not ended or in_flight:
        while not ended and len(in_flight) < buffer:
            ref, rows = head.pull.options(num_returns=2).remote()
            for actor in rest:
                ref = actor.apply.remote(ref)
            in_flight.append((ref, rows))
        ref, rows = in_flight.popleft()
        out = progress.through(ref, rows)
        if out is None:
            ended = True
            continue
        yield out


class _Progress:
    """The coordinator's count of what left the last stage, reported through ``channel``
    (a report at most every REPORT_EVERY_S, the first at once with the input's row count)."""

    def __init__(self, channel: Channel | None, stages: list[str], data: Any) -> None:
        self._channel = channel
        self._counter = StreamCounter(stages, source_rows(data)) if channel is not None else None
        if self._counter is not None and self._counter.due():
            channel.send(self._counter.snapshot())

    def through(self, ref: Any, rows_in: Any) -> pa.Table | None:
        """The last stage's output for a batch of ``rows_in`` input rows (or the ref of
        that count), counted; None past the end of a head-read input."""
        if isinstance(rows_in, ray.ObjectRef):
            out, rows_in = ray.get([ref, rows_in])
        else:
            out = ray.get(ref)
        if out is None:
            return None
        if self._counter is not None and self._counter.add(rows_in, out.num_rows):
            self._channel.send(self._counter.snapshot())
        return out

    def final(self) -> dict[str, Any]:
        return {} if self._counter is None else {FINAL_KEY: self._counter.snapshot(done=True)}


def _for_put(batch: pa.RecordBatch) -> pa.Table | pa.RecordBatch:
    """What to put in the object store for ``batch``. A batch sliced from a bigger one still
    holds the bigger one's buffers, and Ray writes a RecordBatch's buffers whole; a Table's
    it writes truncated to the slice (its Arrow serializer), so a zero-copy Table view is
    put. Where that serializer is turned off, just the batch's rows are copied first."""
    if os.environ.get(RAY_PLAIN_ARROW) != "1":
        return pa.Table.from_batches([batch])
    if batch.num_rows and batch.nbytes < batch.get_total_buffer_size() // 2:
        return pa.RecordBatch.from_arrays([pa.concat_arrays([col]) for col in batch.columns], schema=batch.schema)
    return batch


RAY_PLAIN_ARROW = "RAY_DISABLE_CUSTOM_ARROW_DATA_SERIALIZATION"
STREAM_TASK = ray.remote(run_stream).options(num_cpus=0, num_returns=2)


class StreamStrategy:
    """Streams on the driver (module doc); members of streams that cannot run as one go
    to ``fallback``, the plain-task strategy."""

    def __init__(self, calls: InFlight, *, fallback: Strategy, watch: StreamWatch) -> None:
        self._calls = calls
        self._fallback = fallback
        self._watch = watch
        self._tasks: Any = {}
        self._stream_of: dict[str, tuple[str, ...]] = {}   # member -> its stream (heads submit it)
        self._running: dict[str, tuple[str, ...]] = {}     # head -> members, while its call runs
        self._logs: LogTarget | None = None

    def start(self, plan: Plan, *, checkpoints: CheckpointTarget | None, logs: LogTarget | None = None) -> None:
        self._logs = logs
        self._tasks = plan.tasks
        self._stream_of = {}
        self._running = {}
        if plan.max_concurrency is not None:   # a stream's members run at once: only without a bound
            return
        for stream in plan.streams:   # ... and only if their actors can all be placed at once
            if fits_together([plan.tasks[m] for m in stream]):
                self._stream_of.update(dict.fromkeys(stream, stream))
            else:
                log.info("stream %s needs more than the cluster has at once; its stages run one "
                         "after another", " -> ".join(stream))

    def submit(self, task: Task, deps: list[Any]) -> Any:
        """The head starts the whole stream; the last member's handle is the stream's output
        (the others feed only the next stage, inside the stream)."""
        stream = self._stream_of.get(task.id)
        if stream is None:
            return self._fallback.submit(task, deps)
        head = stream[0]
        if task.id == head:
            tasks = [self._tasks[m] for m in stream]
            buffer = min(t.options.buffer_size or DEFAULT_BUFFER for t in tasks)
            blob = encode_stream(task, [stage_of(t, self._logs) for t in tasks], buffer,
                                 self._watch.channel(stream))
            value, meta = STREAM_TASK.remote(blob, *deps)
            self._calls.add(head, value, meta)
            self._running[head] = stream
        refs = self._calls.refs.get(head)
        return refs[0] if task.id == stream[-1] and refs is not None else None

    def complete(self, head: str, value: Any, value_ref: Any) -> list[Completion]:
        stream = self._running.pop(head, None)
        if stream is None:
            return self._fallback.complete(head, value, value_ref)
        self._watch.finished(stream, value)
        return stream_completions(stream, value, value_ref)

    def head_of(self, cid: str) -> str:
        stream = self._stream_of.get(cid)
        return cid if stream is None else stream[0]

    def stops(self, head: str, asked: set[str]) -> bool:
        return True

    def cancel(self, head: str) -> None:
        self._fallback.cancel(head)

    def shutdown(self) -> None:
        self._running = {}


def stream_completions(stream: tuple[str, ...], value: Any, value_ref: Any) -> list[Completion]:
    """One completion per member: all succeeded; or the failing stage failed, the
    stages before it were stopped, and the ones after are left to the failure strategy."""
    if not isinstance(value, BaseException):
        return [Completion(m, True, unpack_meta(value[m])) for m in stream]
    mark_handled(value_ref)
    cause = getattr(value, "cause", None)
    if not isinstance(cause, StreamFailure) or cause.component not in stream:
        return [completion_from_error(stream[0], value)]
    failing = stream.index(cause.component)
    out = [Completion(m, False, unpack_meta(cause.done[m]) if m in cause.done else {},
                      f"stopped: stage {cause.component!r} of its stream failed", stopped=True)
           for m in stream[:failing]]
    return [*out, Completion(cause.component, False, cause.meta, cause.one_line(), cause.detail,
                             cause.timed_out)]
