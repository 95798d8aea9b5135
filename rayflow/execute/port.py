"""The executor port: how the control loop hands work to a runtime and hears back.

Owns the ``Executor`` protocol and the ``Completion`` value. Adapters: the
synchronous ``LocalExecutor`` (execute/local.py) and ``RayExecutor``
(execute/ray_executor.py); tests/contracts/test_executors.py runs one suite
against both. Must not import ray.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rayflow.core.template import inputs_in_order
from rayflow.execute.worker.invoke import CallInfo
from rayflow.plan import Plan, Task
from rayflow.store.checkpoints import Checkpoint, CheckpointStore


@dataclass(frozen=True)
class CheckpointTarget:
    """Where a run keeps its components' outputs (picklable: travels to save tasks)."""

    store: CheckpointStore
    run_id: str

    def save(self, component_id: str, value: Any) -> None:
        self.store.write_one(self.run_id, component_id, value)


@dataclass(frozen=True, slots=True)
class Completion:
    """A component's final outcome as the executor saw it (after its own retries)."""

    id: str
    ok: bool
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None          # one line: "ValueError: bad row"
    detail: str | None = None         # traceback text, when known
    timed_out: bool = False
    upstream: str | None = None       # set when the error is an upstream component's
    stopped: bool = False             # stopped before finishing (``error`` says why); not a failure


class Executor(Protocol):
    """Runs Tasks. ``eager`` executors accept a task before its upstreams finish."""

    name: str
    eager: bool

    def start(self, plan: Plan, checkpoints: CheckpointTarget | None = None) -> None:
        """Get ready for ``plan``; with ``checkpoints``, calls hand back their outputs to keep."""

    def place(self, task: Task, value: Any) -> Any:
        """An output handle for ``task`` holding ``value`` (a cache hit): a handle the
        executor made earlier is used as it is."""

    def restore(self, task: Task, checkpoint: Checkpoint) -> Any:
        """An output handle for ``task`` holding its checkpointed value (resume)."""

    def save(self, task: Task, handle: Any, target: Any = None) -> None:
        """Keep the output behind ``handle`` (too large to travel with the metadata) in
        ``target`` (anything with ``save(component_id, value)``; default the run's
        checkpoints), off the critical path."""

    def settle(self) -> list[str]:
        """Wait for the saves still in progress; return one line per save that failed."""

    def submit(self, task: Task, deps: list[Any]) -> Any:
        """Start ``task`` with upstream handles ``deps``; return its output handle."""

    def wait(self, timeout: float) -> list[Completion]:
        """Completions that arrived, waiting up to ``timeout`` seconds for the first."""

    def cancel(self, ids: Iterable[str]) -> None: ...

    def output(self, handle: Any, index: int) -> Any:
        """The handle of output ``index`` of a call with several outputs."""

    def fetch(self, handles: dict[str, Any]) -> dict[str, Any]:
        """The values behind output handles (the only data the driver pulls)."""

    def shutdown(self) -> None: ...


def call_fields(task: Task, checkpoints: bool = False) -> tuple:
    """The plain data a worker needs for ``task``, as ``CallInfo``'s fields in order (its
    templates hold Slots only when it has deps); ``checkpoints``: the run keeps outputs
    (a small output comes back as bytes for its checkpoint, and for the cache). Arguments
    that are just the inputs in order travel as None (the worker passes the inputs)."""
    o = task.options
    args = None if not task.kwargs and inputs_in_order(task.args, len(task.inputs)) else task.args
    return (task.id, args, task.kwargs, o.timeout_s, o.retry_exceptions, bool(task.deps), o.num_outputs,
            (checkpoints and o.checkpoint) or task.cache_key is not None)


def call_info(task: Task, checkpoints: bool = False) -> CallInfo:
    return CallInfo(*call_fields(task, checkpoints))
