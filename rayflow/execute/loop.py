"""The one control loop: take ready work, submit it, apply completions, until done.

Owns the order of events of a run and nothing else: what to submit comes from
RunState, how to run it from an Executor, recording from the ``on_change`` hook.
The driver keeps output handles (never values) and drops each one as soon as every
consumer finished, so large intermediates are freed early. Must not import ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from rayflow.core import gcpause
from rayflow.execute.port import CheckpointTarget, Completion, Executor
from rayflow.execute.state import RunState
from rayflow.plan import Plan
from rayflow.plan.fusion import without
from rayflow.store.checkpoints import Checkpoint

log = logging.getLogger("rayflow")

OnChange = Callable[[RunState, list[str]], None]


def new_state(plan: Plan, executor: Executor) -> RunState:
    eager = executor.eager and plan.max_concurrency is None
    return RunState(plan.dag, plan.order, failure_strategy=plan.failure_strategy,
                    max_concurrency=plan.max_concurrency, eager=eager, groups=plan.groups)


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
    resize: Callable[[Any, Completion], Any] | None = None,
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
    fused group is never run again alone).

    Submitting and applying completions allocate in bursts (thousands of components at
    once): the garbage collector is paused for each (gcpause), never across a wait."""
    if restored and plan.fused:   # a group with a member restored from its checkpoint runs unfused
        plan = replace(plan, fused=without(plan.fused, restored))
    run = _Driver(plan, executor, state, checkpoints, cache, resize)
    executor.start(plan, checkpoints)
    try:
        run.restore(restored or {})
        while not state.done:
            if should_cancel():
                executor.cancel(state.cancel())
                break
            with gcpause.paused():
                run.submit_ready(clock())
                _notify(state, on_change)
            if state.done:
                break
            completions = executor.wait(poll_s)
            with gcpause.paused():
                run.apply(completions)
                _notify(state, on_change)
        _notify(state, on_change)
        _settle(executor, checkpoints)
        if state.run_status() == "SUCCEEDED" and run.outputs:
            return executor.fetch({cid: run.handles[cid] for cid in run.outputs})
        return {}
    finally:
        executor.shutdown()


def _settle(executor: Executor, checkpoints: CheckpointTarget | None) -> None:
    for problem in executor.settle():
        log.warning("run %s: an output was not saved to its checkpoint or the shared cache "
                    "(a resume or a later run computes it again): %s",
                    checkpoints.run_id if checkpoints else "?", problem)


class _Driver:
    """What one run's loop keeps between steps: output handles, consumers left per output."""

    def __init__(self, plan: Plan, executor: Executor, state: RunState, checkpoints: CheckpointTarget | None,
                 cache: Any, resize: Callable[[Any, Completion], Any] | None) -> None:
        self.plan, self.executor, self.state = plan, executor, state
        self.checkpoints, self.cache, self.resize = checkpoints, cache, resize
        self.fused = {m for group in plan.fused for m in group}
        self.topo = {node: i for i, node in enumerate(plan.dag.nodes)}
        self.outputs = set(plan.output_ids)
        self.consumers = {n: len(plan.dag.children(n)) for n in plan.dag.nodes}
        self.handles: dict[str, Any] = {}
        self.released: set[str] = set()

    def restore(self, restored: Mapping[str, Checkpoint]) -> None:
        for cid, checkpoint in restored.items():
            if cid in self.outputs or any(c not in restored for c in self.plan.dag.children(cid)):
                self.handles[cid] = self.executor.restore(self.plan.tasks[cid], checkpoint)

    def submit_ready(self, now: float) -> None:
        plan, state, executor, handles, cache = self.plan, self.state, self.executor, self.handles, self.cache
        for cid in state.take(now):
            task = plan.tasks[cid]
            if cache is not None and task.cache_key is not None:
                hit, value = cache.lookup(task)
                if hit:
                    handles[cid] = executor.place(task, value)
                    state.succeeded(cid, {}, cached=True)
                    continue
            handles[cid] = executor.submit(task, _deps(task, handles, executor))

    def apply(self, completions: list[Completion]) -> None:
        # successes first: a failure's fail_fast must not cancel what already succeeded
        # (the members of a fused group come back together)
        completions.sort(key=lambda c: (not c.ok, self.topo[c.id]))
        redone: set[str] = set()   # calls replaced in this batch: their old outcomes are stale
        for done in completions:
            if done.id in redone:
                continue
            if (not done.ok and self.resize is not None and not done.upstream and not done.stopped
                    and done.id not in self.fused and self._resized(done, redone)):
                continue
            _apply(self.state, self.executor, done)
            if done.ok and done.id in self.handles:
                self._keep(done)
        for cid in self.state.changed:
            if cid not in self.released and self.state.state_of(cid) not in ("PENDING", "RUNNING"):
                self.released.add(cid)
                _release(self.plan, cid, self.handles, self.consumers, self.outputs)

    def _resized(self, done: Completion, redone: set[str]) -> bool:
        """Run a failed component again with a larger request when ``resize`` gives one."""
        again = self.resize(self.plan.tasks[done.id], done)   # type: ignore[misc]
        if again is None:
            return False
        plan, executor, handles = self.plan, self.executor, self.handles
        plan.tasks[done.id] = again   # the same component, asking for more: still RUNNING
        self.state.nodes[done.id].resubmitted += 1
        handles[done.id] = executor.submit(again, _deps(again, handles, executor))
        redone |= _resubmit_downstream(plan, self.state, executor, handles, done.id, self.topo)
        return True

    def _keep(self, done: Completion) -> None:
        """A success: its output to the cache and the checkpoints, where they want it."""
        task, executor, checkpoints = self.plan.tasks[done.id], self.executor, self.checkpoints
        handle = self.handles[done.id]
        if self.cache is not None and task.cache_key is not None:
            sink = self.cache.keep(task, done.meta, handle)
            if sink is not None:
                executor.save(task, handle, sink)   # written where the output is
        if checkpoints is None or not task.options.checkpoint:
            self.state.nodes[done.id].checkpoint = None   # came back for the cache only
        if checkpoints is not None and task.options.checkpoint and done.meta.get("checkpoint") == b"":
            executor.save(task, handle)   # too large to come back inline


def _resubmit_downstream(plan: Plan, state: RunState, executor: Executor, handles: dict[str, Any],
                         cid: str, topo: dict[str, int]) -> set[str]:
    """Components already submitted with ``cid``'s old output as an argument (eagerly) would
    fail with it: cancel those calls and submit them again with the new handles."""
    stale = sorted((d for d in plan.dag.descendants(cid) if d in handles and state.state_of(d) == "RUNNING"),
                   key=topo.__getitem__)
    executor.cancel(reversed(stale))   # downstream first, as the executor expects
    for d in stale:
        handles[d] = executor.submit(plan.tasks[d], _deps(plan.tasks[d], handles, executor))
    return set(stale)


def _deps(task: Any, handles: dict[str, Any], executor: Executor) -> list[Any]:
    return [handles[d] if i is None else executor.output(handles[d], i) for d, i in task.inputs]


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
    executor.cancel(state.failed(done.id, done.error or "failed", done.meta, timed_out=done.timed_out))


def _release(plan: Plan, cid: str, handles: dict[str, Any],
             consumers: dict[str, int], outputs: set[str]) -> None:
    """Drop upstream handles once every consumer of them is final."""
    for dep in plan.dag.deps(cid):
        consumers[dep] -= 1
        if consumers[dep] == 0 and dep not in outputs:
            handles.pop(dep, None)


def _notify(state: RunState, on_change: OnChange | None) -> None:
    changed = state.drain_changed()
    if changed and on_change is not None:
        on_change(state, changed)
