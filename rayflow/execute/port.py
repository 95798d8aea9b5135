"""The executor port: how the control loop hands work to a runtime and hears back.

Owns the ``Executor`` protocol (its ``Completion`` value lives in core.records) and ``CheckpointTarget`` (a
run's checkpoint sink: any ``rayflow.core.records.CheckpointSink``, never a concrete
store); ``LogTarget`` (where a run's attempts' logs go) is the worker's, re-exported. Adapters: the synchronous ``LocalExecutor`` (execute/local.py) and
``RayExecutor`` (execute/ray/executor.py); tests/contracts/test_executors.py runs one
suite against both, tests/contracts/test_loop.py runs the loop against a scripted
fake. Must not import ray.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from rayflow.core.records import Checkpoint, CheckpointSink, Completion  # noqa: F401 - Completion re-exported
from rayflow.execute.worker.capture import LogTarget  # noqa: F401 - re-exported: where a run's logs go
from rayflow.execute.worker.invoke import call_fields, call_info  # noqa: F401 - re-exported: the executors' call data
from rayflow.plan import Plan, Task


@dataclass(frozen=True)
class CheckpointTarget:
    """Where a run keeps its components' outputs (picklable: travels to save tasks).
    ``store``: the checkpoint sink (``CheckpointStore``, or ``MemoryCheckpoints`` in tests)."""

    store: CheckpointSink
    run_id: str

    def save(self, component_id: str, value: Any) -> None:
        self.store.write_one(self.run_id, component_id, value)

    def load(self, checkpoint: Checkpoint) -> Any:
        """The value of one of this run's checkpoints (resume)."""
        return self.store.load(checkpoint)


class Executor(Protocol):
    """Runs Tasks. ``eager`` executors accept a task before its upstreams finish."""

    name: str
    eager: bool

    def start(self, plan: Plan, checkpoints: CheckpointTarget | None = None, logs: LogTarget | None = None) -> None:
        """Get ready for ``plan``; with ``checkpoints``, calls hand back their outputs to keep;
        with ``logs``, what each attempt prints and logs is captured (see LogTarget)."""

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

    def began(self) -> list[tuple[str, int, float]]:
        """Submitted components whose calls began running since the last call, as
        (component, attempt, started_at): a component handed over may wait for resources
        before it runs. Never waits; best effort (what is not told here comes back with
        the completion's metadata)."""

    def cancel(self, ids: Iterable[str]) -> None: ...

    def output(self, handle: Any, index: int) -> Any:
        """The handle of output ``index`` of a call with several outputs."""

    def fetch(self, handles: dict[str, Any]) -> dict[str, Any]:
        """The values behind output handles (the only data the driver pulls)."""

    def shutdown(self) -> None: ...
