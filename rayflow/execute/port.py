"""The executor port: how the control loop hands work to a runtime and hears back.

Owns the ``Executor`` protocol and the ``Completion`` value. Adapters: the
synchronous ``LocalExecutor`` (execute/local.py) and ``RayExecutor``
(execute/ray_executor.py); tests/execute/test_executor_contract.py runs one suite
against both. Must not import ray.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rayflow.execute.invoke import CallInfo
from rayflow.plan import Plan, Task


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

    def start(self, plan: Plan) -> None: ...

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


def call_fields(task: Task) -> tuple:
    """The plain data a worker needs for ``task``, as ``CallInfo``'s fields in order (its
    templates hold Slots only when it has deps)."""
    o = task.options
    return (task.id, task.args, task.kwargs, o.timeout_s, o.retry_exceptions, bool(task.deps), o.num_outputs)


def call_info(task: Task) -> CallInfo:
    return CallInfo(*call_fields(task))
