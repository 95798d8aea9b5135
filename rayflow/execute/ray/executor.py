"""The Ray executor: each component a Ray task (or a call on a pool actor), outputs as ObjectRefs.

Owns the executor port (rayflow.execute.port.Executor) on Ray: handing each component to
the strategy of its call kind (``task.kind``, rayflow.core.kinds; the strategies are
behind rayflow.execute.ray.strategy.Strategy), the calls in flight, waiting on their
small metadata refs (each call returns value and metadata as separate objects, so the
driver never pulls values it does not need), cancelling, checkpoint saves and restores,
holding cache hits until a call reads them (``Held``: a hit nothing reads is never put in
the object store), and fetching the run's outputs.

Per-component cost on the driver (benchmarks/overhead.py measures it against raw Ray):
remote functions are configured once per process per function and resource signature
and then submitted through the core-worker call ``.remote()`` ends in
(rayflow.execute.ray.tasks, rayflow.execute.ray.submit), the CallInfo travels as
pre-pickled bytes, the strategy is one dict lookup, and completions are gathered in
batches from a bounded window of the oldest calls, so no step is linear in the calls
in flight.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from typing import Any

import ray
from ray import cloudpickle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rayflow.core import gcpause, local_code
from rayflow.core.kinds import CallKind
from rayflow.core.redact import has_secret
from rayflow.data import codec
from rayflow.execute.port import CheckpointTarget, Completion, LogTarget
from rayflow.execute.ray.calls import completion_from_error, mark_handled
from rayflow.execute.ray.dynamic import MapStrategy
from rayflow.execute.ray.fused import FusedStrategy
from rayflow.execute.ray.pools import PoolStrategy
from rayflow.execute.ray.progress import BeganWatch, StreamWatch
from rayflow.execute.ray.sealed import Sealed, unsealed
from rayflow.execute.ray.strategy import InFlight, Strategy
from rayflow.execute.ray.streams import StreamStrategy
from rayflow.execute.ray.tasks import TaskStrategy
from rayflow.plan import Plan, Task
from rayflow.store.checkpoints import Checkpoint

WAIT_WINDOW = 256   # each wait looks at the oldest in-flight calls (they finish first)
WAIT_HEAD = 8        # the oldest calls a batching wait blocks on
SWEEP_CHUNK = 64     # refs per non-blocking wait when sweeping the oldest calls
BIG_RUN = 256        # in a run of this many components a wait lingers for more completions ...
LINGER_S = 0.1       # ... this long (fewer, costlier waits pay off); a small run gains nothing
                     # from lingering, and a tracker driving a thousand small runs loses much

__all__ = ["RayExecutor", "completion_from_error"]

TELLING = frozenset({CallKind.TASK, CallKind.ACTOR})   # kinds whose workers tell when a call begins


def _save_output(target: Any, component: str, multi: bool, *values: Any) -> None:
    """Write one output to its checkpoint (or a shared cache tier), on the cluster (the
    value comes from the object store)."""
    unsealed(target).save(component, tuple(values) if multi else values[0])


def _load_output(target: Any, checkpoint: Checkpoint, num_outputs: int | None) -> Any:
    """A checkpointed output, read on the cluster; a call with several outputs returns each
    as its own object (one output: the value itself, not a 1-tuple)."""
    value = unsealed(target).store.load(checkpoint)
    return value[0] if num_outputs == 1 else value


# Saving and loading checkpoints is I/O: no CPU is reserved, so it never waits behind components.
_SAVE_TASK = ray.remote(num_cpus=0, max_retries=2)(_save_output)
_LOAD_TASK = ray.remote(num_cpus=0, max_retries=2)(_load_output)


def _on_this_node() -> dict[str, Any]:
    """Task options that run a task on this process's node: where a checkpoint folder on a
    local disk is (on a cluster of several machines, each has its own disk; the driver reads
    the checkpoints from its own). A shared location (S3, NFS) needs no pinning."""
    node = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False)}


class Held:
    """A cache hit's value, put in the object store only when a call reads it (once)."""

    __slots__ = ("_ref", "value")

    def __init__(self, value: Any) -> None:
        self.value, self._ref = value, None

    def ref(self) -> Any:
        if self._ref is None:
            self._ref = ray.put(self.value)
        return self._ref


class RayExecutor:
    """Runs tasks on the Ray cluster of this process's session."""

    name = "ray"
    eager = True

    def __init__(self) -> None:
        self._calls = InFlight()
        self._batching = False
        self._checkpoints: CheckpointTarget | Sealed | None = None
        self._io: dict[str, Any] = {}   # options of the tasks that save and load checkpoints
        self._saves: dict[Any, str] = {}   # save call ref -> component id
        self._watch = StreamWatch()   # the streams' batch progress
        self._began = BeganWatch()    # the calls that began running (plain tasks and actor pools)
        self._untold: list[tuple[str, int, float]] = []   # submitted calls no worker tells of
        self._tasks: Any = {}
        tasks = TaskStrategy(self._calls)
        self._strategies: dict[CallKind, Strategy] = {
            CallKind.TASK: tasks,
            CallKind.ACTOR: PoolStrategy(self._calls),
            CallKind.STREAM: StreamStrategy(self._calls, fallback=tasks, watch=self._watch),
            CallKind.FUSED: FusedStrategy(self._calls, fallback=tasks),
            CallKind.MAP: MapStrategy(self._calls),
        }

    def start(self, plan: Plan, checkpoints: CheckpointTarget | None = None, logs: LogTarget | None = None) -> None:
        self._tasks = plan.tasks
        self._io = _on_this_node() if checkpoints is not None and getattr(checkpoints.store, "local", False) else {}
        # a checkpoint location may name its credentials (s3://...?secret_key=...): then it
        # reaches the save and load tasks sealed, never as their argument (rayflow.execute.ray.sealed)
        url = getattr(checkpoints.store, "url", "") if checkpoints is not None else ""
        self._checkpoints = Sealed(checkpoints) if url and has_secret(url) else checkpoints
        self._saves = {}
        for module in local_code.shipped():   # a spec's own modules travel with its calls
            cloudpickle.register_pickle_by_value(module)
        self._began.begin()
        self._calls.began_key = self._began.key
        for strategy in self._strategies.values():
            strategy.start(plan, checkpoints=checkpoints, logs=logs)
        # Without max_concurrency the loop submits every component up front, so noticing
        # a completion a little later frees nothing: gather them in batches and leave the
        # CPU to Ray. With it, each completion frees a slot: take what is ready at once.
        # A group's bound frees a slot at each of its members' completions likewise.
        self._batching = plan.max_concurrency is None and not any(g.max_concurrency for g in plan.groups)
        self._calls.linger = len(plan.tasks) >= BIG_RUN
        self._calls.free = set()

    def submit(self, task: Task, deps: list[Any]) -> Any:
        if task.kind not in TELLING or self._began.key is None:   # no worker tells: running from its submission
            self._untold.append((task.id, 1, time.time()))
        return self._strategies[task.kind].submit(task, [d.ref() if type(d) is Held else d for d in deps])

    def output(self, handle: Any, index: int) -> Any:
        return None if handle is None else handle[index]   # None: a fused member's output nothing outside reads

    def place(self, task: Task, value: Any) -> Any:
        """A cache hit: the object reference(s) the memory tier held, or the value Held
        until a call reads it (one per output of a call with several)."""
        if isinstance(value, ray.ObjectRef) or (isinstance(value, list) and value
                                                and all(isinstance(v, ray.ObjectRef) for v in value)):
            return value
        if task.options.num_outputs:
            return [Held(v) for v in value]
        return Held(value)

    def restore(self, task: Task, checkpoint: Checkpoint) -> Any:
        """A small checkpoint is decoded here and put in the object store; a file is read
        by a task on the cluster (its data never passes through the driver)."""
        n = task.options.num_outputs
        if checkpoint.blob is not None:
            value = codec.unblob(checkpoint.blob)
            return [ray.put(v) for v in value] if n else ray.put(value)
        refs = _LOAD_TASK.options(num_returns=n or 1, **self._io).remote(self._checkpoints, checkpoint, n)
        if not n:
            return refs
        return list(refs) if n > 1 else [refs]

    def save(self, task: Task, handle: Any, target: Any = None) -> None:
        refs = handle if isinstance(handle, list) else [handle]
        # a cache sink names its tiers by URL, password included: never a task argument (rayflow.execute.ray.sealed)
        where = Sealed(target) if target is not None else self._checkpoints
        save = _SAVE_TASK.options(**self._io) if target is None and self._io else _SAVE_TASK
        ref = save.remote(where, task.id, isinstance(handle, list), *refs)
        self._saves[ref] = task.id

    def settle(self) -> list[str]:
        problems = []
        for ref, cid in self._saves.items():
            try:
                ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - one line per failed save; the run goes on
                cause = getattr(exc, "cause", None) or exc   # a RayTaskError: the save's own error, unwrapped
                first = (str(cause).strip().splitlines() or [""])[-1]
                problems.append(f"component {cid!r}: {type(cause).__name__}: {first}"[:500])
        self._saves.clear()
        return problems

    def began(self) -> list[tuple[str, int, float]]:
        """Components whose calls began running since the last call, with the attempt and
        when: a plain task's or a pool's call tells once it has run half a second; a fused
        group's, a map's or a stream's members (and every call with the progress channel
        off) count as begun when submitted. Never waits."""
        told = self._began.take()
        if self._untold:
            told, self._untold = told + self._untold, []
        return told

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
        meta = self._calls.meta
        if not meta:
            return []
        window = list(itertools.islice(meta, WAIT_WINDOW))
        if self._batching:
            ray.wait(window[:WAIT_HEAD], num_returns=1, timeout=timeout)
            if self._calls.linger:   # a big run: let a batch finish (or the whole window)
                ray.wait([self._linger_target(window)], num_returns=1, timeout=LINGER_S)
            ready = _sweep_oldest(window)
        else:
            first, _ = ray.wait(window, num_returns=1, timeout=timeout)
            ready = _sweep(window) if first else []
        if not ready and len(meta) > len(window):
            ready = _sweep(list(meta)[len(window):])
        with gcpause.paused():   # a fused call's members come back at once: collect after
            return [done for ref, value in _get(ready) for done in self._complete(ref, value)]

    def _linger_target(self, window: list[Any]) -> Any:
        """The newest call in the window that could start as soon as it was submitted: a
        call waiting on others finishes after them, so lingering on it would hold back
        their completions (a fan-in's would hold the last batch of its fan-out until it
        ran) -- or the newest call when none could."""
        free = self._calls.free
        for ref in reversed(window):
            if ref in free:
                return ref
        return window[-1]

    def _complete(self, ref: Any, value: Any) -> list[Completion]:
        cid, value_ref = self._calls.finished(ref)
        return self._strategies[self._tasks[cid].kind].complete(cid, value, value_ref)

    def cancel(self, ids: Iterable[str]) -> None:
        """Cancel calls still running, in the order given (the loop gives downstream first).

        Calls that already finished are not cancelled, and each call is cancelled on its
        own (not recursively): cancelling a finished task, or one whose upstream's
        cancellation is failing it at the same moment, races inside Ray's task manager
        (ray-project/ray#54846, a driver abort).
        """
        calls, strategies, tasks = self._calls, self._strategies, self._tasks
        ids = list(ids)
        asked = set(ids)
        heads = dict.fromkeys(strategies[tasks[c].kind].head_of(c) for c in ids)
        pairs = [(cid, calls.refs.pop(cid)) for cid in heads
                 if cid in calls.refs and strategies[tasks[cid].kind].stops(cid, asked)]
        if not pairs:
            return
        metas = [refs[1] for _, refs in pairs]
        finished = set(ray.wait(metas, num_returns=len(metas), timeout=0)[0])
        for cid, (value_ref, meta_ref) in pairs:
            calls.meta.pop(meta_ref, None)
            calls.free.discard(meta_ref)
            if meta_ref not in finished:
                try:
                    ray.cancel(meta_ref, force=False, recursive=False)   # cancels the call
                except Exception:  # an actor call Ray cannot cancel: its pool is killed below
                    pass
            else:
                mark_handled(value_ref)
            self._strategies[self._tasks[cid].kind].cancel(cid)

    def fetch(self, handles: dict[str, Any]) -> dict[str, Any]:
        """One ``ray.get`` for every output (a Held one is its value); a call with several
        outputs gives a tuple."""
        ids = list(handles)
        flat = [r for c in ids for r in (handles[c] if isinstance(handles[c], list) else [handles[c]])]
        refs = [r for r in flat if type(r) is not Held]
        got = iter(ray.get(refs) if refs else ())
        values = iter([r.value if type(r) is Held else next(got) for r in flat])
        return {c: tuple(next(values) for _ in handles[c]) if isinstance(handles[c], list) else next(values)
                for c in ids}

    def shutdown(self) -> None:
        for strategy in self._strategies.values():
            strategy.shutdown()
        self._calls.clear()
        self._began.end()
        self._calls.began_key = None


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


def _sweep(refs: list[Any]) -> list[Any]:
    """The refs ready now, without blocking."""
    return ray.wait(refs, num_returns=len(refs), timeout=0)[0]


def _get(ready: list[Any]) -> list[tuple[Any, Any]]:
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
