"""Fused groups on Ray: one Ray task runs a whole group (see rayflow/plan/fusion.py).

Owns submitting a group's call when the loop submits its head (with the head's upstream
refs, the resources every member asks for, and Ray's retries of system failures only:
members retry their own exceptions inside the call), the output handles of the members
(an export's object, or None for a member nothing outside reads), and mapping the call's
outcome blob to one Completion per member (rayflow/execute/worker/fused.py runs the members).
Functions travel once per call as a table, each pickled once per process by the driver
and unpickled once per process by a worker. One of the modules importing ray.

``FusedStrategy`` (rayflow.execute.ray.strategy.Strategy) is the driver's side: a fused
group runs as one call only in a run without ``max_concurrency`` (every member is then
submitted up front); otherwise its members run as plain tasks.
"""

from __future__ import annotations

import pickle
from typing import Any

import ray
from ray import cloudpickle

from rayflow.execute.port import CheckpointTarget, Completion, LogTarget
from rayflow.execute.ray.calls import (
    RAY_DEFAULT_SYSTEM_RETRIES,
    completion_from_error,
    imported,
    mark_handled,
    resource_options,
    worker_context,
)
from rayflow.execute.ray.strategy import InFlight, Strategy
from rayflow.execute.worker.fused import completions, members_of, run_members
from rayflow.plan import Plan, Task
from rayflow.plan.fusion import exports, signature

MAX_CACHED = 1024

_PICKLED: dict[int, tuple[Any, bytes]] = {}   # driver: id(fn) -> (fn, its cloudpickle)
_LOADED: dict[bytes, Any] = {}                # worker: a function's pickle -> the function


def _pickled(fn: Any) -> Any:
    """A function as it travels: "module:callable" as it is, a function cloudpickled
    (by reference when importable, by value when defined in ``__main__``)."""
    if isinstance(fn, str):
        return fn
    hit = _PICKLED.get(id(fn))
    if hit is None:
        if len(_PICKLED) >= MAX_CACHED:
            _PICKLED.clear()
        hit = _PICKLED[id(fn)] = (fn, cloudpickle.dumps(fn))
    return hit[1]


def _loaded(entry: Any, component: str) -> Any:
    if isinstance(entry, str):
        return imported(entry, component)
    fn = _LOADED.get(entry)
    if fn is None:
        if len(_LOADED) >= MAX_CACHED:
            _LOADED.clear()
        fn = _LOADED[entry] = cloudpickle.loads(entry)
    return fn


def run_fused(blob: bytes, *deps: Any) -> Any:
    """The task body: the exports' objects, then the outcomes blob (one return: the blob)."""
    table, members, target = pickle.loads(blob)
    fns = [_loaded(entry, members[0][0][0]) for entry in table]   # the head's id names an import error
    values, outcomes = run_members(fns, members, deps, worker_context, target.save if target else None)
    return (*values, outcomes) if values else outcomes


_FUSED = ray.remote(run_fused)
_CONFIGURED: dict[tuple, Any] = {}


def _remote(head: Task, num_returns: int, retries: int) -> Any:
    key = (num_returns, retries, signature(head))
    remote = _CONFIGURED.get(key)
    if remote is None:
        if len(_CONFIGURED) >= MAX_CACHED:
            _CONFIGURED.clear()
        remote = _CONFIGURED[key] = _FUSED.options(num_returns=num_returns, max_retries=retries,
                                                   retry_exceptions=False, **resource_options(head))
    return remote


def _encode(table: list[Any], members: tuple, target: CheckpointTarget | None) -> bytes:
    fields = ([_pickled(fn) for fn in table], members, target)
    try:
        return pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)   # importable values
    except (pickle.PicklingError, AttributeError, TypeError):
        return cloudpickle.dumps(fields)   # lambdas and local classes among the arguments


class FusedCalls:
    """The fused groups of one run: their calls and their members' output handles."""

    def __init__(self, plan: Plan, checkpoints: CheckpointTarget | None, logs: LogTarget | None = None) -> None:
        self._plan = plan
        self._target = checkpoints
        self._logs = logs
        self._outputs = set(plan.output_ids)
        self.group_of = {m: g for g in plan.fused for m in g}
        self._handles: dict[str, Any] = {}

    def head_of(self, cid: str) -> str | None:
        group = self.group_of.get(cid)
        return None if group is None else group[0]

    def start(self, head: Task, deps: list[Any]) -> tuple[list[Any], Any]:
        """Submit the group ``head`` heads; return the exports' refs and the outcomes ref."""
        group = self.group_of[head.id]
        exported = set(exports(group, self._plan.dag, self._outputs))
        table, members = members_of(self._plan, group, exported, self._target is not None, self._logs)
        n = sum(m[-1] for m in members)
        retries = max(t.options.max_retries or RAY_DEFAULT_SYSTEM_RETRIES
                      for t in (self._plan.tasks[c] for c in group))
        refs = _remote(head, n + 1, retries).remote(_encode(table, members, self._target), *deps)
        refs = list(refs) if n else [refs]
        values = iter(refs[:-1])
        for cid, m in zip(group, members, strict=True):
            export = m[-1]
            if not export:
                self._handles[cid] = None
            elif self._plan.tasks[cid].options.num_outputs is None:
                self._handles[cid] = next(values)
            else:
                self._handles[cid] = [next(values) for _ in range(export)]
        return refs[:-1], refs[-1]

    def handle(self, cid: str) -> Any:
        """A member's output handle (None: nothing outside the group reads it)."""
        return self._handles.get(cid)

    def completions(self, head: str, blob: bytes) -> list[Completion]:
        return completions(self.group_of[head], blob)


class FusedStrategy:
    """Fused groups on the driver (module doc); their members go to ``fallback``, the
    plain-task strategy, in a run that cannot fuse."""

    def __init__(self, calls: InFlight, *, fallback: Strategy) -> None:
        self._calls = calls
        self._fallback = fallback
        self._groups: FusedCalls | None = None

    def start(self, plan: Plan, *, checkpoints: CheckpointTarget | None, logs: LogTarget | None = None) -> None:
        # a fused group runs in one call: only when everything is submitted up front
        self._groups = FusedCalls(plan, checkpoints, logs) if plan.fused and plan.max_concurrency is None else None

    def submit(self, task: Task, deps: list[Any]) -> Any:
        """The head starts its group's call; every member's handle is its export's ref (or None)."""
        groups = self._groups
        if groups is None or task.id not in groups.group_of:
            return self._fallback.submit(task, deps)
        if groups.head_of(task.id) == task.id:
            values, meta = groups.start(task, deps)
            self._calls.add(task.id, values, meta)
        return groups.handle(task.id)

    def complete(self, head: str, value: Any, value_ref: Any) -> list[Completion]:
        groups = self._groups
        if groups is None or groups.head_of(head) != head:
            return self._fallback.complete(head, value, value_ref)
        if not isinstance(value, BaseException):
            return groups.completions(head, value)
        mark_handled(value_ref)   # the call itself failed (a crash, a kill): each member with its error
        return [completion_from_error(m, value) for m in groups.group_of[head]]

    def head_of(self, cid: str) -> str:
        head = self._groups.head_of(cid) if self._groups is not None else None
        return cid if head is None else head

    def stops(self, head: str, asked: set[str]) -> bool:
        """A fused call is cancelled only when every member is (under continue_on_error, a
        failure outside the group upstream-fails the members reading it; the others go on)."""
        groups = self._groups
        if groups is None or groups.head_of(head) != head:
            return self._fallback.stops(head, asked)
        return asked.issuperset(groups.group_of[head])

    def cancel(self, head: str) -> None:
        self._fallback.cancel(head)

    def shutdown(self) -> None:
        pass
