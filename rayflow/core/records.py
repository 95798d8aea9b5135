"""Typed records that cross the execute port, and the checkpoint sink they travel to.

``Completion``: a component's final outcome as an executor saw it (after its own retries).

``Checkpoint``: one component's saved output, as a checkpoint location indexes it (the
blob itself, or the path of the file holding it). ``CheckpointSink``: what the control
loop and the executors need of a checkpoint location: keep one output, load one back.
The real location is ``rayflow.store.checkpoints.CheckpointStore``; an in-memory one
for tests is ``rayflow.store.checkpoints.MemoryCheckpoints``; both are run against one
suite (tests/contracts/test_checkpoint_sinks.py). Pure: no rayflow imports, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Checkpoint:
    """One component's saved output: the blob itself (inline) or the file holding it."""

    component_id: str
    blob: bytes | None = None
    path: str | None = None


@runtime_checkable
class CheckpointSink(Protocol):
    """Where a run's outputs are kept, as the execute port sees it (picklable: it
    travels with save tasks to the cluster)."""

    def write_one(self, run_id: str, component_id: str, value: Any) -> None:
        """Keep ``value`` as ``component_id``'s output in ``run_id`` (a later write wins)."""

    def load(self, checkpoint: Checkpoint) -> Any:
        """The value behind ``checkpoint`` (one that this sink's index handed out)."""


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
