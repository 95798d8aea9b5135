"""What each attempt prints and logs, captured in the worker and read back on every
surface (``h.logs``, ``rayflow logs``, the run's failure), on both executors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import psutil
import pytest

import rayflow as rf
from tests.fns import logs as fns
from tests.helpers import REPO

WARNING = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING tests\.chatty: careful with 3")


@pytest.fixture(params=["local", "ray"])
def executor(request, service):
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param


def cli(*args: str, store_url: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, on this process's store and log location (an earlier test
    may have pointed this process's service at other checkpoints)."""
    from rayflow.service import get_service

    logs = get_service().log_store()
    env = {**os.environ, "RAYFLOW_STORE": store_url, "RAYFLOW_LOGS": logs.url if logs is not None else "off"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "rayflow.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


def store_url_dir(store_url: str):
    from pathlib import Path

    return Path(store_url.removeprefix("sqlite:///")).parent


def test_ten_lines_and_a_warning_read_back_exactly(executor, service, store_url):
    h = rf.submit(fns.talk, executor=executor, x=3)
    assert h.result(timeout=120) == 8
    text = h.logs("chatty")
    lines = text.splitlines()
    assert lines[:10] == fns.LINES
    assert WARNING.fullmatch(lines[10]), lines[10:]
    assert len(lines) == 11 and text.endswith("\n")
    assert h.logs("quiet") == ""   # printed nothing
    assert rf.get_run(h.run_id).logs("chatty") == text   # a handle from the store reads the same
    shown = cli("logs", h.run_id, "chatty", store_url=store_url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == text
    every = cli("logs", h.run_id, store_url=store_url)
    assert every.returncode == 0 and "=== chatty (attempt 1, SUCCEEDED) ===" in every.stdout
    assert fns.LINES[9] in every.stdout and "=== quiet" not in every.stdout
    assert api_log(h.run_id, "chatty") == text     # the server's API (and so the web UI) reads the same


def api_log(run_id: str, component: str) -> str:
    """GET .../logs from a server over this process's service (its store and log location)."""
    from fastapi.testclient import TestClient

    from rayflow.server.main import build
    from rayflow.service import get_service

    server = build(executor="local", auth="none", service=get_service())   # serves only: its runner never starts
    with TestClient(server.app) as client:
        r = client.get(f"/v1/runs/{run_id}/components/{component}/logs")
    assert r.status_code == 200, r.text
    return r.text


def test_each_attempt_of_a_retried_component_keeps_its_own_lines(executor, service, tmp_path):
    h = rf.submit(fns.retried, executor=executor, ledger=str(tmp_path / "ledger"))
    assert h.result(timeout=120) == "ok"
    assert h.metrics()["components"]["flaky_chatty"]["attempts"] == 2
    assert h.logs("flaky_chatty", attempt=1) == "this is attempt 1\nfailing now\n"
    assert h.logs("flaky_chatty", attempt=2) == "this is attempt 2\n"
    assert h.logs("flaky_chatty") == "this is attempt 2\n"
    with pytest.raises(rf.ComponentNotFound, match="no attempt 3"):
        h.logs("flaky_chatty", attempt=3)
    with pytest.raises(rf.ComponentNotFound, match="no component 'nope'"):
        h.logs("nope")


def test_a_100_mib_log_keeps_its_tail_within_the_bound_and_not_in_the_driver(executor, service):
    bound = 1 << 20   # RAYFLOW_LOG_MAX_BYTES's default
    driver = psutil.Process()
    before = driver.memory_info().rss
    h = rf.submit(fns.big, executor=executor, mib=100)
    assert h.result(timeout=300) == 100
    grown = driver.memory_info().rss - before
    text = h.logs("loud")
    head, _, kept = text.partition("\n")
    assert head.startswith("[rayflow: the first ") and "bytes of this log were cut" in head
    assert len(kept.encode()) <= bound
    lines = kept.splitlines()
    assert lines[-1].startswith(f"{100 * 1024 - 1:06d} y") and len(lines) >= 1000
    numbers = [int(x[:6]) for x in lines]
    assert numbers == list(range(numbers[0], 100 * 1024))   # the tail, whole lines, nothing lost inside it
    assert grown < 40 * 2**20, f"the driver grew by {grown / 2**20:.0f} MiB for a 100 MiB log"


def test_a_running_components_log_can_be_followed(service, ray_session):
    h = rf.submit(fns.follow, executor="ray", seconds=5.0)
    seen_running = ""
    deadline = time.time() + 60
    while h.status() not in ("SUCCEEDED", "FAILED") and time.time() < deadline:
        state = h.metrics()["components"]["slow_talker"]["state"]
        text = h.logs("slow_talker")
        if state == "RUNNING" and text:
            seen_running = text
        time.sleep(0.3)
    n = h.result(timeout=60)
    assert seen_running.startswith("tick 0\n"), "nothing was readable while the component ran"
    assert h.logs("slow_talker").splitlines() == [f"tick {i}" for i in range(n)]


def test_a_failure_shows_the_users_traceback_and_log_tail_everywhere(executor, service, store_url):
    h = rf.submit(fns.broken, executor=executor, x=1)
    with pytest.raises(rf.WorkflowFailed) as info:
        h.result(timeout=120)
    error = info.value.errors["fails_loudly"]
    assert error.startswith("KeyError: 'b'\nTraceback (most recent call last):")
    assert 'return _lookup({}, "b")' in error and "return d[key]" in error   # the user's frames, in order
    assert error.index("in fails_loudly") < error.index("in _lookup")
    assert "rayflow/execute" not in error and "frame(s) of rayflow itself not shown" in error
    assert error.endswith("about to look up 'b'")   # the log's tail
    assert "return d[key]" in str(info.value)        # the message shows it too (below its first line)
    # the store (any process): status --json, the events, the report
    status = cli("status", h.run_id, "--json", store_url=store_url)
    comp = json.loads(status.stdout)["metrics"]["components"]["fails_loudly"]
    assert "return d[key]" in comp["traceback"] and comp["error"] == "KeyError: 'b'"
    failed = [e for e in service.store.get_events(h.run_id) if e.component_id == "fails_loudly"]
    assert failed and "return d[key]" in failed[-1].data["traceback"]
    page = store_url_dir(store_url) / "report.html"
    report = cli("report", h.run_id, "--html", str(page), store_url=store_url)
    assert report.returncode == 0, report.stderr
    assert "return d[key]" in page.read_text()
    # the CLI's failure message carries it
    stored = rf.get_run(h.run_id)
    with pytest.raises(rf.WorkflowFailed) as again:
        stored.result(timeout=10)
    assert again.value.errors["fails_loudly"] == error
