"""The state of one run as pure transitions: take, succeeded, failed, cancel, rerun.

No Ray, no threads, no clocks: times come in as arguments. ``take()`` hands out the
components to submit next (critical-path first), respecting ``max_concurrency``.
In eager mode a component may be taken once every upstream has been *taken* (the
executor chains outputs itself), and every component ``after`` names for it (a fused
group's head waits for what its members read from outside the group, its members for
the head: rayflow.plan.fusion.waits); otherwise only once every upstream SUCCEEDED.

The plan stays as planned: ``rerun(node, task)`` records that an in-flight component
runs again with another task (a larger memory request after an out-of-memory kill;
it stays RUNNING), and ``task(node)`` is the task to submit for a node: the last one
it was rerun with, else the planned one (``tasks``, the plan's).

Failure strategies:
- ``fail_fast``: the first final failure cancels what is in flight (CANCELLED) and
  skips what has not started (SKIPPED).
- ``continue_on_error``: every downstream of the failure becomes UPSTREAM_FAILED
  (cancelled if already in flight); independent branches go on.

Groups (``rayflow.core.groups.Group``; ``rf.group`` / ``rf.fan_out``):
- ``max_concurrency``: at most that many of the group's members are in flight (taken
  and not yet final) at once, in eager mode too: a member is taken only when the
  group has a free slot, and its downstream is released only when it is taken, so
  chains through a bounded group stay correct. The members wait in the group's own
  queue, critical-path first; a member that ends frees its slot for the next one.
  The run-level ``max_concurrency`` still bounds everything in flight.
- ``failure_strategy`` (None: the run's) decides what a member's failure does:
  - ``continue_on_error`` in a ``fail_fast`` run: the failure is contained: the
    failed member's downstream becomes UPSTREAM_FAILED (cancelled if in flight), the
    group's other members and every independent component go on. The run still ends
    FAILED. A failure outside the group still stops the whole run.
  - ``fail_fast`` in a ``continue_on_error`` run: the group stops: its in-flight
    members are CANCELLED, its pending members SKIPPED (their error names the failed
    member), and the downstream of the failed and of every stopped member becomes
    UPSTREAM_FAILED. Members that already succeeded stay SUCCEEDED; components outside
    the group that do not depend on a stopped member go on.
  - the same strategy as the run's: exactly as without the group.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rayflow.core.groups import Group
from rayflow.core.states import FINAL_COMPONENT_STATES, OWN_FAILURE_STATES
from rayflow.core.states import ComponentState as S
from rayflow.graph import Dag

# The names as plain strings (the hot path compares them per transition); defined once in core.states.
PENDING, RUNNING, SUCCEEDED, FAILED, TIMED_OUT = (S.PENDING.value, S.RUNNING.value, S.SUCCEEDED.value,
                                                  S.FAILED.value, S.TIMED_OUT.value)
CANCELLED, SKIPPED, UPSTREAM_FAILED, CACHED = S.CANCELLED.value, S.SKIPPED.value, S.UPSTREAM_FAILED.value, S.CACHED.value
COMPONENT_STATES = tuple(s.value for s in S)
TERMINAL = FINAL_COMPONENT_STATES
OK = frozenset({SUCCEEDED, CACHED})
FAILURES = OWN_FAILURE_STATES


@dataclass(slots=True)
class NodeStatus:
    """What is known of one component in this run."""

    state: str = PENDING
    attempts: int = 0
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    node_id: str | None = None
    worker_id: str | None = None
    cpu_s: float | None = None
    peak_rss_bytes: int | None = None
    error: str | None = None
    cached: bool = False
    input_bytes: int = 0              # what its upstream values measured, in the worker
    input_rows: int = -1              # -1: unknown
    checkpoint: bytes | None = None   # a small output's blob, until the recorder saves it
    restored: bool = False            # its output came from a checkpoint (resume); it did not run
    resubmitted: int = 0              # times rayflow itself ran it again (a larger request after an OOM kill)
    outcome: dict[str, Any] | None = None   # what the call reported beyond timings (a dynamic map's items)
    traceback: str | None = None      # a failure's traceback (the user's own frames)
    log: tuple[int, str, bool] | None = None   # the last attempt's log that came back: (attempt,
    # text, whether the worker saved it); the recorder takes it (the text of a failure's stays)

    def apply_meta(self, meta: Mapping[str, Any]) -> None:
        self.started_at = meta.get("started_at", self.started_at)
        self.ended_at = meta.get("ended_at", self.ended_at)
        self.node_id = meta.get("node_id", self.node_id)
        self.worker_id = meta.get("worker_id", self.worker_id)
        self.cpu_s = meta.get("cpu_s", self.cpu_s)
        self.peak_rss_bytes = meta.get("peak_rss_bytes", self.peak_rss_bytes)
        self.attempts = int(meta.get("attempt", 0)) + 1 + self.resubmitted
        self.checkpoint = meta.get("checkpoint") or None
        self.input_bytes = meta.get("input_bytes", self.input_bytes)
        self.input_rows = meta.get("input_rows", self.input_rows)
        if "outcome" in meta:
            self.outcome = meta["outcome"]
        if "log" in meta:
            self.log = (int(meta.get("attempt", 0)) + 1, meta["log"], bool(meta.get("log_saved")))


_RESTORED_FIELDS = frozenset({"attempts", "submitted_at", "started_at", "ended_at", "node_id", "worker_id",
                              "cpu_s", "peak_rss_bytes", "input_bytes", "input_rows"})


@dataclass(slots=True)
class _Slots:
    """The live side of one group: members in flight, and members waiting for a slot."""

    group: Group
    running: int = 0
    waiting: list[tuple[int, str]] = field(default_factory=list)   # a heap of (rank, id)

    @property
    def full(self) -> bool:
        cap = self.group.max_concurrency
        return cap is not None and self.running >= cap


@dataclass
class RunState:
    """Pure scheduling state of one run over ``dag``; ``order`` ranks submission."""

    dag: Dag
    order: tuple[str, ...]
    failure_strategy: str = "fail_fast"
    max_concurrency: int | None = None
    eager: bool = False
    groups: tuple[Group, ...] = ()
    tasks: Mapping[str, Any] = field(default_factory=dict)   # the plan's tasks (rayflow.plan.Task)
    after: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # eager: taken only after these too
    nodes: dict[str, NodeStatus] = field(init=False)
    in_flight: set[str] = field(init=False, default_factory=set)
    cancelled: bool = field(init=False, default=False)
    changed: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = {n: NodeStatus() for n in self.dag.nodes}
        self._rank = {n: i for i, n in enumerate(self.order)}
        self._waiting = {n: len(self.dag.deps(n)) for n in self.dag.nodes}
        self._then: dict[str, list[str]] = {}   # node -> the nodes that wait for it beyond the dag (after)
        if self.eager:
            for node, first in self.after.items():
                self._waiting[node] += len(first)
                for f in first:
                    self._then.setdefault(f, []).append(node)
        self._heap: list[tuple[int, str]] = [(self._rank[n], n) for n in self.dag.nodes if not self._waiting[n]]
        heapq.heapify(self._heap)
        self._terminal = 0
        self._slots: dict[str, _Slots] = {}   # member id -> its group's slots
        self.reruns: dict[str, Any] = {}       # node -> the task it runs again with (rerun)
        for group in self.groups:
            slots = _Slots(group)
            self._slots.update(dict.fromkeys(group.members, slots))

    # -- queries -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._terminal == len(self.nodes)

    def state_of(self, node: str) -> str:
        return self.nodes[node].state

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for status in self.nodes.values():
            out[status.state] = out.get(status.state, 0) + 1
        return out

    def run_status(self) -> str:
        """RUNNING until done; then CANCELLED, FAILED (any failure) or SUCCEEDED."""
        if not self.done:
            return "RUNNING"
        if self.cancelled:
            return "CANCELLED"
        if any(s.state not in OK for s in self.nodes.values()):
            return "FAILED"
        return "SUCCEEDED"

    def errors(self) -> dict[str, str]:
        return {n: s.error or s.state for n, s in self.nodes.items() if s.state in FAILURES}

    def task(self, node: str) -> Any:
        """The task to submit for ``node``: the one of its last ``rerun``, else the planned one."""
        again = self.reruns.get(node)
        return self.tasks[node] if again is None else again

    # -- transitions ---------------------------------------------------------------------

    def take(self, now: float) -> list[str]:
        """Components to submit now, highest priority first; they become RUNNING."""
        taken: list[str] = []
        while self._heap and not self.cancelled:
            if self.max_concurrency is not None and len(self.in_flight) >= self.max_concurrency:
                break
            rank, node = heapq.heappop(self._heap)
            status = self.nodes[node]
            if status.state != PENDING:
                continue
            slots = self._slots.get(node)
            if slots is not None:
                if slots.full:   # waits in its group's queue until a member ends
                    heapq.heappush(slots.waiting, (rank, node))
                    continue
                slots.running += 1
            status.state = RUNNING
            status.submitted_at = now
            status.started_at = None     # submitted, not begun: it may wait for resources
            self.in_flight.add(node)
            self.changed.append(node)
            taken.append(node)
            if self.eager:
                self._release_children(node)
        return taken

    def restore(self, node: str, earlier: Mapping[str, Any] | None = None) -> bool:
        """Before anything runs (resume): ``node``'s output comes from its checkpoint, so it is
        SUCCEEDED without running; ``earlier`` keeps what the run that computed it measured
        (started_at, ended_at, attempts, node_id, ...). False when it is no longer PENDING."""
        status = self.nodes[node]
        if status.state != PENDING:
            return False
        for name, value in (earlier or {}).items():
            if name in _RESTORED_FIELDS:
                setattr(status, name, value)
        status.restored = True
        self._finish(node, SUCCEEDED)
        self._release_children(node)
        return True

    def began(self, node: str, started_at: float) -> bool:
        """A submitted component's call began running (told while it runs); False when it is
        not RUNNING any more or its start is known already."""
        status = self.nodes.get(node)
        if status is None or status.state != RUNNING or status.started_at is not None:
            return False
        status.started_at = started_at
        self.changed.append(node)
        return True

    def succeeded(self, node: str, meta: Mapping[str, Any], *, cached: bool = False) -> bool:
        """Record a success; False when the node was already final (a late completion)."""
        status = self.nodes[node]
        if status.state in TERMINAL:
            return False
        status.apply_meta(meta)
        status.cached = cached
        self._finish(node, CACHED if cached else SUCCEEDED)
        if not self.eager:
            self._release_children(node)
        return True

    def failed(self, node: str, error: str, meta: Mapping[str, Any], *, timed_out: bool = False,
               traceback: str | None = None) -> list[str]:
        """Record a final failure; return the in-flight components to cancel."""
        status = self.nodes[node]
        if status.state in TERMINAL:
            return []
        status.apply_meta(meta)
        status.error = error
        status.traceback = traceback or None
        self._finish(node, TIMED_OUT if timed_out else FAILED)
        slots = self._slots.get(node)
        strategy = (slots.group.failure_strategy if slots is not None else None) or self.failure_strategy
        if strategy == "continue_on_error":
            return self._fail_downstream(node)
        if slots is not None and self.failure_strategy != "fail_fast":
            return self._stop_group(slots, node)
        return self._stop_everything(in_flight_to=CANCELLED, pending_to=SKIPPED)

    def upstream_failed(self, node: str, cause: str) -> bool:
        """Mark ``node`` UPSTREAM_FAILED (its executor reported an upstream's error)."""
        status = self.nodes[node]
        if status.state in TERMINAL:
            return False
        status.error = f"upstream {cause!r} failed"
        self._finish(node, UPSTREAM_FAILED)
        return True

    def stopped(self, node: str, reason: str, meta: Mapping[str, Any]) -> bool:
        """``node`` was stopped before it finished (a stage upstream in a stream whose later
        stage failed): CANCELLED, with the reason; False when it was already final."""
        status = self.nodes[node]
        if status.state in TERMINAL:
            return False
        status.apply_meta(meta)
        status.error = reason
        self._finish(node, CANCELLED)
        return True

    def rerun(self, node: str, task: Any) -> bool:
        """``node`` (in flight, its call just failed) runs again as ``task``: it stays
        RUNNING, ``task(node)`` is ``task`` from now on and its attempts count one more
        (``NodeStatus.resubmitted``). False, and nothing changes, when it is not RUNNING
        (a late completion of a node already final)."""
        status = self.nodes[node]
        if status.state != RUNNING:
            return False
        self.reruns[node] = task
        status.resubmitted += 1
        return True

    def cancel(self) -> list[str]:
        """Cancel the run: in-flight and pending components become CANCELLED (no-op once done)."""
        if self.done:
            return []
        self.cancelled = True
        return self._stop_everything(in_flight_to=CANCELLED, pending_to=CANCELLED)

    # -- helpers -------------------------------------------------------------------------

    def _finish(self, node: str, state: str) -> None:
        self.nodes[node].state = state
        if node in self.in_flight:
            self.in_flight.discard(node)
            slots = self._slots.get(node)
            if slots is not None:
                slots.running -= 1
                self._readmit(slots)
        self._terminal += 1
        self.changed.append(node)

    def _readmit(self, slots: _Slots) -> None:
        """A slot of the group freed: its best waiting member goes back to the ready heap."""
        while slots.waiting:
            entry = heapq.heappop(slots.waiting)
            if self.nodes[entry[1]].state == PENDING:
                heapq.heappush(self._heap, entry)
                return

    def _release_children(self, node: str) -> None:
        waiting = self._waiting
        for child in self.dag.children(node):
            waiting[child] -= 1
            if not waiting[child]:
                heapq.heappush(self._heap, (self._rank[child], child))
        for later in self._then.get(node, ()):
            waiting[later] -= 1
            if not waiting[later]:
                heapq.heappush(self._heap, (self._rank[later], later))

    def _stop_everything(self, *, in_flight_to: str, pending_to: str) -> list[str]:
        to_cancel = sorted(self.in_flight, key=self._rank.__getitem__, reverse=True)  # downstream first
        for node in to_cancel:
            self._finish(node, in_flight_to)
        for node, status in self.nodes.items():
            if status.state == PENDING:
                self._finish(node, pending_to)
        self._heap.clear()
        for slots in self._slots.values():
            slots.waiting.clear()
        return to_cancel

    def _stop_group(self, slots: _Slots, failed: str) -> list[str]:
        """A fail_fast group in a continue_on_error run: stop the group's members and
        fail what depends on them; return the in-flight ones to cancel, downstream first."""
        why = f"stopped: member {failed!r} of group {slots.group.name!r} failed"
        stopped = [failed]
        to_cancel: list[str] = []
        for member in sorted(slots.group.members, key=self._rank.__getitem__):
            status = self.nodes[member]
            if status.state not in (PENDING, RUNNING):
                continue
            if status.state == RUNNING:
                to_cancel.append(member)
            status.error = why
            self._finish(member, CANCELLED if status.state == RUNNING else SKIPPED)
            stopped.append(member)
        slots.waiting.clear()
        for member in stopped:
            to_cancel += self._fail_downstream(member, cause=failed)
        return sorted(set(to_cancel), key=self._rank.__getitem__, reverse=True)

    def _fail_downstream(self, node: str, *, cause: str | None = None) -> list[str]:
        to_cancel = []
        for child in sorted(self.dag.descendants(node), key=self._rank.__getitem__):
            status = self.nodes[child]
            if status.state in TERMINAL:
                continue
            if status.state == RUNNING:
                to_cancel.append(child)
            status.error = f"upstream {cause or node!r} failed"
            self._finish(child, UPSTREAM_FAILED)
        to_cancel.reverse()  # downstream first
        return to_cancel

    def drain_changed(self) -> list[str]:
        """Ids whose status changed since the last call (for recording), in order."""
        out, self.changed = self.changed, []
        return out
