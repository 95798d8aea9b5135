"""The command line as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO

ROOT = REPO
EXAMPLE = ROOT / "rayflow" / "examples" / "etl.yaml"


def rayflow(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rayflow.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["RAYFLOW_STORE"] = f"sqlite:///{tmp_path / 'cli.db'}"
    e.pop("RAY_ADDRESS", None)
    return e


BAD_SPECS = {
    "cycle": ("""
components:
  - {id: a, function: rayflow.examples.etl:load}
  - {id: b, function: rayflow.examples.etl:clean}
  - {id: c, function: rayflow.examples.etl:clean}
connections:
  - {from: a, to: b, port: table}
  - {from: b, to: c, port: table}
  - {from: c, to: b, port: table}
""", ["cycle", "b -> c -> b"]),
    "missing_function": ("""
components:
  - {id: loader, function: rayflow.examples.etl:no_such_function}
""", ["loader", "no_such_function"]),
    "negative_cpus": ("""
components:
  - id: loader
    function: rayflow.examples.etl:load
    resources: {num_cpus: -1}
""", ["loader", "num_cpus", "-1"]),
    "unknown_port": ("""
components:
  - {id: load, function: rayflow.examples.etl:load}
  - {id: cleaner, function: rayflow.examples.etl:clean}
connections:
  - {from: load, to: cleaner, port: tabel}
""", ["cleaner", "tabel"]),
    "unknown_connection": ("""
components:
  - {id: load, function: rayflow.examples.etl:load}
connections:
  - {from: load, to: nowhere}
""", ["nowhere"]),
    "bad_memory": ("""
components:
  - id: loader
    function: rayflow.examples.etl:load
    resources: {memory: lots}
""", ["loader", "memory", "lots"]),
    "not_yaml": ("components: [", ["not valid YAML"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_invalid_specs_print_one_line_and_exit_2(case, tmp_path, env):
    text, needles = BAD_SPECS[case]
    spec = tmp_path / f"{case}.yaml"
    spec.write_text(text)
    proc = rayflow("run", str(spec), env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_infeasible_resources_are_rejected_before_running(tmp_path, env):
    spec = tmp_path / "big.yaml"
    spec.write_text("components:\n  - id: huge\n    function: rayflow.examples.etl:load\n"
                    "    resources: {num_cpus: 64}\n")
    proc = rayflow("run", str(spec), env=env)
    assert proc.returncode == 2
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error and "component 'huge' needs 64 CPUs, largest node has" in error[0]


def test_help_on_every_command(env):
    for cmd in ([], ["run"], ["submit"], ["status"], ["runs"], ["cancel"], ["resume"], ["explain"], ["report"]):
        proc = rayflow(*cmd, "--help", env=env)
        assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_explain_prints_levels_and_critical_path(env):
    proc = rayflow("explain", str(EXAMPLE), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Critical path" in proc.stdout and "clean_even, clean_odd" in proc.stdout
    data = json.loads(rayflow("explain", "rayflow.examples.etl:pipeline", "-i", "parts=3", "--json", env=env).stdout)
    assert data["levels"] == [["load"], ["clean_0", "clean_1", "clean_2"], ["total"]]


def test_unknown_run_exits_2(env):
    for cmd in (["status", "nope"], ["cancel", "nope"], ["report", "nope"]):
        proc = rayflow(*cmd, env=env)
        assert proc.returncode == 2 and "no run with id 'nope'" in proc.stderr


def expected_etl(n: int) -> dict:
    from rayflow.examples.etl import clean, load, total

    table = load(n)  # components called outside a workflow run the plain functions
    return total(*(clean(table, part=i, parts=2) for i in range(2)))


@pytest.mark.slow
def test_run_example_spec_and_python_workflow(env):
    expected = expected_etl(500)
    proc = rayflow("run", str(EXAMPLE), "-i", "n=500", "--json", env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "SUCCEEDED"
    assert out["result"] == expected
    proc = rayflow("run", "rayflow.examples.etl:pipeline", "-i", "n=500", "-q", env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.slow
def test_failed_run_exits_1(tmp_path, env):
    spec = tmp_path / "fails.yaml"
    spec.write_text("components:\n  - id: bad\n    function: tests.fns.execute:boom\n")
    proc = rayflow("run", str(spec), "--executor", "local", env=env)
    assert proc.returncode == 1
    assert "bad" in proc.stderr and "ValueError: boom" in proc.stderr


@pytest.mark.slow
def test_submit_then_status_from_another_process(env):
    proc = rayflow("submit", str(EXAMPLE), "-i", "n=300", env=env)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    deadline = time.monotonic() + 180
    status = None
    while time.monotonic() < deadline:
        shown = rayflow("status", run_id, "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        if status["run"]["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.5)
    assert status["run"]["status"] == "SUCCEEDED"
    comps = status["metrics"]["components"]
    assert set(comps) == {"load", "clean_even", "clean_odd", "total"}
    for comp in comps.values():
        assert comp["state"] == "SUCCEEDED"
        assert comp["duration_s"] is not None and comp["started_at"] and comp["ended_at"]
    table = rayflow("status", run_id, env=env)
    assert "SUCCEEDED" in table.stdout and "clean_even" in table.stdout
    runs = json.loads(rayflow("runs", "--json", env=env).stdout)
    assert runs[0]["run_id"] == run_id


def test_stats_over_runs_in_the_store(tmp_path, env):
    from rayflow.store.port import ComponentRecord, RunRecord
    from rayflow.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "cli.db")
    store.create_run(RunRecord("r1", "wf", "SUCCEEDED", created_at=1.0, started_at=1.0, ended_at=3.0), [
        ComponentRecord("r1", "load", "SUCCEEDED", attempts=2, started_at=1.5, ended_at=2.5, duration_s=1.0,
                        queued_s=0.5, resources={"num_cpus": 2.0}, cpu_s=0.4, peak_rss_bytes=50 * 2**20)])
    store.close()
    data = json.loads(rayflow("stats", "--json", env=env).stdout)
    assert data["runs"] == 1 and data["retries"] == 1
    assert data["by_component"]["wf/load"]["requested_cpu_s"] == 2.0
    assert data["by_component"]["wf/load"]["cpu_utilization"] == 0.2
    table = rayflow("stats", env=env)
    assert table.returncode == 0 and "load" in table.stdout and "50 MiB" in table.stdout
