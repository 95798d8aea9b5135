"""RunHandle over its views, without Ray: the store view, and a handle delegating to any
RunView; the one polling loop with a recording renderer; the states and the config."""

from __future__ import annotations

import time

import pytest

from rayflow.core import config
from rayflow.core.errors import RayflowError, RunCancelled, RunNotFound, WorkflowFailed
from rayflow.core.states import (
    FINAL_COMPONENT_STATES,
    TERMINAL_RUN_STATES,
    ComponentState,
    RunStatus,
)
from rayflow.runs import progress
from rayflow.runs.handle import RunHandle
from rayflow.runs.views import RunView, StoreView
from rayflow.store.memory import MemoryStore
from rayflow.store.port import ComponentRecord, RunRecord


class Backing:
    def __init__(self, lease_s: float = 30.0) -> None:
        self.store = MemoryStore()
        self.writer = None
        self.taken: list[str] = []
        self._lease_s = lease_s

    def lease_s(self) -> float:
        return self._lease_s

    def log_store(self):
        return None   # capture off

    def take_over(self, run_id: str) -> bool:
        """As the service does once it resumed the run: here it just finishes it."""
        self.taken.append(run_id)
        self.store.update_run(run_id, status="SUCCEEDED", owner="here:1:t", heartbeat_at=self.store.db_now())
        return True


def stored(status: str, summary: dict | None = None, states=("SUCCEEDED", "FAILED")) -> tuple[Backing, str]:
    backing = Backing()
    run = RunRecord(run_id="r1", name="w", status=status, created_at=time.time(), summary=summary or {})
    comps = [ComponentRecord(run_id="r1", component_id=f"c{i}", state=s) for i, s in enumerate(states)]
    backing.store.create_run(run, comps)
    return backing, "r1"


def test_a_handle_over_the_store_view_reads_the_store():
    backing, run_id = stored("SUCCEEDED", {"result": 42}, states=("SUCCEEDED", "SUCCEEDED"))
    handle = RunHandle(StoreView(run_id, backing))
    assert isinstance(handle.view, RunView)
    assert handle.run_id == "r1" and handle.status() == "SUCCEEDED"
    assert handle.progress() == {"SUCCEEDED": 2}
    assert handle.stream_progress() == {}
    assert handle.wait(timeout=0) == "SUCCEEDED"
    assert handle.result() == 42


def test_the_store_view_explains_a_failure_a_lost_result_and_a_missing_run():
    backing, run_id = stored("FAILED")
    with pytest.raises(WorkflowFailed):
        RunHandle(StoreView(run_id, backing)).result()
    backing, run_id = stored("SUCCEEDED")
    with pytest.raises(RayflowError, match="not kept"):
        RunHandle(StoreView(run_id, backing)).result()
    backing, run_id = stored("CANCELLED")
    with pytest.raises(RunCancelled):
        RunHandle(StoreView(run_id, backing)).result()
    missing = RunHandle(StoreView("nope", backing))
    with pytest.raises(RunNotFound):
        missing.status()
    with pytest.raises(RunNotFound):
        missing.cancel()


def test_the_store_view_times_out_on_a_live_run():
    backing, run_id = stored("RUNNING")
    with pytest.raises(TimeoutError, match="still RUNNING"):
        StoreView(run_id, backing).wait(timeout=0.05)


def test_the_store_view_takes_over_a_run_whose_driver_is_gone():
    backing = Backing(lease_s=0.3)
    backing.store.insert_run(RunRecord("r1", "w", "RUNNING", created_at=time.time(), owner="gone:1:t",
                                       heartbeat_at=backing.store.db_now() - 10, lease_epoch=1))
    assert StoreView("r1", backing).wait(timeout=30) == "SUCCEEDED"
    assert backing.taken == ["r1"]


def test_the_store_view_leaves_a_live_driver_alone():
    backing = Backing(lease_s=0.3)
    backing.store.insert_run(RunRecord("r1", "w", "RUNNING", created_at=time.time(), owner="live:1:t",
                                       heartbeat_at=backing.store.db_now() + 3600, lease_epoch=1))
    with pytest.raises(TimeoutError):
        StoreView("r1", backing).wait(timeout=1.0)
    assert backing.taken == []


class Scripted:
    """A RunView that finishes after three waits (what the tracker view looks like)."""

    run_id = "s1"

    def __init__(self) -> None:
        self.waits = 0
        self.cancelled = False

    def record(self):
        raise RunNotFound(self.run_id)

    def status(self):
        return "SUCCEEDED" if self.waits >= 3 else "RUNNING"

    def progress(self):
        return {"SUCCEEDED": self.waits, "RUNNING": 3 - self.waits, "FAILED": 0}

    def stream_progress(self):
        return {}

    def metrics(self):
        return {"components": {}}

    def cancel(self):
        self.cancelled = True

    def wait(self, timeout):
        self.waits = 3 if timeout is None else self.waits + 1   # no timeout: blocks to the end
        if self.waits < 3:
            raise TimeoutError
        return "SUCCEEDED"

    def result(self):
        return "value"

    def failure(self):
        return WorkflowFailed(self.run_id, {}, {})


def test_a_handle_only_delegates_to_its_view():
    view = Scripted()
    handle = RunHandle(view)
    assert handle.result(timeout=None) == "value" and view.waits == 3
    handle.cancel()
    assert view.cancelled and handle.components() == {}


def test_one_polling_loop_feeds_any_renderer():
    seen: list[progress.Snapshot] = []
    assert progress.poll(RunHandle(Scripted()), seen.append, poll_s=0) == "SUCCEEDED"
    assert [s.done for s in seen] == [1, 2, 3]
    assert seen[0].running == 2 and seen[0].failed == 0


def test_states_compare_with_stored_strings():
    assert "CANCELLED" in TERMINAL_RUN_STATES and "RUNNING" not in TERMINAL_RUN_STATES
    assert "CACHED" in FINAL_COMPONENT_STATES and "PENDING" not in FINAL_COMPONENT_STATES
    assert RunStatus.FAILED == "FAILED" and str(ComponentState.TIMED_OUT) == "TIMED_OUT"


def test_config_reads_the_environment_when_called(monkeypatch, tmp_path):
    monkeypatch.delenv(config.LEASE_VAR, raising=False)
    assert config.lease_s() == config.DEFAULT_LEASE_S
    monkeypatch.setenv(config.LEASE_VAR, "0.01")
    assert config.lease_s() == config.MIN_LEASE_S
    monkeypatch.setenv(config.LEASE_VAR, "soon")
    assert config.lease_s() == config.DEFAULT_LEASE_S
    monkeypatch.setenv(config.STORE_VAR, "")
    assert config.store_url() is None
    monkeypatch.setenv(config.HOME_VAR, str(tmp_path))
    assert config.home() == tmp_path
    monkeypatch.setenv(config.TRACKER_VAR, "0")
    assert config.tracker_forced() is False
    monkeypatch.setenv(config.TRACKER_VAR, "yes")
    assert config.tracker_forced() is None
    monkeypatch.setenv(config.STREAM_PROGRESS_VAR, "0")
    assert not config.stream_progress()
    monkeypatch.setenv(config.GC_VAR, "TUNE")
    assert config.gc_mode() == "tune"
