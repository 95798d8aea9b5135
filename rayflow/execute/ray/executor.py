"""The Ray executor: each component a Ray task (or a call on a pool actor), outputs as ObjectRefs.

Owns translating Tasks into ``.remote()`` calls with the component's resources and
retry policy, waiting on the small metadata refs (each call returns value and
metadata as two objects, so the driver never pulls values it does not need), and
actor pools: created on first use, one per actor component, killed as soon as
their last call is final so they do not hold CPUs the rest of the run needs.

Retry policy: ``max_retries=0`` (the default) keeps Ray's own default for system
failures (a worker or node dying) and retries no application error; ``max_retries=N``
allows N retries of system failures, timeouts and the exceptions in ``retry_exceptions``.
An auto-sized component (``sizing="auto"``) gets only its declared N from Ray; rayflow
retries its worker crashes and out-of-memory kills itself (rayflow.predict.history.OomResizer).

Per-component cost on the driver (benchmarks/overhead.py measures it against raw Ray):
remote functions are configured once per process per function and resource signature
and then submitted through the core-worker call ``.remote()`` ends in
(rayflow.execute.ray.submit), the CallInfo travels as pre-pickled bytes, and completions are gathered in batches from
a bounded window of the oldest calls, so no step is linear in the calls in flight.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import pickle
from collections.abc import Iterable
from typing import Any

import ray
from ray import cloudpickle
from ray.exceptions import RayError, TaskCancelledError

from rayflow.core import gcpause
from rayflow.data import codec
from rayflow.execute.port import CheckpointTarget, Completion, call_fields
from rayflow.execute.ray.fused import FusedCalls
from rayflow.execute.ray.progress import StreamWatch
from rayflow.execute.ray.streams import (
    STREAM_TASK,
    StreamFailure,
    encode_stream,
    fits_together,
    stage_of,
)
from rayflow.execute.ray.submit import Configured
from rayflow.execute.worker.dynamic import DynamicMap
from rayflow.execute.worker.invoke import (
    CallInfo,
    ComponentFailure,
    RetryableFailure,
    invoke,
    pack_meta,
    unpack_meta,
)
from rayflow.plan import Plan, Task
from rayflow.plan.streams import DEFAULT_BUFFER
from rayflow.spec.resolve import import_callable
from rayflow.store.checkpoints import Checkpoint

log = logging.getLogger("rayflow")

RAY_DEFAULT_SYSTEM_RETRIES = 3
WAIT_WINDOW = 256   # each wait looks at the oldest in-flight calls (they finish first)
WAIT_HEAD = 8        # the oldest calls a batching wait blocks on
SWEEP_CHUNK = 64     # refs per non-blocking wait when sweeping the oldest calls
BIG_RUN = 256        # in a run of this many components a wait lingers for more completions ...
LINGER_S = 0.1       # ... this long (fewer, costlier waits pay off); a small run gains nothing
                     # from lingering, and a tracker driving a thousand small runs loses much
MAX_CACHED_REMOTES = 1024


_PLACE: dict[str, str] = {}   # this worker process's node and worker ids (fixed for its life)


def _worker_context() -> dict[str, Any]:
    if not _PLACE:
        ctx = ray.get_runtime_context()
        _PLACE.update(node_id=ctx.get_node_id(), worker_id=ctx.get_worker_id())
    try:
        attempt = ray._private.worker.global_worker.core_worker.get_current_task_attempt_number()
    except Exception:  # private API; timings stay right without it
        attempt = 0
    return {**_PLACE, "attempt": attempt}


@functools.lru_cache(maxsize=256)
def _imported(fn_ref: str, component: str) -> Any:
    return import_callable(fn_ref, component=component)


def encode_info(task: Task, checkpoints: bool = False) -> bytes:
    """The task's CallInfo as pickled bytes, made on the driver: a flat tuple through the
    C pickler (Ray's generic argument serializer takes several times longer)."""
    fields = call_fields(task, checkpoints)
    try:
        return pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)  # importable values
    except (pickle.PicklingError, AttributeError, TypeError):
        return cloudpickle.dumps(fields)  # lambdas, local classes and other values only cloudpickle takes


def decode_info(blob: bytes) -> CallInfo:
    return CallInfo(*pickle.loads(blob))


def _call(fn: Any, blob: bytes, deps: tuple) -> tuple:
    """Run one call in this worker: (value, packed meta), or (*values, packed meta) for a
    call with several outputs; or raise ComponentFailure."""
    info = decode_info(blob)
    return _returns(invoke(fn, info, deps, _worker_context), info)


def _returns(result: tuple[Any, dict[str, Any]], info: CallInfo) -> tuple:
    value, meta = result
    return (*value, pack_meta(meta)) if info.num_outputs is not None else (value, pack_meta(meta))


def _run_ref(fn_ref: str, blob: bytes, *deps):
    """Task body for spec components: import ``module:callable`` on the worker."""
    info = decode_info(blob)
    return _returns(invoke(_imported(fn_ref, info.id), info, deps, _worker_context), info)


def _make_runner(fn):
    def run_component(blob: bytes, *deps):
        return _call(fn, blob, deps)

    run_component.__qualname__ = run_component.__name__ = getattr(fn, "__name__", "component")
    return run_component


class _PoolActor:
    """One member of an actor component's pool: holds the instance, serves calls."""

    def __init__(self, fn: Any, fn_ref: str | None, component: str, init_kwargs: dict) -> None:
        target = fn if fn is not None else import_callable(fn_ref or "", component=component)
        self._target = target(**init_kwargs) if inspect.isclass(target) else target

    def call(self, blob: bytes, *deps):
        return _call(self._target, blob, deps)


def _save_output(target: Any, component: str, multi: bool, *values: Any) -> None:
    """Write one output to its checkpoint (or a shared cache tier), on the cluster (the
    value comes from the object store)."""
    target.save(component, tuple(values) if multi else values[0])


def _load_output(target: CheckpointTarget, checkpoint: Checkpoint, num_outputs: int | None) -> Any:
    """A checkpointed output, read on the cluster; a call with several outputs returns each
    as its own object (one output: the value itself, not a 1-tuple)."""
    value = target.store.load(checkpoint)
    return value[0] if num_outputs == 1 else value


_POOL_ACTOR = ray.remote(_PoolActor)
_REF_TASK = ray.remote(_run_ref)
# Saving and loading checkpoints is I/O: no CPU is reserved, so it never waits behind components.
_SAVE_TASK = ray.remote(num_cpus=0, max_retries=2)(_save_output)
_LOAD_TASK = ray.remote(num_cpus=0, max_retries=2)(_load_output)


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


# Ray remote functions made once per process, shared by runs: exporting a function and
# ``.options()`` each cost more than the ``.remote()`` call itself. Each entry holds its
# function, so the id in its key stays that function's.
_RUNNERS: dict[int, tuple[Any, Any]] = {}        # id(fn) -> (fn, remote function)
_CONFIGURED: dict[tuple, tuple[Any, Any]] = {}   # (id(fn), options_key) -> (fn, configured)


def task_remote(task: Task, placed: dict[str, Any] | None = None) -> Any:
    """The remote function running ``task``, configured with its resources and retry policy
    (and, with ``placed``, the node affinity a placement strategy chose: not cached)."""
    if placed:
        return _runner(task.fn).options(num_returns=_num_returns(task), **resource_options(task),
                                        **retry_options(task), **placed)
    key = (id(task.fn), options_key(task))
    return _cached(_CONFIGURED, key, task.fn, lambda: Configured(_runner(task.fn), dict(
        num_returns=_num_returns(task), **resource_options(task), **retry_options(task))))


def _num_returns(task: Task) -> int:
    """Each output its own object, then the call's metadata."""
    return (task.options.num_outputs or 1) + 1


def _runner(fn: Any) -> Any:
    if fn is None:
        return _REF_TASK
    return _cached(_RUNNERS, id(fn), fn, lambda: ray.remote(_make_runner(fn)))


def _cached(cache: dict, key: Any, fn: Any, make: Any) -> Any:
    hit = cache.get(key)
    if hit is not None:
        return hit[1]
    if len(cache) >= MAX_CACHED_REMOTES:
        cache.clear()
    value = make()
    cache[key] = (fn, value)
    return value


def resource_options(task: Task) -> dict[str, Any]:
    o = task.options
    out: dict[str, Any] = {"num_cpus": o.num_cpus}
    if o.num_gpus:
        out["num_gpus"] = o.num_gpus
    if o.memory:
        out["memory"] = o.memory
    if o.resources:
        out["resources"] = dict(o.resources)
    return out


class _Pool:
    def __init__(self, task: Task, remaining: int) -> None:
        o = task.options
        opts = resource_options(task)
        opts.update(max_restarts=o.max_retries or RAY_DEFAULT_SYSTEM_RETRIES,
                    max_task_retries=o.max_retries or RAY_DEFAULT_SYSTEM_RETRIES)
        actor_cls = _POOL_ACTOR.options(**opts)
        fn = None if task.fn_ref and task.fn is None else task.fn
        self.actors = [actor_cls.remote(fn, task.fn_ref, task.id, dict(o.init_kwargs)) for _ in range(o.concurrency)]
        self.load = [0] * len(self.actors)
        self.remaining = remaining

    def pick(self) -> int:
        i = min(range(len(self.actors)), key=self.load.__getitem__)
        self.load[i] += 1
        return i

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


class RayExecutor:
    """Runs tasks on the Ray cluster of this process's session."""

    name = "ray"
    eager = True

    def __init__(self) -> None:
        self._meta: dict[Any, str] = {}           # meta ref -> component id
        self._refs: dict[str, tuple[Any, Any]] = {}   # component id -> (value ref, meta ref)
        self._pool_sizes: dict[str, int] = {}
        self._pools: dict[str, _Pool] = {}
        self._pool_of: dict[str, tuple[str, int]] = {}
        self._batching = False
        self._linger = False
        self._checkpoints: CheckpointTarget | None = None
        self._saves: dict[Any, str] = {}   # save call ref -> component id
        self._fused: FusedCalls | None = None
        self._free: set[Any] = set()
        self._watch = StreamWatch()   # the streams' batch progress

    def start(self, plan: Plan, checkpoints: CheckpointTarget | None = None) -> None:
        self._plan = plan
        self._checkpoints = checkpoints
        self._saves = {}
        self._placer = None
        if any(t.options.placement not in (None, "ray") and not t.pool for t in plan.tasks.values()):
            from rayflow.execute.ray.placement import Placer

            self._placer = Placer()
        self._stream_of: dict[str, tuple[str, ...]] = {}   # member -> its stream (heads submit it)
        self._streams: dict[str, tuple[str, ...]] = {}     # head -> members, while its call runs
        if plan.max_concurrency is None:   # a stream's members run at once: only without a bound
            for stream in plan.streams:   # ... and only if their actors can all be placed at once
                if fits_together([plan.tasks[m] for m in stream]):
                    self._stream_of.update(dict.fromkeys(stream, stream))
                else:
                    log.info("stream %s needs more than the cluster has at once; its stages run one "
                             "after another", " -> ".join(stream))
        # Without max_concurrency the loop submits every component up front, so noticing
        # a completion a little later frees nothing: gather them in batches and leave the
        # CPU to Ray. With it, each completion frees a slot: take what is ready at once.
        # A group's bound frees a slot at each of its members' completions likewise.
        self._batching = plan.max_concurrency is None and not any(g.max_concurrency for g in plan.groups)
        # a fused group runs in one call: only when everything is submitted up front
        self._fused = FusedCalls(plan, checkpoints) if plan.fused and plan.max_concurrency is None else None
        self._linger = len(plan.tasks) >= BIG_RUN
        self._pool_sizes = {}
        self._remotes: dict[tuple[int, int], Any] = {}
        self._free: set[Any] = set()   # meta refs of calls that had no upstream in flight when submitted
        for task in plan.tasks.values():
            if task.pool:
                self._pool_sizes[task.pool] = self._pool_sizes.get(task.pool, 0) + 1

    def submit(self, task: Task, deps: list[Any]) -> Any:
        stream = self._stream_of.get(task.id)
        if stream is not None:
            return self._submit_stream(task, deps, stream)
        if self._fused is not None and task.id in self._fused.group_of:
            return self._submit_fused(task, deps)
        info = encode_info(task, self._checkpoints is not None)
        if isinstance(task.fn, DynamicMap):   # rf.map: a coordinator task fans out one task per item
            from rayflow.execute.ray.dynamic import submit_map

            refs = submit_map(task, info, deps)
        elif task.pool:
            refs = self._submit_actor(task, info, deps)
        else:
            key = (id(task.fn), id(task.options))   # this run's plan holds both for its lifetime
            remote = self._remotes.get(key)
            if remote is None:
                remote = self._remotes[key] = task_remote(task)
            if self._placer is not None and task.options.placement not in (None, "ray"):
                placed = self._placer.options(task)
                remote = task_remote(task, placed) if placed else remote
            refs = remote.remote(*self._leading(task), info, *deps)
        value, meta = (refs[0] if task.options.num_outputs is None else refs[:-1]), refs[-1]
        if self._linger and not any(d in self._refs for d in task.deps):
            self._free.add(meta)
        self._meta[meta] = task.id
        self._refs[task.id] = (value, meta)
        return value

    def output(self, handle: Any, index: int) -> Any:
        return None if handle is None else handle[index]   # None: a fused member's output nothing outside reads

    def place(self, task: Task, value: Any) -> Any:
        """A cache hit: the object reference(s) the memory tier held, or the value put in
        the object store (one object per output of a call with several)."""
        if isinstance(value, ray.ObjectRef) or (isinstance(value, list) and value
                                                and all(isinstance(v, ray.ObjectRef) for v in value)):
            return value
        if task.options.num_outputs:
            return [ray.put(v) for v in value]
        return ray.put(value)

    def restore(self, task: Task, checkpoint: Checkpoint) -> Any:
        """A small checkpoint is decoded here and put in the object store; a file is read
        by a task on the cluster (its data never passes through the driver)."""
        n = task.options.num_outputs
        if checkpoint.blob is not None:
            value = codec.unblob(checkpoint.blob)
            return [ray.put(v) for v in value] if n else ray.put(value)
        refs = _LOAD_TASK.options(num_returns=n or 1).remote(self._checkpoints, checkpoint, n)
        if not n:
            return refs
        return list(refs) if n > 1 else [refs]

    def save(self, task: Task, handle: Any, target: Any = None) -> None:
        refs = handle if isinstance(handle, list) else [handle]
        ref = _SAVE_TASK.remote(target or self._checkpoints, task.id, isinstance(handle, list), *refs)
        self._saves[ref] = task.id

    def settle(self) -> list[str]:
        problems = []
        for ref, cid in self._saves.items():
            try:
                ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - one line per failed save; the run goes on
                first = (str(exc).strip().splitlines() or [""])[-1]
                problems.append(f"component {cid!r}: {type(exc).__name__}: {first}"[:300])
        self._saves.clear()
        return problems

    def _submit_stream(self, task: Task, deps: list[Any], stream: tuple[str, ...]) -> Any:
        """The head starts the whole stream; the last member's handle is the stream's output
        (the others feed only the next stage, inside the stream)."""
        head = stream[0]
        if task.id == head:
            tasks = [self._plan.tasks[m] for m in stream]
            buffer = min(t.options.buffer_size or DEFAULT_BUFFER for t in tasks)
            blob = encode_stream(task, [stage_of(t) for t in tasks], buffer, self._watch.channel(stream))
            value, meta = STREAM_TASK.remote(blob, *deps)
            self._meta[meta] = head
            self._refs[head] = (value, meta)
            self._streams[head] = stream
        return self._refs[head][0] if task.id == stream[-1] and head in self._refs else None

    def _submit_fused(self, task: Task, deps: list[Any]) -> Any:
        """The head starts its group's call; every member's handle is its export's ref (or None)."""
        if self._fused.head_of(task.id) == task.id:   # type: ignore[union-attr]
            values, meta = self._fused.start(task, deps)   # type: ignore[union-attr]
            self._meta[meta] = task.id
            self._refs[task.id] = (values, meta)
        return self._fused.handle(task.id)   # type: ignore[union-attr]

    def stream_progress(self) -> dict[str, dict[str, Any]]:
        """Batch progress of this run's streams, by last stage (rayflow/data/progress.py)."""
        return self._watch.latest()

    def wait(self, timeout: float) -> list[Completion]:
        """Completions, waiting up to ``timeout`` for the first, then gathering what else is ready.

        Waits name a bounded window of the oldest calls. A blocking ``ray.wait`` costs CPU
        for every pending ref it names (~7 us each, on every call), a non-blocking one far
        less, and sleeping nothing. So when batching (no ``max_concurrency``: noticing a
        completion later frees nothing), it blocks on the few oldest calls only, sweeps
        the window without blocking (in a big run after waiting up to the linger time for
        the window's newest call, so one sweep gathers a batch, and the last completions of
        a run are seen at once). With ``max_concurrency`` each completion frees a slot,
        so it blocks on the whole window. When nothing in the window finished, the newer
        calls are swept once.
        """
        if not self._meta:
            return []
        window = list(itertools.islice(self._meta, WAIT_WINDOW))
        if self._batching:
            ray.wait(window[:WAIT_HEAD], num_returns=1, timeout=timeout)
            if self._linger:   # a big run: let a batch finish (or the whole window)
                ray.wait([self._linger_target(window)], num_returns=1, timeout=LINGER_S)
            ready = self._sweep_oldest(window)
        else:
            first, _ = ray.wait(window, num_returns=1, timeout=timeout)
            ready = self._sweep(window) if first else []
        if not ready and len(self._meta) > len(window):
            ready = self._sweep(list(self._meta)[len(window):])
        with gcpause.paused():   # a fused call's members come back at once: collect after
            return [done for ref, value in self._get(ready) for done in self._complete(ref, value)]

    def _linger_target(self, window: list[Any]) -> Any:
        """The newest call in the window that could start as soon as it was submitted: a
        call waiting on others finishes after them, so lingering on it would hold back
        their completions (a fan-in's would hold the last batch of its fan-out until it
        ran) -- or the newest call when none could."""
        for ref in reversed(window):
            if ref in self._free:
                return ref
        return window[-1]

    def cancel(self, ids: Iterable[str]) -> None:
        """Cancel calls still running, in the order given (the loop gives downstream first).

        Calls that already finished are not cancelled, and each call is cancelled on its
        own (not recursively): cancelling a finished task, or one whose upstream's
        cancellation is failing it at the same moment, races inside Ray's task manager
        (ray-project/ray#54846, a driver abort).
        """
        heads = dict.fromkeys(self._head_of(c) for c in ids)
        pairs = [(cid, self._refs.pop(cid)) for cid in heads if cid in self._refs]
        if not pairs:
            return
        metas = [refs[1] for _, refs in pairs]
        finished = set(ray.wait(metas, num_returns=len(metas), timeout=0)[0])
        for cid, (value_ref, meta_ref) in pairs:
            self._meta.pop(meta_ref, None)
            self._free.discard(meta_ref)
            if meta_ref not in finished:
                try:
                    ray.cancel(meta_ref, force=False, recursive=False)   # cancels the call
                except Exception:  # an actor call Ray cannot cancel: its pool is killed below
                    pass
            else:
                _mark_handled(value_ref)
            self._call_done(cid)

    def fetch(self, handles: dict[str, Any]) -> dict[str, Any]:
        """One ``ray.get`` for every output; a call with several outputs gives a tuple."""
        ids = list(handles)
        flat = [r for c in ids for r in (handles[c] if isinstance(handles[c], list) else [handles[c]])]
        values = iter(ray.get(flat))
        return {c: tuple(next(values) for _ in handles[c]) if isinstance(handles[c], list) else next(values)
                for c in ids}

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.kill()
        self._pools.clear()
        self._meta.clear()
        self._free.clear()
        self._refs.clear()
        self._pool_of.clear()

    # -- helpers -----------------------------------------------------------------------

    def _head_of(self, cid: str) -> str:
        """The component whose call runs ``cid``: its stream's or fused group's head, or itself."""
        if cid in self._stream_of:
            return self._stream_of[cid][0]
        head = self._fused.head_of(cid) if self._fused is not None else None
        return cid if head is None else head

    @staticmethod
    def _leading(task: Task) -> tuple:
        return (task.fn_ref,) if task.fn is None else ()

    def _submit_actor(self, task: Task, info: bytes, deps: list[Any]):
        pool = self._pools.get(task.pool)
        if pool is None:
            pool = self._pools[task.pool] = _Pool(task, self._pool_sizes.get(task.pool, 1))
        i = pool.pick()
        self._pool_of[task.id] = (task.pool, i)
        retry_exceptions = retry_options(task)["retry_exceptions"]  # retry count: the actor's max_task_retries
        method = pool.actors[i].call.options(num_returns=_num_returns(task), retry_exceptions=retry_exceptions)
        return method.remote(info, *deps)

    def _call_done(self, cid: str) -> None:
        if self._placer is not None:
            self._placer.done(cid)
        where = self._pool_of.pop(cid, None)
        if where is None:
            return
        pool = self._pools.get(where[0])
        if pool is None:
            return
        pool.load[where[1]] -= 1
        pool.remaining -= 1
        if pool.remaining <= 0:
            pool.kill()
            del self._pools[where[0]]

    @staticmethod
    def _sweep_oldest(refs: list[Any]) -> list[Any]:
        """The ready refs among the oldest, swept in chunks until one is not all ready:
        costs what finished plus one chunk, not the whole window (calls mostly finish
        in the order they started; one that is ready later in the window is taken by a
        later wait)."""
        ready: list[Any] = []
        for i in range(0, len(refs), SWEEP_CHUNK):
            chunk = refs[i:i + SWEEP_CHUNK]
            got = ray.wait(chunk, num_returns=len(chunk), timeout=0)[0]
            ready += got
            if len(got) < len(chunk):
                break
        return ready

    @staticmethod
    def _sweep(refs: list[Any]) -> list[Any]:
        """The refs ready now, without blocking."""
        return ray.wait(refs, num_returns=len(refs), timeout=0)[0]

    def _get(self, ready: list[Any]) -> list[tuple[Any, Any]]:
        try:
            return list(zip(ready, ray.get(ready), strict=True))
        except Exception:
            out = []
            for ref in ready:
                try:
                    out.append((ref, ray.get(ref)))
                except Exception as exc:  # noqa: BLE001 - every error becomes a Completion
                    out.append((ref, exc))
            return out

    def _complete(self, ref: Any, value: Any) -> list[Completion]:
        cid = self._meta.pop(ref)
        self._free.discard(ref)
        value_ref = self._refs.pop(cid, (None,))[0]
        self._call_done(cid)
        stream = self._streams.pop(cid, None)
        if stream is not None:
            self._watch.finished(stream, value)
            return self._stream_completions(stream, value, value_ref)
        if self._fused is not None and self._fused.head_of(cid) == cid:
            if not isinstance(value, BaseException):
                return self._fused.completions(cid, value)
            _mark_handled(value_ref)   # the call itself failed (a crash, a kill): each member with its error
            return [completion_from_error(m, value) for m in self._fused.group_of[cid]]
        if not isinstance(value, BaseException):
            return [Completion(cid, True, unpack_meta(value))]
        _mark_handled(value_ref)
        return [completion_from_error(cid, value)]

    @staticmethod
    def _stream_completions(stream: tuple[str, ...], value: Any, value_ref: Any) -> list[Completion]:
        """One completion per member: all succeeded; or the failing stage failed, the
        stages before it were stopped, and the ones after are left to the failure strategy."""
        if not isinstance(value, BaseException):
            return [Completion(m, True, unpack_meta(value[m])) for m in stream]
        _mark_handled(value_ref)
        cause = getattr(value, "cause", None)
        if not isinstance(cause, StreamFailure) or cause.component not in stream:
            return [completion_from_error(stream[0], value)]
        failing = stream.index(cause.component)
        out = [Completion(m, False, unpack_meta(cause.done[m]) if m in cause.done else {},
                          f"stopped: stage {cause.component!r} of its stream failed", stopped=True)
               for m in stream[:failing]]
        return [*out, Completion(cause.component, False, cause.meta, cause.one_line(), cause.detail,
                                 cause.timed_out)]


def _mark_handled(value_ref: Any) -> None:
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
    name = type(err).__name__ if isinstance(err, RayError) else type(err).__name__
    return Completion(cid, False, {}, f"{name}: {first}"[:500], str(err))
