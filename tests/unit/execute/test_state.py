"""rayflow.execute.state: pure run-state transitions (no Ray, no threads, no clocks)."""

from __future__ import annotations

import pytest

from rayflow.execute.state import (
    CACHED,
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TIMED_OUT,
    UPSTREAM_FAILED,
    RunState,
)
from rayflow.graph import Dag, upward_ranks

# a -> b -> c   (chain)      x -> y   (independent branch)
CHAIN_AND_BRANCH = {"a": [], "b": ["a"], "c": ["b"], "x": [], "y": ["x"]}
DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def make(deps, order=None, **kw) -> RunState:
    dag = Dag(deps)
    if order is None:
        ranks = upward_ranks(dag)
        topo = {n: i for i, n in enumerate(dag.nodes)}
        order = tuple(sorted(dag.nodes, key=lambda n: (-ranks[n], topo[n])))
    return RunState(dag, tuple(order), **kw)


def ok(state: RunState, node: str, **meta) -> bool:
    return state.succeeded(node, {"started_at": 1.0, "ended_at": 2.0, **meta})


# -- readiness ---------------------------------------------------------------------------------


def test_initial_state():
    s = make(CHAIN_AND_BRANCH)
    assert all(s.state_of(n) == PENDING for n in CHAIN_AND_BRANCH)
    assert s.counts() == {PENDING: 5}
    assert not s.done
    assert s.run_status() == "RUNNING"


def test_lazy_take_returns_only_sources_then_children_after_success():
    s = make(CHAIN_AND_BRANCH)
    first = s.take(now=10.0)
    assert sorted(first) == ["a", "x"]
    assert s.take(now=10.5) == []
    assert s.state_of("a") == RUNNING and s.nodes["a"].submitted_at == 10.0
    assert s.in_flight == {"a", "x"}
    assert ok(s, "a")
    assert s.state_of("a") == SUCCEEDED
    assert s.take(now=11.0) == ["b"]
    assert s.take(now=11.0) == []
    ok(s, "x")
    assert s.take(now=12.0) == ["y"]


def test_lazy_join_waits_for_every_upstream():
    s = make(DIAMOND)
    assert s.take(0) == ["a"]
    ok(s, "a")
    assert sorted(s.take(1)) == ["b", "c"]
    ok(s, "b")
    assert s.take(2) == []
    ok(s, "c")
    assert s.take(3) == ["d"]
    ok(s, "d")
    assert s.done and s.run_status() == "SUCCEEDED"
    assert s.counts() == {SUCCEEDED: 4}
    assert s.errors() == {}


def test_eager_children_available_once_parents_taken():
    s = make(CHAIN_AND_BRANCH, eager=True)
    taken = s.take(0)
    assert sorted(taken) == ["a", "b", "c", "x", "y"]
    pos = {n: i for i, n in enumerate(taken)}
    assert pos["a"] < pos["b"] < pos["c"] and pos["x"] < pos["y"]
    assert all(s.state_of(n) == RUNNING for n in taken)
    for n in ("a", "b", "c", "x", "y"):
        ok(s, n)
    assert s.run_status() == "SUCCEEDED"


def test_eager_join_needs_every_parent_taken():
    s = make(DIAMOND, eager=True, max_concurrency=2)
    assert s.take(0) == ["a", "b"]
    ok(s, "a")
    assert s.take(1) == ["c"]
    assert s.take(1) == []  # limit reached (b, c in flight)
    ok(s, "b")
    assert s.take(2) == ["d"]


def test_max_concurrency_limits_in_flight():
    deps = {f"s{i}": [] for i in range(10)}
    s = make(deps, max_concurrency=3)
    assert len(s.take(0)) == 3
    assert s.take(0) == []
    assert len(s.in_flight) == 3
    running = sorted(s.in_flight)
    ok(s, running[0])
    assert len(s.take(1)) == 1
    assert len(s.in_flight) == 3
    total = 4
    while not s.done:
        for n in list(s.in_flight):
            ok(s, n)
        total += len(s.take(2))
        assert len(s.in_flight) <= 3
    assert total == 10
    assert s.run_status() == "SUCCEEDED"


def test_take_respects_priority_order():
    deps = {n: [] for n in "abcdef"}
    s = make(deps, order=("e", "c", "a", "f", "b", "d"))
    assert s.take(0) == ["e", "c", "a", "f", "b", "d"]
    s = make(deps, order=("e", "c", "a", "f", "b", "d"), max_concurrency=2)
    assert s.take(0) == ["e", "c"]
    ok(s, "c")
    assert s.take(0) == ["a"]


def test_newly_ready_high_priority_child_jumps_the_queue():
    # hi is a child of a; low-priority sources wait behind it once it is ready.
    deps = {"a": [], "hi": ["a"], "l1": [], "l2": []}
    s = make(deps, order=("a", "hi", "l1", "l2"), max_concurrency=1)
    assert s.take(0) == ["a"]
    ok(s, "a")
    assert s.take(1) == ["hi"]


# -- failures ----------------------------------------------------------------------------------


def test_fail_fast_cancels_in_flight_and_skips_pending():
    s = make(CHAIN_AND_BRANCH, failure_strategy="fail_fast")
    assert sorted(s.take(0)) == ["a", "x"]
    to_cancel = s.failed("a", "ValueError: boom", {"attempt": 0})
    assert to_cancel == ["x"]
    assert s.state_of("a") == FAILED
    assert s.state_of("x") == CANCELLED
    assert s.state_of("b") == SKIPPED and s.state_of("c") == SKIPPED and s.state_of("y") == SKIPPED
    assert s.in_flight == set()
    assert s.done
    assert s.run_status() == "FAILED"
    assert s.errors() == {"a": "ValueError: boom"}
    assert s.take(1) == []
    assert s.counts() == {FAILED: 1, CANCELLED: 1, SKIPPED: 3}


def test_continue_on_error_fails_downstream_and_lets_branches_go_on():
    s = make(CHAIN_AND_BRANCH, failure_strategy="continue_on_error")
    s.take(0)
    assert s.failed("a", "boom", {}) == []
    assert s.state_of("b") == UPSTREAM_FAILED and s.state_of("c") == UPSTREAM_FAILED
    assert s.nodes["c"].error == "upstream 'a' failed"
    assert s.state_of("x") == RUNNING
    assert not s.done and s.run_status() == "RUNNING"
    ok(s, "x")
    assert s.take(1) == ["y"]
    ok(s, "y")
    assert s.state_of("y") == SUCCEEDED
    assert s.done
    assert s.run_status() == "FAILED"
    assert s.errors() == {"a": "boom"}
    assert s.counts() == {FAILED: 1, UPSTREAM_FAILED: 2, SUCCEEDED: 2}


def test_continue_on_error_returns_in_flight_descendants_to_cancel():
    s = make(CHAIN_AND_BRANCH, failure_strategy="continue_on_error", eager=True)
    s.take(0)
    to_cancel = s.failed("a", "boom", {})
    assert sorted(to_cancel) == ["b", "c"]
    assert s.state_of("b") == UPSTREAM_FAILED and s.state_of("c") == UPSTREAM_FAILED
    assert s.in_flight == {"x", "y"}
    ok(s, "x")
    ok(s, "y")
    assert s.run_status() == "FAILED"


def test_continue_on_error_join_with_one_failed_parent():
    s = make(DIAMOND, failure_strategy="continue_on_error")
    s.take(0)
    ok(s, "a")
    s.take(1)
    s.failed("b", "boom", {})
    assert s.state_of("d") == UPSTREAM_FAILED
    assert s.state_of("c") == RUNNING
    ok(s, "c")
    assert s.take(2) == []  # d is already final
    assert s.done and s.run_status() == "FAILED"


def test_timed_out():
    s = make({"a": [], "b": ["a"]})
    s.take(0)
    s.failed("a", "ComponentTimeout: ran past 1s", {"attempt": 2}, timed_out=True)
    assert s.state_of("a") == TIMED_OUT
    assert s.nodes["a"].attempts == 3
    assert s.errors() == {"a": "ComponentTimeout: ran past 1s"}
    assert s.state_of("b") == SKIPPED
    assert s.run_status() == "FAILED"


def test_late_completion_of_a_terminal_node_is_ignored():
    s = make(CHAIN_AND_BRANCH)
    s.take(0)
    s.failed("a", "boom", {})
    assert s.state_of("x") == CANCELLED
    assert ok(s, "x") is False
    assert s.state_of("x") == CANCELLED
    assert s.failed("x", "late", {}) == []
    assert s.state_of("x") == CANCELLED
    assert s.upstream_failed("x", "a") is False
    assert ok(s, "a") is False
    assert s.state_of("a") == FAILED
    assert s.counts() == {FAILED: 1, CANCELLED: 1, SKIPPED: 3}


def test_cancel():
    s = make(CHAIN_AND_BRANCH)
    s.take(0)
    ok(s, "x")
    s.take(1)
    to_cancel = s.cancel()
    assert sorted(to_cancel) == ["a", "y"]
    assert s.state_of("x") == SUCCEEDED  # finished work stays finished
    assert all(s.state_of(n) == CANCELLED for n in ("a", "b", "c", "y"))
    assert s.in_flight == set()
    assert s.done
    assert s.run_status() == "CANCELLED"
    assert s.take(2) == []
    assert ok(s, "a") is False


def test_cancel_before_anything_ran():
    s = make(DIAMOND)
    assert s.cancel() == []
    assert s.counts() == {CANCELLED: 4}
    assert s.run_status() == "CANCELLED"


def test_upstream_failed_reported_by_executor():
    s = make({"a": [], "b": ["a"]}, failure_strategy="continue_on_error", eager=True)
    s.take(0)
    assert s.upstream_failed("b", "a") is True
    assert s.state_of("b") == UPSTREAM_FAILED
    assert s.nodes["b"].error == "upstream 'a' failed"
    assert "b" not in s.in_flight
    assert s.upstream_failed("b", "a") is False
    s.failed("a", "boom", {})
    assert s.done and s.run_status() == "FAILED"


def test_cached_counts_as_success():
    s = make({"a": [], "b": ["a"]})
    s.take(0)
    assert s.succeeded("a", {}, cached=True)
    assert s.state_of("a") == CACHED and s.nodes["a"].cached
    assert s.take(1) == ["b"]
    ok(s, "b")
    assert s.run_status() == "SUCCEEDED"


def test_drain_changed_reports_each_change_once_in_order():
    s = make({"a": [], "b": ["a"]})
    assert s.drain_changed() == []
    s.take(0)
    assert s.drain_changed() == ["a"]
    assert s.drain_changed() == []
    ok(s, "a")
    s.take(1)
    assert s.drain_changed() == ["a", "b"]
    s.failed("b", "boom", {})
    assert s.drain_changed() == ["b"]


def test_meta_applied_and_attempts_from_meta():
    s = make({"a": []})
    s.take(5.0)
    ok(s, "a", attempt=2, node_id="n1", worker_id="w1", cpu_s=0.25, started_at=6.0, ended_at=7.5)
    st = s.nodes["a"]
    assert st.attempts == 3
    assert (st.submitted_at, st.started_at, st.ended_at) == (5.0, 6.0, 7.5)
    assert (st.node_id, st.worker_id, st.cpu_s) == ("n1", "w1", 0.25)
    s2 = make({"a": []})
    s2.take(0)
    ok(s2, "a")
    assert s2.nodes["a"].attempts == 1


@pytest.mark.parametrize("strategy", ["fail_fast", "continue_on_error"])
def test_every_node_ends_terminal_and_done_exactly_once(strategy):
    deps = {f"n{i}": ([f"n{i - 1}"] if i % 3 else []) + ([f"n{i - 2}"] if i >= 2 and i % 4 == 0 else [])
            for i in range(30)}
    s = make(deps, failure_strategy=strategy, max_concurrency=4)
    step = 0
    while not s.done:
        s.take(step)
        for n in sorted(s.in_flight):
            if n == "n7":
                s.failed(n, "boom", {})
            else:
                ok(s, n)
        step += 1
        assert step < 100
    assert sum(s.counts().values()) == 30
    assert PENDING not in s.counts() and RUNNING not in s.counts()
    assert s.run_status() == "FAILED"


def test_cancellations_come_downstream_first():
    dag = Dag({"a": [], "b": ["a"], "c": ["b"]})
    s = RunState(dag, ("a", "b", "c"), eager=True)
    assert s.take(0.0) == ["a", "b", "c"]
    assert s.cancel() == ["c", "b", "a"]


def test_a_stopped_component_is_cancelled_with_its_reason_and_not_a_failure():
    from rayflow.graph import Dag

    dag = Dag({"a": (), "b": ("a",)})
    state = RunState(dag, ("a", "b"), failure_strategy="continue_on_error", eager=True)
    state.take(0.0)
    assert state.stopped("a", "stopped: stage 'b' of its stream failed", {"started_at": 1.0, "ended_at": 2.0})
    assert state.state_of("a") == "CANCELLED" and state.nodes["a"].error.startswith("stopped")
    assert not state.stopped("a", "again", {})
    assert state.errors() == {}


def test_a_submitted_component_has_begun_only_once_told():
    s = make(CHAIN_AND_BRANCH)
    s.take(now=10.0)
    s.drain_changed()
    assert s.nodes["a"].started_at is None                 # handed over, not begun: shown QUEUED
    assert s.began("a", 10.4) and s.nodes["a"].started_at == 10.4
    assert s.drain_changed() == ["a"]                       # its row is written again
    assert not s.began("a", 11.0) and s.nodes["a"].started_at == 10.4   # told once
    assert not s.began("b", 11.0)                           # not submitted
    assert ok(s, "a", started_at=10.45)
    assert not s.began("a", 12.0) and s.nodes["a"].started_at == 10.45  # the call's own start wins
