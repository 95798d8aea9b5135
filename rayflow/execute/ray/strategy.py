"""The interface between the Ray executor and the ways it makes calls, and the calls in flight.

Owns ``Strategy``, what each call kind (rayflow.core.kinds) implements: plain tasks
(rayflow.execute.ray.tasks), actor pools (pools), streams (streams), fused groups
(fused) and dynamic maps (dynamic). The executor picks one by ``task.kind`` and keeps
what they share: the ``InFlight`` calls (a call's metadata ref names the component whose
call it is, its head), waiting on them, checkpoints, fetching values.

A strategy's life per run: ``start`` once (with the plan; it decides there which of its
members it can run its own way, and hands the others to the plain-task strategy),
``submit`` per component in submission order, ``complete`` per finished call (the call's
metadata value, or the error Ray raised, and its value refs), ``cancel`` per call the
executor cancelled or found finished, and ``shutdown`` at the end of the run.
"""

from __future__ import annotations

from typing import Any, Protocol

from rayflow.execute.port import CheckpointTarget, Completion, LogTarget
from rayflow.plan import Plan, Task


class Strategy(Protocol):
    def start(self, plan: Plan, *, checkpoints: CheckpointTarget | None, logs: LogTarget | None = None) -> None:
        """A run begins: forget the last one's state. ``logs``: where calls' logs go (None:
        nothing is captured)."""

    def submit(self, task: Task, deps: list[Any]) -> Any:
        """Start ``task``'s call (recording it in the InFlight calls) or, for a member
        of a call another member starts, only hand out its output; the loop's handle."""

    def complete(self, head: str, value: Any, value_ref: Any) -> list[Completion]:
        """The Completions of the call ``head`` started: ``value`` is its metadata, or
        the exception Ray raised for it."""

    def head_of(self, cid: str) -> str:
        """The component whose call runs ``cid`` (``cid`` itself for a call of its own)."""

    def stops(self, head: str, asked: set[str]) -> bool:
        """Whether cancelling the components ``asked`` cancels the call ``head`` started (a
        fused call only when every member is asked: the others still run in it)."""

    def cancel(self, head: str) -> None:
        """The call ``head`` started is final (cancelled, or found finished): release
        what it held."""

    def shutdown(self) -> None:
        """The run is over: release everything still held."""


class InFlight:
    """The calls submitted and not yet seen to finish, oldest first."""

    __slots__ = ("meta", "refs", "free", "linger", "began_key")

    def __init__(self) -> None:
        self.meta: dict[Any, str] = {}                # meta ref -> head component id
        self.refs: dict[str, tuple[Any, Any]] = {}    # head component id -> (value ref(s), meta ref)
        self.free: set[Any] = set()   # meta refs of calls that had no upstream in flight when submitted
        self.linger = False           # a big run: waits linger, on a free call (rayflow.execute.ray.executor)
        self.began_key: str | None = None   # the run's key its calls tell their start under (None: they do not)

    def add(self, cid: str, value: Any, meta: Any, deps: tuple[str, ...] | None = None) -> None:
        """Record the call ``cid`` started; ``deps``: its upstreams, where the call may
        count as free (able to start at once) for lingering waits."""
        if deps is not None and self.linger and not any(d in self.refs for d in deps):
            self.free.add(meta)
        self.meta[meta] = cid
        self.refs[cid] = (value, meta)

    def started(self, task: Task, refs: Any) -> Any:
        """Record the call of ``task`` whose Ray returns are ``refs`` (its outputs, then its
        metadata), as ``add`` with its upstreams; its value ref(s), the loop's handle."""
        value, meta = (refs[0] if task.options.num_outputs is None else refs[:-1]), refs[-1]
        self.add(task.id, value, meta, task.deps)
        return value

    def finished(self, meta: Any) -> tuple[str, Any]:
        """Forget the finished call of metadata ref ``meta``: (its head, its value refs)."""
        cid = self.meta.pop(meta)
        self.free.discard(meta)
        return cid, self.refs.pop(cid, (None,))[0]

    def clear(self) -> None:
        self.meta.clear()
        self.refs.clear()
        self.free.clear()
