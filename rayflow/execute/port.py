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
from rayflow.plan.template import Slot


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

    def fetch(self, handles: dict[str, Any]) -> dict[str, Any]:
        """The values behind output handles (the only data the driver pulls)."""

    def shutdown(self) -> None: ...


def call_info(task: Task) -> CallInfo:
    """The plain data a worker needs for ``task``."""
    return CallInfo(
        id=task.id,
        args=task.args,
        kwargs=task.kwargs,
        timeout_s=task.options.timeout_s,
        retry_on=task.options.retry_exceptions,
        has_slots=bool(task.deps) or _has_slot(task.args) or _has_slot(task.kwargs),
    )


def _has_slot(template: Any) -> bool:
    if isinstance(template, Slot):
        return True
    if isinstance(template, (list, tuple)):
        return any(_has_slot(t) for t in template)
    if isinstance(template, dict):
        return any(_has_slot(t) for t in template.values())
    return False
