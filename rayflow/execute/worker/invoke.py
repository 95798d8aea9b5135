"""The worker side of one component call: fill arguments, enforce timeout_s, time it.

Owns what runs inside a Ray task, a pool actor or the local executor around the
user's function, and the picklable failure it raises. Pure Python; must not import
ray (the Ray adapter passes the worker context in).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from rayflow.core import notes
from rayflow.core.errors import ComponentTimeout
from rayflow.core.template import fill, inputs_in_order
from rayflow.data.codec import inline_blob
from rayflow.execute.worker import capture, running, usage
from rayflow.execute.worker.capture import LogTarget


class CallInfo(NamedTuple):
    """Plain data sent with each call (never the plan). A named tuple: a call decodes one
    in every worker, and a tuple is built several times faster than a frozen dataclass."""

    id: str
    args: tuple | None   # None: the call's inputs, in order, are its positional arguments
    kwargs: dict
    timeout_s: float | None = None
    retry_on: bool | tuple[type[BaseException], ...] = False
    has_slots: bool = True
    num_outputs: int | None = None    # the call must return this many values
    checkpoint: bool = False          # hand back the output's blob (small) or b"" (large: saved apart)
    log: LogTarget | None = None      # capture what the call prints and logs (None: not captured)
    running: str | None = None        # the key its start is told under (rayflow/execute/worker/running.py)

    def fields(self) -> tuple:
        """The fields in order: ``CallInfo(*info.fields())`` is a copy (the wire format)."""
        return tuple(self)


@dataclass(frozen=True, slots=True)
class Reported:
    """What a call returns to report more than its value: ``value`` is the output, and
    ``outcome`` (JSON-friendly) goes into the call's meta as ``meta["outcome"]`` (a dynamic
    map's per-item counts). An exception with an ``outcome`` attribute reports it likewise."""

    value: Any
    outcome: dict[str, Any]


class ComponentFailure(Exception):
    """A component's final or retryable error, carrying its timings (picklable)."""

    def __init__(self, component: str, error_type: str, message: str, detail: str,
                 meta: Mapping[str, Any], timed_out: bool = False) -> None:
        super().__init__(f"{error_type}: {message}")
        self.component = component
        self.error_type = error_type
        self.message = message
        self.detail = detail
        self.meta = dict(meta)
        self.timed_out = timed_out

    def __reduce__(self):
        return (type(self), (self.component, self.error_type, self.message, self.detail, self.meta, self.timed_out))

    def one_line(self) -> str:
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.error_type}: {first}" if first else self.error_type


class RetryableFailure(ComponentFailure):
    """A failure the retry policy covers (a timeout, or an exception in ``retry_exceptions``)."""


class FailedOutput:
    """Stands in for the output of a component that failed inside a fused call (see
    rayflow/execute/worker/fused.py): a call that reads it fails with ``failure``, the failing
    component's, as when Ray hands a call an upstream's error (so it is UPSTREAM_FAILED)."""

    __slots__ = ("failure",)

    def __init__(self, failure: ComponentFailure) -> None:
        self.failure = failure

    def __reduce__(self):
        return (FailedOutput, (self.failure,))

    @classmethod
    def of(cls, failure: ComponentFailure) -> FailedOutput:
        """The marker for ``failure``: a plain failure (a consumer does not retry its upstream's
        error), without the traceback (the failing component's own record has it)."""
        return cls(ComponentFailure(failure.component, failure.error_type, failure.message, "", {},
                                    failure.timed_out))


def check_inputs(deps: tuple | list) -> None:
    """Raise the upstream's failure when an input stands for a failed output."""
    for value in deps:
        if type(value) is FailedOutput:
            raise value.failure


class _AsyncTimeout(ComponentTimeout):
    """Raised asynchronously in a non-main thread; takes no arguments by necessity."""

    def __init__(self) -> None:
        super().__init__("?", 0.0)


def invoke(fn: Callable[..., Any], info: CallInfo, deps: tuple | list,
           context: Callable[[], dict[str, Any]] | None = None) -> tuple[Any, dict[str, Any]]:
    """Call ``fn`` for ``info``; return (value, meta) or raise ComponentFailure (an upstream's,
    when an input is a FailedOutput). With ``info.log``, what the call prints and logs is
    captured (rayflow/execute/worker/capture.py)."""
    check_inputs(deps)
    log = told = None
    if info.log is not None or info.running is not None:
        where = context() if context is not None else {}
        context = lambda: where   # noqa: E731 - the same attempt at the end as at the start
        attempt = int(where.get("attempt", 0)) + 1
        told = running.begin(info.running, info.id, attempt)
        if info.log is not None:
            log = capture.begin(info.log, info.id, attempt)
    measured = usage.start()
    started = time.time()
    cpu0 = time.process_time()
    try:
        if info.args is None:
            args, kwargs = deps, info.kwargs
        elif info.has_slots:
            args, kwargs = fill(info.args, deps), fill(info.kwargs, deps)
        else:
            args, kwargs = info.args, info.kwargs
        value = call_with_timeout(fn, args, kwargs, info.timeout_s, info.id)
        outcome = None
        if type(value) is Reported:
            value, outcome = value.value, value.outcome
        if info.num_outputs is not None:
            value = _outputs(value, info.num_outputs)
    except Exception as exc:  # KeyboardInterrupt (cancellation) passes through
        running.end(told)
        failure = _failure(info, exc, started, cpu0, context, measured)
        reported = notes.take(info.id)
        if reported:
            failure.meta["outcome"] = {**(failure.meta.get("outcome") or {}), "connector": reported}
        if log is not None:
            capture.end(log, failure.meta, failed=True)
        raise failure from None
    except BaseException:
        running.end(told)
        if log is not None:
            capture.bind(log.outer)
        raise
    running.end(told)
    meta = _meta(started, cpu0, context, measured)
    if log is not None:
        capture.end(log, meta, failed=False)
    reported = notes.take(info.id)
    if reported:
        outcome = {**(outcome or {}), "connector": reported}
    if outcome is not None:
        meta["outcome"] = outcome
    meta["input_bytes"], meta["input_rows"] = input_size(deps)
    if info.checkpoint:
        meta["checkpoint"] = _checkpoint_blob(value, info.id)
    return value, meta


def input_size(deps: tuple | list) -> tuple[int, int]:
    """Bytes and rows of a call's upstream values, as far as they tell (Arrow tables and
    batches, numpy arrays, bytes and strings; rows -1 when none has rows): what the
    resource model learns memory and time from."""
    size, rows = 0, -1
    for value in deps:
        nbytes = getattr(value, "nbytes", None)
        if isinstance(nbytes, int):
            size += nbytes
        elif isinstance(value, (bytes, str)):
            size += len(value)
        n = getattr(value, "num_rows", None)
        if isinstance(n, int):
            rows = max(rows, 0) + n
    return size, rows


def _checkpoint_blob(value: Any, component: str) -> bytes:
    """A small output's blob (it travels with the metadata), or b"": too large, or not
    encodable here, so the driver has it saved apart (a failure there only costs a rerun)."""
    try:
        return inline_blob(value, INLINE_CHECKPOINT_BYTES) or b""
    except Exception:  # noqa: BLE001 - an output that cannot be encoded is simply not checkpointed inline
        return b""


def _outputs(value: Any, n: int) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, (tuple, list)) else f"a {type(value).__name__}"
        raise ValueError(f"returned {got}; expected a tuple of {n} (num_outputs={n})")
    return tuple(value)


INLINE_CHECKPOINT_BYTES = 64 * 1024   # outputs up to this size travel back with the call's metadata

EXTRAS = frozenset({"outcome", "log"})   # meta keys that make a call's meta travel as a dict
_TAILS: dict[tuple[str | None, str | None], bytes] = {}
# started_at, ended_at, cpu_s, peak_rss (-1: unknown), attempt, input bytes, input rows (-1: unknown)
_PACKED = struct.Struct("<dddqiqq")


def pack_meta(meta: Mapping[str, Any]) -> bytes:
    """A call's meta as compact bytes: what the driver reads for every call, so it must
    be cheap to ship and to decode (a fixed struct, then "node_id\0worker_id"). A meta
    with more than timings (an outcome, a log: ``EXTRAS``) is sent as the dict it is."""
    if EXTRAS & meta.keys():
        return meta   # type: ignore[return-value] - a call that reported more than timings: as it is
    head = _head(meta)
    place = (meta.get("node_id"), meta.get("worker_id"))
    tail = _TAILS.get(place)
    if tail is None:   # a worker has one place for its life: encoded once
        tail = _TAILS[place] = f"{place[0] or ''}\0{place[1] or ''}".encode()
    checkpoint = meta.get("checkpoint")
    return head + tail if checkpoint is None else head + tail + b"\0" + checkpoint


def _head(meta: Mapping[str, Any]) -> bytes:
    peak = meta.get("peak_rss_bytes")
    return _PACKED.pack(meta["started_at"], meta["ended_at"], meta["cpu_s"], -1 if peak is None else peak,
                        meta.get("attempt", 0), meta.get("input_bytes", 0), meta.get("input_rows", -1))


def pack_timings(meta: Mapping[str, Any]) -> bytes:
    """``pack_meta`` without the node and worker ids: the calls of one worker process (the
    members of a fused call) share them, so they travel once (see ``unpack_timings``)."""
    if EXTRAS & meta.keys():
        return meta   # type: ignore[return-value] - as ``pack_meta``
    head = _head(meta)
    checkpoint = meta.get("checkpoint")   # b"": too large to travel inline, still to be saved
    return head if checkpoint is None else head + b"\0" + checkpoint


def unpack_timings(blob: bytes | dict[str, Any], place: Mapping[str, Any]) -> dict[str, Any]:
    """The meta ``pack_timings`` packed, with the node and worker ids of ``place``."""
    if type(blob) is dict:
        return blob
    started, ended, cpu_s, peak, attempt, input_bytes, input_rows = _PACKED.unpack_from(blob)
    meta: dict[str, Any] = {"started_at": started, "ended_at": ended, "cpu_s": cpu_s, "attempt": attempt,
                            "input_bytes": input_bytes, "input_rows": input_rows, **place}
    if peak >= 0:
        meta["peak_rss_bytes"] = peak
    if len(blob) > _PACKED.size:
        meta["checkpoint"] = blob[_PACKED.size + 1:]
    return meta


def unpack_meta(blob: bytes | dict[str, Any]) -> dict[str, Any]:
    if type(blob) is dict:   # a call that reported more than timings sends its meta as it is
        return blob
    started, ended, cpu_s, peak, attempt, input_bytes, input_rows = _PACKED.unpack_from(blob)
    meta: dict[str, Any] = {"started_at": started, "ended_at": ended, "cpu_s": cpu_s, "attempt": attempt,
                            "input_bytes": input_bytes, "input_rows": input_rows}
    if peak >= 0:
        meta["peak_rss_bytes"] = peak
    place = blob[_PACKED.size:].split(b"\0", 2)   # node, worker[, checkpoint blob]
    node, worker = place[0].decode(), place[1].decode() if len(place) > 1 else ""
    if len(place) > 2:
        meta["checkpoint"] = place[2]
    if node:
        meta["node_id"] = node
    if worker:
        meta["worker_id"] = worker
    return meta


def _meta(started: float, cpu0: float, context: Callable[[], dict[str, Any]] | None,
          measured: bool = False) -> dict[str, Any]:
    meta = {"started_at": started, "ended_at": time.time(), "cpu_s": time.process_time() - cpu0}
    if measured:
        meta["peak_rss_bytes"] = usage.peak()
    if context is not None:
        meta.update(context())
    return meta


def _failure(info: CallInfo, exc: Exception, started: float, cpu0: float,
             context: Callable[[], dict[str, Any]] | None, measured: bool = False) -> ComponentFailure:
    meta = _meta(started, cpu0, context, measured)
    timed_out = isinstance(exc, ComponentTimeout)
    if timed_out:
        exc = ComponentTimeout(info.id, info.timeout_s or 0.0)
    retryable = timed_out or info.retry_on is True or (
        isinstance(info.retry_on, tuple) and isinstance(exc, info.retry_on)
    )
    cls = RetryableFailure if retryable else ComponentFailure
    detail = user_traceback(exc)
    outcome = getattr(exc, "outcome", None)
    if isinstance(outcome, dict):
        meta["outcome"] = outcome
    return cls(info.id, type(exc).__name__, str(exc), detail, meta, timed_out)


_RAYFLOW_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback with rayflow's own frames left out (the user's code is what a
    reader looks for; a note says how many were left out). Every chained exception is kept."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    hidden, seen, todo = 0, set(), [te]
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        kept = [f for f in one.stack if not f.filename.startswith(_RAYFLOW_DIR)]
        if kept or one.stack:
            hidden += len(one.stack) - len(kept)
            one.stack = traceback.StackSummary.from_list(kept)
        todo.extend(x for x in (one.__cause__, one.__context__) if x is not None)
    text = "".join(te.format())
    return text + (f"({hidden} frame(s) of rayflow itself not shown)\n" if hidden else "")


def call_with_timeout(fn: Callable[..., Any], args: Any, kwargs: Any, timeout_s: float | None,
                      component: str) -> Any:
    """Call ``fn``; raise ComponentTimeout once ``timeout_s`` has passed.

    In the main thread a SIGALRM timer interrupts the call (even ``time.sleep``).
    Elsewhere the call runs in a helper thread that is abandoned on timeout (and sent
    an asynchronous exception so it stops at its next bytecode).
    """
    if not timeout_s:
        return fn(*args, **kwargs)
    if threading.current_thread() is threading.main_thread():
        with _alarm(timeout_s, component):
            return fn(*args, **kwargs)
    return _in_thread(fn, args, kwargs, timeout_s, component)


@contextlib.contextmanager
def _alarm(timeout_s: float, component: str) -> Iterator[None]:
    """SIGALRM after ``timeout_s``; an outer timer (pytest-timeout, the user's) is re-armed after."""

    def on_alarm(signum, frame):
        raise ComponentTimeout(component, timeout_s)

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer_remaining, outer_interval = signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_remaining > 0:
            left = max(outer_remaining - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _in_thread(fn: Callable[..., Any], args: Any, kwargs: Any, timeout_s: float, component: str) -> Any:
    outcome: dict[str, Any] = {}
    log = capture.current()

    def target() -> None:
        capture.bind(log)   # what the call prints in this thread is the attempt's too
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed back to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"rayflow-{component}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_AsyncTimeout))
        raise ComponentTimeout(component, timeout_s)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def call_fields(task: Any, checkpoints: bool = False, log: LogTarget | None = None,
                running: str | None = None) -> tuple:
    """The plain data a worker needs for ``task``, as ``CallInfo``'s fields in order (its
    templates hold Slots only when it has deps); ``checkpoints``: the run keeps outputs
    (a small output comes back as bytes for its checkpoint, and for the cache); ``log``:
    where the run's logs go (None: nothing is captured). Arguments that are just the
    inputs in order travel as None (the worker passes the inputs)."""
    o = task.options
    args = None if not task.kwargs and inputs_in_order(task.args, len(task.inputs)) else task.args
    return (task.id, args, task.kwargs, o.timeout_s, o.retry_exceptions, bool(task.deps), o.num_outputs,
            (checkpoints and o.checkpoint) or task.cache_key is not None, log, running)


def call_info(task: Any, checkpoints: bool = False, log: LogTarget | None = None,
              running: str | None = None) -> CallInfo:
    return CallInfo(*call_fields(task, checkpoints, log, running))
