"""The one control loop: take ready work, submit it, apply completions, until done.

Owns the order of events of a run and nothing else: what to submit comes from
RunState (``state.task(cid)``: the planned task, or the one it is rerun with), how to
run it from an Executor, recording from the ``on_change`` hook. The plan is never
changed. What the loop does beside scheduling is each in a collaborator of its own:

- ``Handles``: the output handles (never values), each dropped as soon as every
  consumer is final, so large intermediates are freed early; the checkpointed outputs
  a resumed run still needs are restored into it.
- ``CacheHits``: before a component with a cache key is submitted, the cache lookup
  (a hit is CACHED and runs nothing).
- ``Keeper``: after a success, its output to the cache and the checkpoints.
- ``Rerunner``: after a failure, the ``Resizer`` hook's task to run instead (a larger
  memory request after an out-of-memory kill): ``state.rerun``, then the resubmits.
- ``unfuse``: a fused group with a member restored from its checkpoint runs unfused.

Must not import ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from rayflow.core import gcpause
from rayflow.core.records import Checkpoint
from rayflow.execute.port import CheckpointTarget, Completion, Executor, LogTarget
from rayflow.execute.state import RunState
from rayflow.plan import Plan, Task
from rayflow.plan.fusion import call_inputs, waits, without

log = logging.getLogger("rayflow")

OnChange = Callable[[RunState, list[str]], None]


class Resizer(Protocol):
    """Given a failed task and its completion: the task to run instead, or None to let the
    failure stand (``rayflow.predict.history.OomResizer``)."""

    def __call__(self, task: Task, done: Completion, /) -> Task | None: ...


def new_state(plan: Plan, executor: Executor) -> RunState:
    eager = executor.eager and plan.max_concurrency is None
    return RunState(plan.dag, plan.order, failure_strategy=plan.failure_strategy,
                    max_concurrency=plan.max_concurrency, eager=eager, groups=plan.groups, tasks=plan.tasks,
                    after=waits(plan.fused, plan.dag) if runs_fused(plan, executor) else {})


def runs_fused(plan: Plan, executor: Executor) -> bool:
    """Whether ``executor`` runs ``plan``'s fused groups as one call each: an eager executor
    (everything submitted up front), in a run without ``max_concurrency``. Otherwise every
    member runs as its own call."""
    return bool(plan.fused) and executor.eager and plan.max_concurrency is None


def drive(
    plan: Plan,
    executor: Executor,
    state: RunState,
    *,
    on_change: OnChange | None = None,
    should_cancel: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.time,
    poll_s: float = 0.1,
    checkpoints: CheckpointTarget | None = None,
    restored: Mapping[str, Checkpoint] | None = None,
    cache: Any = None,
    resize: Resizer | None = None,
    logs: LogTarget | None = None,
) -> dict[str, Any]:
    """Run ``plan`` to the end; return the output values (empty unless SUCCEEDED).

    ``checkpoints``: keep each output there (small ones come back with the metadata and
    the recorder writes them; the executor saves larger ones). ``restored``: components
    whose outputs come from checkpoints (already SUCCEEDED in ``state``); only those a
    component still to run, or the workflow's output, reads are loaded. ``cache``: a
    ``rayflow.cache.runs.RunCache``; a component with a cache key is looked up before it
    is submitted (a hit is CACHED and runs nothing) and kept after it succeeds. ``resize``:
    given a failed task and its completion, a task to run again instead (a larger memory
    request after an out-of-memory kill), or None to let the failure stand (a member of a
    fused group is never run again alone). ``logs``: capture what each attempt prints and
    logs (see ``LogTarget``; None: not captured).

    Each step: cancel if asked; submit what the state hands out; wait for completions
    and take the starts the executor was told of;
    apply them (successes first); tell ``on_change`` what changed. Submitting and
    applying allocate in bursts (thousands of components at once): the garbage
    collector is paused for each (gcpause), never across a wait."""
    plan = unfuse(plan, restored)
    if not state.tasks:
        state.tasks = plan.tasks
    handles = Handles(plan=plan, executor=executor)
    hits = CacheHits(cache=cache, executor=executor, handles=handles) if cache is not None else None
    keeper = Keeper(state=state, executor=executor, handles=handles, cache=cache, checkpoints=checkpoints)
    rerunner = (Rerunner(plan=plan, state=state, executor=executor, handles=handles, resize=resize)
                if resize is not None else None)
    executor.start(plan, checkpoints, logs)
    try:
        handles.restore(restored or {})
        while not state.done:
            if should_cancel():
                executor.cancel(state.cancel())
                break
            with gcpause.paused():
                _submit_ready(state, executor, handles, hits, clock())
                _notify(state, on_change)
            if state.done:
                break
            completions = executor.wait(poll_s)
            for cid, _attempt, started_at in executor.began():
                state.began(cid, started_at)
            with gcpause.paused():
                _apply_all(completions, state=state, executor=executor, handles=handles, keeper=keeper,
                           rerunner=rerunner)
                _notify(state, on_change)
        _notify(state, on_change)
        _settle(executor, checkpoints)
        if state.run_status() == "SUCCEEDED" and handles.outputs:
            return executor.fetch(handles.of_outputs())
        return {}
    finally:
        executor.shutdown()


def unfuse(plan: Plan, restored: Mapping[str, Checkpoint] | None) -> Plan:
    """``plan`` without the fused groups that have a member in ``restored`` (a new plan)."""
    if restored and plan.fused:
        return replace(plan, fused=without(plan.fused, restored))
    return plan


def _submit_ready(state: RunState, executor: Executor, handles: Handles, hits: CacheHits | None,
                  now: float) -> None:
    """Submit what ``state`` hands out now (a cache hit instead runs nothing)."""
    task_of, submit, out, deps = state.task, executor.submit, handles.by_id, handles.deps
    for cid in state.take(now):
        task = task_of(cid)
        if hits is not None and task.cache_key is not None and hits.placed(task):
            state.succeeded(cid, {}, cached=True)
            continue
        out[cid] = submit(task, deps(task))


def _apply_all(completions: list[Completion], *, state: RunState, executor: Executor, handles: Handles,
               keeper: Keeper, rerunner: Rerunner | None) -> None:
    """Apply a batch of completions to ``state``: successes first, so a failure's fail_fast
    does not cancel what already succeeded (the members of a fused group come back
    together); a failure ``rerunner`` runs again is not applied."""
    completions.sort(key=lambda c: (not c.ok, handles.topo[c.id]))
    redone: set[str] = set()   # calls replaced in this batch: their old outcomes are stale
    by_id = handles.by_id
    for done in completions:
        if done.id in redone:
            continue
        if not done.ok and rerunner is not None and rerunner.rerun(done, redone=redone):
            continue
        _apply(state, executor, done)
        if done.ok and done.id in by_id:
            keeper.keep(done)
    handles.release(state)


def _settle(executor: Executor, checkpoints: CheckpointTarget | None) -> None:
    for problem in executor.settle():
        log.warning("run %s: an output was not saved to its checkpoint or the shared cache "
                    "(a resume or a later run computes it again): %s",
                    checkpoints.run_id if checkpoints else "?", problem)


class Handles:
    """One run's output handles and how many consumers of each are not final yet."""

    __slots__ = ("by_id", "calls", "consumers", "dag", "executor", "outputs", "plan", "released", "topo")

    def __init__(self, *, plan: Plan, executor: Executor) -> None:
        self.plan, self.dag, self.executor = plan, plan.dag, executor
        # a fused group's head is submitted with every input its group reads from outside
        self.calls = ({g[0]: call_inputs(g, plan.tasks) for g in plan.fused}
                      if runs_fused(plan, executor) else {})
        self.topo = {node: i for i, node in enumerate(plan.dag.nodes)}
        self.outputs = set(plan.output_ids)
        self.consumers = {n: len(plan.dag.children(n)) for n in plan.dag.nodes}
        self.by_id: dict[str, Any] = {}
        self.released: set[str] = set()

    def deps(self, task: Task) -> list[Any]:
        """The handles ``task`` is submitted with (one output of a call with several, where read)."""
        by_id, output = self.by_id, self.executor.output
        inputs = self.calls.get(task.id, task.inputs) if self.calls else task.inputs
        return [by_id[d] if i is None else output(by_id[d], i) for d, i in inputs]

    def restore(self, restored: Mapping[str, Checkpoint]) -> None:
        """Handles for the checkpointed outputs still read: by a component still to run,
        or as the workflow's output."""
        children, tasks = self.dag.children, self.plan.tasks
        for cid, checkpoint in restored.items():
            if cid in self.outputs or any(c not in restored for c in children(cid)):
                self.by_id[cid] = self.executor.restore(tasks[cid], checkpoint)

    def release(self, state: RunState) -> None:
        """Drop the upstream handles of what just became final once every consumer is."""
        released, consumers, by_id, outputs, deps = self.released, self.consumers, self.by_id, self.outputs, \
            self.dag.deps
        for cid in state.changed:
            if cid not in released and state.state_of(cid) not in ("PENDING", "RUNNING"):
                released.add(cid)
                for dep in deps(cid):
                    consumers[dep] -= 1
                    if consumers[dep] == 0 and dep not in outputs:
                        by_id.pop(dep, None)

    def of_outputs(self) -> dict[str, Any]:
        return {cid: self.by_id[cid] for cid in self.outputs}


class CacheHits:
    """The cache lookup before a component with a cache key is submitted."""

    __slots__ = ("cache", "executor", "handles")

    def __init__(self, *, cache: Any, executor: Executor, handles: Handles) -> None:
        self.cache, self.executor, self.handles = cache, executor, handles

    def placed(self, task: Task) -> bool:
        """True when the cache holds ``task``'s output: its handle is placed, nothing runs."""
        hit, value = self.cache.lookup(task)
        if hit:
            self.handles.by_id[task.id] = self.executor.place(task, value)
        return hit


class Keeper:
    """After a success: its output to the cache and the checkpoints, where they want it."""

    __slots__ = ("cache", "checkpoints", "executor", "handles", "state")

    def __init__(self, *, state: RunState, executor: Executor, handles: Handles, cache: Any,
                 checkpoints: CheckpointTarget | None) -> None:
        self.state, self.executor, self.handles = state, executor, handles
        self.cache, self.checkpoints = cache, checkpoints

    def keep(self, done: Completion) -> None:
        task, executor, checkpoints = self.state.task(done.id), self.executor, self.checkpoints
        handle = self.handles.by_id[done.id]
        if self.cache is not None and task.cache_key is not None:
            sink = self.cache.keep(task, done.meta, handle)
            if sink is not None:
                executor.save(task, handle, sink)   # written where the output is
        if checkpoints is None or not task.options.checkpoint:
            self.state.nodes[done.id].checkpoint = None   # came back for the cache only
        if checkpoints is not None and task.options.checkpoint and done.meta.get("checkpoint") == b"":
            executor.save(task, handle)   # too large to come back inline


class Rerunner:
    """After a failure: run the component again with the task ``resize`` gives, if any."""

    __slots__ = ("executor", "fused", "handles", "plan", "resize", "state")

    def __init__(self, *, plan: Plan, state: RunState, executor: Executor, handles: Handles,
                 resize: Resizer) -> None:
        self.plan, self.state, self.executor, self.handles, self.resize = plan, state, executor, handles, resize
        self.fused = {m for group in plan.fused for m in group}

    def rerun(self, done: Completion, *, redone: set[str]) -> bool:
        """True when ``done``'s component runs again (``state.rerun``) instead of failing;
        the calls submitted since with its old output are resubmitted too and added to
        ``redone`` (their outcomes in this batch are stale)."""
        cid, state = done.id, self.state
        if done.upstream or done.stopped or cid in self.fused or state.state_of(cid) != "RUNNING":
            return False
        again = self.resize(state.task(cid), done)
        if again is None or not state.rerun(cid, again):
            return False
        handles, executor = self.handles, self.executor
        handles.by_id[cid] = executor.submit(again, handles.deps(again))
        redone |= self._resubmit_downstream(cid)
        return True

    def _resubmit_downstream(self, cid: str) -> set[str]:
        """Components already submitted with ``cid``'s old output as an argument (eagerly) would
        fail with it: cancel those calls and submit them again with the new handles."""
        state, executor, handles = self.state, self.executor, self.handles
        stale = sorted((d for d in self.plan.dag.descendants(cid)
                        if d in handles.by_id and state.state_of(d) == "RUNNING"), key=handles.topo.__getitem__)
        executor.cancel(reversed(stale))   # downstream first, as the executor expects
        for d in stale:
            task = state.task(d)
            handles.by_id[d] = executor.submit(task, handles.deps(task))
        return set(stale)


def _apply(state: RunState, executor: Executor, done: Completion) -> None:
    if done.ok:
        state.succeeded(done.id, done.meta)
        return
    if done.stopped:
        state.stopped(done.id, done.error or "stopped", done.meta)
        return
    if done.upstream and done.upstream != done.id:
        state.upstream_failed(done.id, done.upstream)
        return
    executor.cancel(state.failed(done.id, done.error or "failed", done.meta, timed_out=done.timed_out,
                                 traceback=done.detail))


def _notify(state: RunState, on_change: OnChange | None) -> None:
    changed = state.drain_changed()
    if changed and on_change is not None:
        on_change(state, changed)
