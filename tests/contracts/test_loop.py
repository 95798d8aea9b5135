"""The control loop's contract (rayflow.execute.loop.drive) against a scripted fake
executor: an in-memory Executor whose ``wait`` hands back completions in the order the
test scripts. Any completion order, failures under both strategies, cancellation,
reruns after an out-of-memory kill (a state transition: the plan never changes),
cache hits, checkpoints. No Ray, no threads: assertions are on the final RunState and
the sequence of submits."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import pytest

from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.template import NodeRef
from rayflow.execute.loop import drive, new_state
from rayflow.execute.port import CheckpointTarget, Completion
from rayflow.plan import Plan, make_plan
from rayflow.store.checkpoints import MemoryCheckpoints

OOM = "OutOfMemoryError: Task was killed due to the node running low on memory."


def add(*xs):
    return sum(xs) + 1


def diamond(**blueprint) -> Plan:
    """a, b sources; c reads a and b; d reads a; the output is (c, d)."""
    calls = {"a": Call("a", add), "b": Call("b", add),
             "c": Call("c", add, (NodeRef("a"), NodeRef("b"))), "d": Call("d", add, (NodeRef("a"),))}
    return make_plan(Blueprint("w", calls, output=[NodeRef("c"), NodeRef("d")], **blueprint))


class Handle:
    __slots__ = ("id", "n")

    def __init__(self, cid: str, n: int) -> None:
        self.id, self.n = cid, n

    def __repr__(self) -> str:
        return f"H({self.id}#{self.n})"


class Script:
    """What the fake does with each call: ``order`` ranks which in-flight call completes
    first (earlier in it: sooner); ``outcome(task, n)`` the Completion of the n-th
    submit of a component (default: success); ``batch``: hand back every call that
    can complete at once, else one per wait."""

    def __init__(self, order: Iterable[str] = (), *, batch: bool = False,
                 outcome: Callable[[Any, int], Completion] | None = None) -> None:
        self.rank = {cid: i for i, cid in enumerate(order)}
        self.batch = batch
        self.outcome = outcome or (lambda task, n: Completion(task.id, True, {"attempt": 0}))


class FakeExecutor:
    """An Executor whose calls complete only when ``wait`` says so, in scripted order.
    A call completes once every call it reads completed (so eager chaining is honoured)."""

    name = "fake"

    def __init__(self, script: Script | None = None, *, eager: bool = False) -> None:
        self.eager = eager
        self.script = script or Script()
        self.submits: list[tuple[str, Any, list[Any]]] = []   # (id, task, deps) in order
        self.cancels: list[str] = []
        self.placed: list[str] = []
        self.restored: list[str] = []
        self.saved: list[tuple[str, Any]] = []
        self.in_flight: dict[str, tuple[Any, Handle, list[Any]]] = {}
        self.done: set[Handle] = set()
        self.values: dict[Handle, Any] = {}
        self.started = self.shut = False
        self._n: dict[str, int] = {}

    # -- the Executor protocol -------------------------------------------------------

    def start(self, plan, checkpoints=None, logs=None):
        self.started = True
        self.checkpoints = checkpoints

    def place(self, task, value):
        self.placed.append(task.id)
        h = Handle(task.id, 0)
        self.done.add(h)
        self.values[h] = value
        return h

    def restore(self, task, checkpoint):
        self.restored.append(task.id)
        h = Handle(task.id, 0)
        self.done.add(h)
        self.values[h] = self.checkpoints.load(checkpoint)
        return h

    def save(self, task, handle, target=None):
        self.saved.append((task.id, target))
        (target or self.checkpoints).save(task.id, self.values.get(handle))

    def settle(self):
        return []

    def submit(self, task, deps):
        n = self._n[task.id] = self._n.get(task.id, 0) + 1
        h = Handle(task.id, n)
        self.submits.append((task.id, task, list(deps)))
        self.in_flight[task.id] = (task, h, list(deps))
        return h

    def began(self):
        return []   # what it runs begins at once: its start comes with its completion

    def wait(self, timeout):
        ready = [cid for cid, (_, _, deps) in self.in_flight.items() if all(d in self.done for d in deps)]
        ready.sort(key=lambda c: self.script.rank.get(c, len(self.script.rank)))
        out = []
        for cid in ready if self.script.batch else ready[:1]:
            task, h, deps = self.in_flight.pop(cid)
            done = self.script.outcome(task, h.n)
            if done.ok:
                self.done.add(h)
                self.values[h] = add(*(self.values[d] for d in deps))
            out.append(done)
        return out

    def cancel(self, ids):
        for cid in ids:
            self.cancels.append(cid)
            self.in_flight.pop(cid, None)

    def output(self, handle, index):
        raise AssertionError("no component here has several outputs")

    def fetch(self, handles):
        return {cid: self.values[h] for cid, h in handles.items()}

    def shutdown(self):
        self.shut = True

    # -- what the tests read ---------------------------------------------------------

    @property
    def submitted(self) -> list[str]:
        return [cid for cid, _, _ in self.submits]


def run(plan: Plan, ex: FakeExecutor, **kw):
    state = new_state(plan, ex)
    changes: list[list[str]] = []
    out = drive(plan, ex, state, on_change=lambda s, changed: changes.append(changed), poll_s=0, **kw)
    return state, out, changes


def states(state) -> dict[str, str]:
    return {cid: s.state for cid, s in state.nodes.items()}


# -- any order -------------------------------------------------------------------------


@pytest.mark.parametrize("eager", [False, True])
@pytest.mark.parametrize("batch", [False, True])
def test_every_completion_order_ends_with_the_same_outputs(eager, batch):
    plan = diamond()
    for order in itertools.permutations("abcd"):
        ex = FakeExecutor(Script(order, batch=batch), eager=eager)
        state, out, changes = run(plan, ex)
        assert state.run_status() == "SUCCEEDED", order
        assert out == {"c": 3, "d": 2}, order
        assert sorted(ex.submitted) == ["a", "b", "c", "d"], order   # each exactly once
        assert ex.started and ex.shut
        assert sorted(c for batch_ in changes for c in batch_ if state.state_of(c) == "SUCCEEDED")
        deps = {cid: [h.id for h in d] for cid, _, d in ex.submits}
        assert deps == {"a": [], "b": [], "c": ["a", "b"], "d": ["a"]}
        if not eager:   # submitted only once every upstream succeeded
            seen: list[str] = []
            for cid in ex.submitted:
                assert all(d in seen for d in plan.dag.deps(cid)), (order, ex.submitted)
                seen.append(cid)
        else:           # everything up front, critical path first
            assert ex.submitted[:2] == list(plan.order[:2])
        assert all(s.attempts == 1 for s in state.nodes.values())


def test_submits_follow_the_plan_order_each_step():
    plan = diamond()
    ex = FakeExecutor(Script("abcd", batch=True))
    run(plan, ex)
    first = [cid for cid in plan.order if not plan.dag.deps(cid)]
    assert ex.submitted[:2] == first


def test_tasks_are_submitted_as_planned_and_the_plan_is_unchanged():
    plan = diamond()
    before = dict(plan.tasks)
    ex = FakeExecutor(Script("abcd"))
    state, _, _ = run(plan, ex)
    assert all(task is plan.tasks[cid] for cid, task, _ in ex.submits)
    assert dict(plan.tasks) == before and state.reruns == {}


# -- failures --------------------------------------------------------------------------


def failing(*ids: str, error: str = "ValueError: bad", times: int | None = None):
    def outcome(task, n):
        if task.id in ids and (times is None or n <= times):
            return Completion(task.id, False, {"attempt": 0}, error)
        return Completion(task.id, True, {"attempt": 0})
    return outcome


def test_fail_fast_cancels_what_is_in_flight_and_skips_the_rest():
    plan = diamond()
    ex = FakeExecutor(Script("abcd", outcome=failing("a")))
    state, out, _ = run(plan, ex)
    assert out == {} and state.run_status() == "FAILED"
    assert states(state) == {"a": "FAILED", "b": "CANCELLED", "c": "SKIPPED", "d": "SKIPPED"}
    assert ex.cancels == ["b"] and ex.submitted == ["a", "b"]
    assert state.errors() == {"a": "ValueError: bad"}


def test_a_success_in_the_same_batch_as_a_fail_fast_failure_stands():
    plan = diamond()
    ex = FakeExecutor(Script("ab", batch=True, outcome=failing("a")))
    state, _, _ = run(plan, ex)
    assert states(state) == {"a": "FAILED", "b": "SUCCEEDED", "c": "SKIPPED", "d": "SKIPPED"}
    assert ex.cancels == []


def test_continue_on_error_fails_the_downstream_and_runs_the_rest():
    plan = diamond(failure_strategy="continue_on_error")
    ex = FakeExecutor(Script("bacd", outcome=failing("b")))
    state, out, _ = run(plan, ex)
    assert states(state) == {"a": "SUCCEEDED", "b": "FAILED", "c": "UPSTREAM_FAILED", "d": "SUCCEEDED"}
    assert out == {} and state.run_status() == "FAILED"
    assert "c" not in ex.submitted and ex.cancels == []


def test_continue_on_error_eager_cancels_the_downstream_in_flight():
    plan = diamond(failure_strategy="continue_on_error")
    ex = FakeExecutor(Script("bacd", outcome=failing("b")), eager=True)
    state, _, _ = run(plan, ex)
    assert states(state) == {"a": "SUCCEEDED", "b": "FAILED", "c": "UPSTREAM_FAILED", "d": "SUCCEEDED"}
    assert ex.cancels == ["c"]


def test_an_upstream_failure_reported_by_the_executor():
    plan = diamond(failure_strategy="continue_on_error")

    def outcome(task, n):
        if task.id == "d":
            return Completion("d", False, {}, "ValueError: x", upstream="a")
        return Completion(task.id, True, {})

    state, _, _ = run(plan, FakeExecutor(Script("abcd", outcome=outcome)))
    assert state.state_of("d") == "UPSTREAM_FAILED" and state.nodes["d"].error == "upstream 'a' failed"


# -- cancellation ----------------------------------------------------------------------


def test_cancelling_cancels_what_is_in_flight_and_pending():
    plan = diamond()
    ex = FakeExecutor(Script("abcd"))
    asked = iter([False, False, True])
    state, out, _ = run(plan, ex, should_cancel=lambda: next(asked))
    assert state.run_status() == "CANCELLED" and out == {}
    assert sorted(s for s in states(state).values()) == ["CANCELLED", "CANCELLED", "SUCCEEDED", "SUCCEEDED"]
    assert ex.cancels and all(state.state_of(c) == "CANCELLED" for c in ex.cancels)
    assert ex.shut


def test_cancelling_before_anything_runs_submits_nothing():
    plan = diamond()
    ex = FakeExecutor()
    state, _, _ = run(plan, ex, should_cancel=lambda: True)
    assert ex.submitted == [] and set(states(state).values()) == {"CANCELLED"}


# -- reruns (out-of-memory kills) --------------------------------------------------------


class Bigger:
    """A Resizer: after an OOM, the same task asking for twice the memory, ``limit`` times."""

    def __init__(self, limit: int = 1) -> None:
        self.limit, self.asked = limit, []

    def __call__(self, task, done):
        self.asked.append((task.id, task.options.memory))
        if "OutOfMemoryError" not in (done.error or "") or len(self.asked) > self.limit:
            return None
        return replace(task, options=replace(task.options, memory=(task.options.memory or 2**30) * 2))


def test_an_oom_killed_component_runs_again_with_the_resized_task():
    plan = diamond()
    resize = Bigger()
    ex = FakeExecutor(Script("abcd", outcome=failing("a", error=OOM, times=1)))
    state, out, _ = run(plan, ex, resize=resize)
    assert state.run_status() == "SUCCEEDED" and out == {"c": 3, "d": 2}
    assert ex.submitted.count("a") == 2
    again = [task for cid, task, _ in ex.submits if cid == "a"][1]
    assert again.options.memory == 2**31
    assert state.task("a") is again and state.reruns == {"a": again}
    assert plan.tasks["a"].options.memory is None           # the plan is as planned
    assert state.nodes["a"].resubmitted == 1 and state.nodes["a"].attempts == 2
    assert resize.asked == [("a", None)]


def test_a_second_oom_is_asked_about_the_rerun_task_and_may_stand():
    plan = diamond()
    resize = Bigger(limit=1)
    ex = FakeExecutor(Script("abcd", outcome=failing("a", error=OOM)))
    state, _, _ = run(plan, ex, resize=resize)
    assert resize.asked == [("a", None), ("a", 2**31)]
    assert state.state_of("a") == "FAILED" and ex.submitted.count("a") == 2


def test_a_failure_the_resizer_declines_stands():
    plan = diamond()
    resize = Bigger()
    state, _, _ = run(plan, FakeExecutor(Script("abcd", outcome=failing("b"))), resize=resize)
    assert state.state_of("b") == "FAILED" and state.reruns == {}
    assert resize.asked == [("b", None)]


def test_an_eager_rerun_resubmits_the_downstream_already_submitted():
    plan = diamond()
    ex = FakeExecutor(Script("abcd", outcome=failing("a", error=OOM, times=1)), eager=True)
    state, out, _ = run(plan, ex, resize=Bigger())
    assert out == {"c": 3, "d": 2}
    # all four up front; then a again, and its downstream cancelled (downstream first) and resubmitted
    assert sorted(ex.submitted[:4]) == ["a", "b", "c", "d"]
    assert ex.submitted[4] == "a" and sorted(ex.submitted[5:]) == ["c", "d"]
    assert ex.cancels == sorted(["c", "d"], key=plan.dag.nodes.index, reverse=True)
    resubmitted = {cid: d for cid, _, d in ex.submits[5:]}
    assert [h.n for h in resubmitted["d"]] == [2]   # the new handle of a
    assert state.nodes["c"].resubmitted == 0 and state.nodes["a"].resubmitted == 1


def test_a_failed_stage_reported_upstream_or_stopped_is_not_rerun():
    plan = diamond(failure_strategy="continue_on_error")

    def outcome(task, n):
        if task.id == "d":
            return Completion("d", False, {}, OOM, upstream="a")
        if task.id == "c":
            return Completion("c", False, {}, OOM, stopped=True)
        return Completion(task.id, True, {})

    resize = Bigger()
    state, _, _ = run(plan, FakeExecutor(Script("abcd", outcome=outcome)), resize=resize)
    assert resize.asked == [] and state.reruns == {}
    assert state.state_of("c") == "CANCELLED" and state.state_of("d") == "UPSTREAM_FAILED"


# -- cache and checkpoints ---------------------------------------------------------------


class FakeCache:
    def __init__(self, hits: dict[str, Any]) -> None:
        self.hits, self.kept = hits, []

    def lookup(self, task):
        return (task.id in self.hits, self.hits.get(task.id))

    def keep(self, task, meta, handle):
        self.kept.append(task.id)
        return None


def cached_diamond() -> Plan:
    plan = diamond()
    return plan.with_tasks({cid: replace(t, cache_key=f"k-{cid}") for cid, t in plan.tasks.items()})


def test_a_cache_hit_is_cached_and_runs_nothing():
    plan = cached_diamond()
    cache = FakeCache({"a": 10})
    ex = FakeExecutor(Script("abcd"))
    state, out, _ = run(plan, ex, cache=cache)
    assert state.state_of("a") == "CACHED" and "a" not in ex.submitted and ex.placed == ["a"]
    assert out == {"c": 12, "d": 11}
    assert sorted(cache.kept) == ["b", "c", "d"]


def test_restored_outputs_are_read_back_only_where_still_needed():
    plan = diamond()
    sink = MemoryCheckpoints()
    sink.write_one("r", "a", 1)
    sink.write_one("r", "b", 1)
    target = CheckpointTarget(sink, "r")
    ex = FakeExecutor(Script("abcd"))
    state = new_state(plan, ex)
    restored = {cid: ck for cid, ck in sink.index("r").items()}
    for cid in restored:
        state.restore(cid)
    out = drive(plan, ex, state, checkpoints=target, restored=restored, poll_s=0)
    assert sorted(ex.restored) == ["a", "b"] and ex.submitted == ["c", "d"]
    assert out == {"c": 3, "d": 2}


def test_a_large_output_is_saved_by_the_executor():
    plan = diamond()
    target = CheckpointTarget(MemoryCheckpoints(), "r")

    def outcome(task, n):
        return Completion(task.id, True, {"checkpoint": b"" if task.id == "c" else b"small"})

    ex = FakeExecutor(Script("abcd", outcome=outcome))
    state, _, _ = run(plan, ex, checkpoints=target)
    assert ex.saved == [("c", None)]
    assert sorted(target.store.index("r")) == ["c"]
    assert state.nodes["a"].checkpoint == b"small"   # for the recorder to write
