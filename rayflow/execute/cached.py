"""The executor of a run whose every output the cache holds: it runs nothing.

Owns ``CachedExecutor``: the composition root gives it to a run when the run's cache
found every component's output before the run started (``RunCache.holds_all``), so the
run never connects to a cluster, starts no worker or actor, and puts nothing in an object
store; its handles are the values themselves. Anything that would run, restore or save is
an internal error (the run's cache answers every lookup with what it found). It stands in
for the executor the run was submitted to (``name``), with the same eager submission as
Ray's. Must not import ray.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rayflow.core.records import Checkpoint, Completion
from rayflow.plan import Plan, Task


class CachedExecutor:
    """Places cache hits and hands their values back; runs nothing."""

    eager = True

    def __init__(self, name: str = "ray") -> None:
        self.name = name

    def start(self, plan: Plan, checkpoints: Any = None, logs: Any = None) -> None:
        pass

    def place(self, task: Task, value: Any) -> Any:
        return list(value) if task.options.num_outputs else value

    def _nothing_runs(self, task: Task, what: str) -> RuntimeError:
        return RuntimeError(f"component {task.id!r}: a run served from the cache was asked to {what} it")

    def restore(self, task: Task, checkpoint: Checkpoint) -> Any:
        raise self._nothing_runs(task, "restore")

    def save(self, task: Task, handle: Any, target: Any = None) -> None:
        raise self._nothing_runs(task, "save")

    def submit(self, task: Task, deps: list[Any]) -> Any:
        raise self._nothing_runs(task, "run")

    def settle(self) -> list[str]:
        return []

    def wait(self, timeout: float) -> list[Completion]:
        return []

    def began(self) -> list[tuple[str, int, float]]:
        return []

    def cancel(self, ids: Iterable[str]) -> None:
        pass

    def output(self, handle: Any, index: int) -> Any:
        return handle[index]

    def fetch(self, handles: dict[str, Any]) -> dict[str, Any]:
        return {c: tuple(h) if isinstance(h, list) else h for c, h in handles.items()}

    def shutdown(self) -> None:
        pass
