"""The synchronous in-process executor: same semantics as Ray, one call at a time.

For debugging (``rf.run(..., executor="local")``) and unit tests. Runs each task in
the calling thread when ``wait`` is called, retrying per the task's policy. Not
eager: the loop submits a task only once its upstreams succeeded. Must not import ray.
"""

from __future__ import annotations

import inspect
import os
import socket
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from rayflow.core.records import Checkpoint
from rayflow.core.resolve import import_callable
from rayflow.execute.port import CheckpointTarget, Completion, LogTarget, call_info
from rayflow.execute.worker.invoke import ComponentFailure, RetryableFailure, invoke
from rayflow.plan import Plan, Task


class LocalExecutor:
    """Runs tasks in-process, in submission order."""

    name = "local"
    eager = False

    def __init__(self) -> None:
        self._queue: deque[tuple[Task, list[Any], _LocalHandle]] = deque()
        self._instances: dict[str, Any] = {}
        self._cancelled: set[str] = set()
        self._node = f"local:{socket.gethostname()}"
        self._checkpoints: CheckpointTarget | None = None
        self._logs: LogTarget | None = None
        self._problems: list[str] = []
        self._announced: str | None = None           # the queued task told as begun, run by the next wait
        self._began: list[tuple[str, int, float]] = []

    def start(self, plan: Plan, checkpoints: CheckpointTarget | None = None, logs: LogTarget | None = None) -> None:
        self._instances.clear()
        self._checkpoints = checkpoints
        self._logs = logs
        self._problems = []

    def place(self, task: Task, value: Any) -> Any:
        if isinstance(value, _LocalHandle):
            return value
        handle = _LocalHandle()
        handle.value = value
        return handle

    def restore(self, task: Task, checkpoint: Checkpoint) -> Any:
        handle = _LocalHandle()
        handle.value = self._checkpoints.load(checkpoint)   # type: ignore[union-attr]
        return handle

    def save(self, task: Task, handle: Any, target: Any = None) -> None:
        try:
            (target or self._checkpoints).save(task.id, handle.value)   # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - reported by settle(); the run goes on
            self._problems.append(f"component {task.id!r}: {type(exc).__name__}: {exc}")

    def settle(self) -> list[str]:
        problems, self._problems = self._problems, []
        return problems

    def submit(self, task: Task, deps: list[Any]) -> Any:
        handle = _LocalHandle()
        self._queue.append((task, deps, handle))
        return handle

    def wait(self, timeout: float) -> list[Completion]:
        """Runs the next queued task; before that, one wait returns nothing but tells the
        task began (``began``), so the loop records it running while the call runs."""
        while self._queue:
            task, deps, handle = self._queue[0]
            if task.id in self._cancelled:
                self._queue.popleft()
                continue
            if self._announced != task.id:
                self._announced = task.id
                self._began.append((task.id, 1, time.time()))
                return []
            self._queue.popleft()
            self._announced = None
            return [self._run(task, [d.value for d in deps], handle)]
        return []

    def began(self) -> list[tuple[str, int, float]]:
        """The task the next wait runs, told once: (component, attempt, when)."""
        began, self._began = self._began, []
        return began

    def cancel(self, ids: Iterable[str]) -> None:
        self._cancelled.update(ids)

    def output(self, handle: Any, index: int) -> Any:
        return _Output(handle, index)

    def fetch(self, handles: dict[str, Any]) -> dict[str, Any]:
        return {cid: h.value for cid, h in handles.items()}

    def shutdown(self) -> None:
        self._queue.clear()
        self._announced, self._began = None, []
        self._instances.clear()

    def _run(self, task: Task, values: list[Any], handle: _LocalHandle) -> Completion:
        fn = self._target(task)
        info = call_info(task, self._checkpoints is not None, self._logs)
        attempt = 0
        while True:
            context = {"node_id": self._node, "worker_id": f"pid:{os.getpid()}", "attempt": attempt}
            try:
                value, meta = invoke(fn, info, values, lambda c=context: c)
            except RetryableFailure as failure:
                if attempt < task.options.max_retries:
                    attempt += 1
                    continue
                return _failed(task.id, failure)
            except ComponentFailure as failure:
                return _failed(task.id, failure)
            handle.value = value
            return Completion(task.id, True, meta)

    def _target(self, task: Task) -> Any:
        fn = task.fn if task.fn is not None else import_callable(task.fn_ref or "", component=task.id)
        if task.options.kind != "actor":
            return fn
        key = task.pool or task.id
        if key not in self._instances:
            self._instances[key] = fn(**task.options.init_kwargs) if inspect.isclass(fn) else fn
        return self._instances[key]


class _LocalHandle:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None


class _Output:
    """One output of a call with several: read when the consumer runs."""

    __slots__ = ("handle", "index")

    def __init__(self, handle: _LocalHandle, index: int) -> None:
        self.handle, self.index = handle, index

    @property
    def value(self) -> Any:
        return self.handle.value[self.index]


def _failed(cid: str, failure: ComponentFailure) -> Completion:
    return Completion(cid, False, failure.meta, failure.one_line(), failure.detail, failure.timed_out)
