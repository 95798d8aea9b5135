"""What every kind of Ray call shares: its options, its wire format, its outcome.

Owns, on the driver, a component's Ray options (``resource_options``, ``retry_options``
and their hashable key), the CallInfo as pre-pickled bytes (``encode_info``), and the
mapping of a finished call to Completions (``one_completion``, ``completion_from_error``);
on the worker, decoding the CallInfo, running a call through ``invoke`` and the worker
context each call's metadata records (node, worker, attempt). The strategies (tasks,
pools, streams, fused groups, dynamic maps) import it; it imports none of them.

Retry policy: ``max_retries=0`` (the default) keeps Ray's own default for system
failures (a worker or node dying) and retries no application error; ``max_retries=N``
allows N retries of system failures, timeouts and the exceptions in ``retry_exceptions``.
An auto-sized component (``sizing="auto"``) gets only its declared N from Ray; rayflow
retries its worker crashes and out-of-memory kills itself (rayflow.predict.history.OomResizer).
"""

from __future__ import annotations

import functools
import pickle
from typing import Any

import ray
from ray import cloudpickle
from ray.exceptions import TaskCancelledError

from rayflow.core.resolve import import_callable
from rayflow.execute.port import Completion, LogTarget, call_fields
from rayflow.execute.ray import compat
from rayflow.execute.ray.progress import tell_began
from rayflow.execute.worker import running
from rayflow.execute.worker.invoke import (
    CallInfo,
    ComponentFailure,
    RetryableFailure,
    invoke,
    pack_meta,
    unpack_meta,
)
from rayflow.plan import Task

RAY_DEFAULT_SYSTEM_RETRIES = 3
running.set_sink(tell_began)   # in a worker: a call running half a second tells the driver it began

_PLACE: dict[str, str] = {}   # this worker process's node and worker ids (fixed for its life)


def worker_context() -> dict[str, Any]:
    """Where this call runs: node and worker ids, and the attempt number."""
    if not _PLACE:
        ctx = ray.get_runtime_context()
        _PLACE.update(node_id=ctx.get_node_id(), worker_id=ctx.get_worker_id())
    return {**_PLACE, "attempt": compat.task_attempt()}


@functools.lru_cache(maxsize=256)
def imported(fn_ref: str, component: str) -> Any:
    """A spec component's ``module:callable``, imported once per worker process."""
    return import_callable(fn_ref, component=component)


def encode_info(task: Task, checkpoints: bool = False, log: LogTarget | None = None,
                began: str | None = None) -> bytes:
    """The task's CallInfo as pickled bytes, made on the driver: a flat tuple through the
    C pickler (Ray's generic argument serializer takes several times longer). ``began``:
    the key its worker tells its start under (rayflow.execute.ray.progress.BeganWatch)."""
    fields = call_fields(task, checkpoints, log, began)
    try:
        return pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)  # importable values
    except (pickle.PicklingError, AttributeError, TypeError):
        return cloudpickle.dumps(fields)  # lambdas, local classes and other values only cloudpickle takes


def decode_info(blob: bytes) -> CallInfo:
    return CallInfo(*pickle.loads(blob))


def run_call(fn: Any, blob: bytes, deps: tuple) -> tuple:
    """Run one call in this worker: (value, packed meta), or (*values, packed meta) for a
    call with several outputs; or raise ComponentFailure."""
    info = decode_info(blob)
    return returns(invoke(fn, info, deps, worker_context), info)


def returns(result: tuple[Any, dict[str, Any]], info: CallInfo) -> tuple:
    """A call's Ray returns: each output its own object, then the packed metadata."""
    value, meta = result
    return (*value, pack_meta(meta)) if info.num_outputs is not None else (value, pack_meta(meta))


def num_returns(task: Task) -> int:
    """Each output its own object, then the call's metadata."""
    return (task.options.num_outputs or 1) + 1


def resource_options(task: Task) -> dict[str, Any]:
    """Ray's resource options for ``task``'s call (or its actor): the options' own
    description uses Ray's names and units."""
    return task.options.describe()


def retry_options(task: Task) -> dict[str, Any]:
    """Ray's retry policy for ``task``. An auto-sized component gets no system-failure
    retries from Ray beyond its declared ``max_retries``: rayflow retries it itself (a
    worker crash with the same request, an out-of-memory kill with a larger one), since
    Ray would repeat the same request."""
    n = task.options.max_retries
    if task.options.sizing == "auto":
        return {"max_retries": n, "retry_exceptions": [RetryableFailure] if n else False}
    if n == 0:
        return {"max_retries": RAY_DEFAULT_SYSTEM_RETRIES, "retry_exceptions": False}
    return {"max_retries": n, "retry_exceptions": [RetryableFailure]}


def options_key(task: Task) -> tuple:
    """What ``resource_options`` and ``retry_options`` depend on, hashable."""
    o = task.options
    return (o.num_cpus, o.num_gpus, o.memory, tuple(sorted(o.resources.items())), o.max_retries, o.num_outputs,
            o.sizing == "auto")


def one_completion(cid: str, value: Any, value_ref: Any) -> list[Completion]:
    """The Completion of a call running one component: its metadata, or its error."""
    if not isinstance(value, BaseException):
        return [Completion(cid, True, unpack_meta(value))]
    mark_handled(value_ref)
    return [completion_from_error(cid, value)]


def mark_handled(value_ref: Any) -> None:
    """Read a failed call's value once, so Ray does not log it later as an unhandled error."""
    for ref in value_ref if isinstance(value_ref, list) else [value_ref]:   # a list: each output, each export
        if ref is None:
            continue
        try:
            ray.get(ref, timeout=0)
        except Exception:  # noqa: BLE001 - the error is already reported through the metadata
            pass


def completion_from_error(cid: str, err: BaseException) -> Completion:
    """Map what Ray raised for a component into a Completion (own error or upstream's)."""
    cause = err if isinstance(err, ComponentFailure) else getattr(err, "cause", None)
    if isinstance(cause, ComponentFailure):
        upstream = cause.component if cause.component != cid else None
        return Completion(cid, False, cause.meta, cause.one_line(), cause.detail, cause.timed_out, upstream)
    if isinstance(err, TaskCancelledError):
        return Completion(cid, False, {}, "TaskCancelledError: the task was cancelled")
    text = str(err).strip().splitlines()
    first = next((line for line in text if line.strip()), "")
    return Completion(cid, False, {}, f"{type(err).__name__}: {first}"[:500], str(err))
