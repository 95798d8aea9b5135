"""RunState.rerun / RunState.task: a component run again with another task is a state
transition (the plan's tasks stay as planned)."""

from __future__ import annotations

from rayflow.execute.state import RunState
from rayflow.graph import Dag


def test_rerun_keeps_the_node_running_and_its_new_task():
    planned = {"a": "task-a", "b": "task-b"}
    state = RunState(Dag({"a": (), "b": ("a",)}), ("a", "b"), tasks=planned)
    assert state.task("a") == "task-a"
    assert not state.rerun("a", "bigger-a")            # not in flight yet: nothing changes
    assert state.take(0.0) == ["a"]
    assert state.rerun("a", "bigger-a") and state.state_of("a") == "RUNNING"
    assert state.task("a") == "bigger-a" and state.task("b") == "task-b"
    assert state.nodes["a"].resubmitted == 1 and planned == {"a": "task-a", "b": "task-b"}
    state.drain_changed()
    state.succeeded("a", {"attempt": 0})
    assert state.nodes["a"].attempts == 2
    assert not state.rerun("a", "again")                # final: a late completion
    assert state.task("a") == "bigger-a" and state.nodes["a"].resubmitted == 1
