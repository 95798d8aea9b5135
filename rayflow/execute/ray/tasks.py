"""Plain components on Ray: one Ray task per component, and the remote functions they run.

Owns the per-process cache of remote functions (exporting a function and ``.options()``
each cost more than the ``.remote()`` call itself, so each function is made remote once
per process, and configured once per resource and retry signature), submitting a plain
call (through the fast core-worker path of rayflow.execute.ray.submit), spec components'
``module:callable`` imported on the worker, and rayflow's own placement of calls on
nodes (rayflow.execute.ray.placement) for components that ask for it. Also the strategy
of the stream and fused-group members that cannot run as such in a run.
"""

from __future__ import annotations

from typing import Any

import ray

from rayflow.execute.port import CheckpointTarget, Completion, LogTarget
from rayflow.execute.ray.calls import (
    decode_info,
    encode_info,
    imported,
    num_returns,
    one_completion,
    options_key,
    resource_options,
    retry_options,
    returns,
    run_call,
    worker_context,
)
from rayflow.execute.ray.strategy import InFlight
from rayflow.execute.ray.submit import Configured
from rayflow.execute.worker.invoke import invoke
from rayflow.plan import Plan, Task

MAX_CACHED_REMOTES = 1024


def _run_ref(fn_ref: str, blob: bytes, *deps):
    """Task body for spec components: import ``module:callable`` on the worker."""
    info = decode_info(blob)
    return returns(invoke(imported(fn_ref, info.id), info, deps, worker_context), info)


def _make_runner(fn):
    def run_component(blob: bytes, *deps):
        return run_call(fn, blob, deps)

    run_component.__qualname__ = run_component.__name__ = getattr(fn, "__name__", "component")
    return run_component


_REF_TASK = ray.remote(_run_ref)

# Ray remote functions made once per process, shared by runs. Each entry holds its
# function, so the id in its key stays that function's.
_RUNNERS: dict[int, tuple[Any, Any]] = {}        # id(fn) -> (fn, remote function)
_CONFIGURED: dict[tuple, tuple[Any, Any]] = {}   # (id(fn), options_key) -> (fn, configured)


def task_remote(task: Task, placed: dict[str, Any] | None = None) -> Any:
    """The remote function running ``task``, configured with its resources and retry policy
    (and, with ``placed``, the node affinity a placement strategy chose: not cached)."""
    if placed:
        return _runner(task.fn).options(num_returns=num_returns(task), **resource_options(task),
                                        **retry_options(task), **placed)
    key = (id(task.fn), options_key(task))
    return _cached(_CONFIGURED, key, task.fn, lambda: Configured(_runner(task.fn), dict(
        num_returns=num_returns(task), **resource_options(task), **retry_options(task))))


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


class TaskStrategy:
    """Plain calls: each component one Ray task (rayflow.execute.ray.strategy.Strategy)."""

    def __init__(self, calls: InFlight) -> None:
        self._calls = calls
        self._checkpoints = False
        self._logs: LogTarget | None = None
        self._placer: Any = None
        self._remotes: dict[tuple[int, int], Any] = {}

    def start(self, plan: Plan, *, checkpoints: CheckpointTarget | None, logs: LogTarget | None = None) -> None:
        self._checkpoints = checkpoints is not None
        self._logs = logs
        self._placer = None
        # only runs that place calls import the placement code
        if any(t.options.placement not in (None, "ray") and not t.pool for t in plan.tasks.values()):
            from rayflow.execute.ray.placement import Placer

            self._placer = Placer()
        self._remotes = {}   # this run's plan holds each task's function and options for its lifetime

    def submit(self, task: Task, deps: list[Any]) -> Any:
        info = encode_info(task, self._checkpoints, self._logs, self._calls.began_key)
        key = (id(task.fn), id(task.options))
        remote = self._remotes.get(key)
        if remote is None:
            remote = self._remotes[key] = task_remote(task)
        if self._placer is not None and task.options.placement not in (None, "ray"):
            placed = self._placer.options(task)
            remote = task_remote(task, placed) if placed else remote
        if task.fn is None:
            return self._calls.started(task, remote.remote(task.fn_ref, info, *deps))
        return self._calls.started(task, remote.remote(info, *deps))

    def complete(self, head: str, value: Any, value_ref: Any) -> list[Completion]:
        if self._placer is not None:
            self._placer.done(head)
        return one_completion(head, value, value_ref)

    def head_of(self, cid: str) -> str:
        return cid

    def stops(self, head: str, asked: set[str]) -> bool:
        return True

    def cancel(self, head: str) -> None:
        if self._placer is not None:
            self._placer.done(head)

    def shutdown(self) -> None:
        pass
