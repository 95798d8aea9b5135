"""What a new user hit on first use, each checked as they met it (issue: a web UI and
attempts' logs, "What a new user hit"). The traceback on every surface is checked in
tests/integration/logs/test_attempt_logs.py."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO


def rayflow(*args: str, env: dict, cwd=REPO, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rayflow.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=cwd)


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["RAYFLOW_STORE"] = f"sqlite:///{tmp_path / 'cli.db'}"
    e.pop("RAY_ADDRESS", None)
    e.pop("PYTHONPATH", None)   # as a user's shell: only the installed package, and the spec's own folder
    return e


@pytest.mark.slow
def test_json_and_quiet_output_parse_although_components_print(env):
    """Ray used to forward what workers print to the driver's stdout, after the summary."""
    out = rayflow("run", "tests.fns.logs:talk", "-i", "x=3", "--json", "--local", env={**env, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)   # the whole stdout is the one JSON document
    assert data["status"] == "SUCCEEDED" and data["result"] == 8
    assert "line 0" not in out.stdout and "line 0" not in out.stderr
    quiet = rayflow("run", "tests.fns.logs:talk", "-i", "x=3", "-q", "--local", env={**env, "PYTHONPATH": str(REPO)})
    assert quiet.returncode == 0 and quiet.stdout == "8\n"


MODULE = textwrap.dedent('''
    def load(n: int = 3) -> dict:
        print("loading", n)
        return {"n": n}

    def total(d: dict) -> int:
        return d["n"] * 2
''')
SPEC = textwrap.dedent('''
    name: beside
    components:
      - {id: load, function: "mywf_beside:load", config: {n: 4}}
      - {id: total, function: "mywf_beside:total"}
    connections:
      - {from: load, to: total}
    outputs: total
''')


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_spec_imports_the_modules_beside_it_from_any_folder(tmp_path, env, executor):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "mywf_beside.py").write_text(MODULE)
    (folder / "flow.yaml").write_text(SPEC)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = rayflow("run", str(folder / "flow.yaml"), "--executor", executor, "--json", "--local", env=env, cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == 8


def test_runs_shows_whole_run_ids_in_80_columns(env):
    from rayflow.store.port import RunRecord
    from rayflow.store.sqlite import SqliteStore

    store = SqliteStore(env["RAYFLOW_STORE"].removeprefix("sqlite:///"))
    ids = ["daily-features-20261203-125258-bb81f6a8a1bd", "wf-20261203-125258-4f0679165f40"]
    for i, rid in enumerate(ids):
        store.create_run(RunRecord(rid, rid.rsplit("-", 3)[0], "SUCCEEDED", created_at=1.0 + i), [])
    store.close()
    out = rayflow("runs", env={**env, "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    for rid in ids:
        assert rid in out.stdout
    table = out.stdout.splitlines()[1:]   # below the title (the store's URL, as long as it is)
    assert max(len(line) for line in table) <= 80, out.stdout


def test_a_yaml_syntax_error_names_its_line_and_column(tmp_path, env):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncomponents:\n  - id: a\n    function: m:f\n   bad: [\n")
    out = rayflow("run", str(bad), "--local", env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: spec {str(bad)!r} is not valid YAML: expected <block end>, but found "
                                  "'<block mapping start>' at line 5 column 4 (while parsing a block collection "
                                  "at line 3 column 3)")


def test_resume_prints_the_table_and_the_result(tmp_path, env):
    flag = tmp_path / "fail-once"
    flag.write_text("x")
    spec = tmp_path / "once.yaml"
    spec.write_text(textwrap.dedent(f'''
        name: once
        components:
          - {{id: a, function: "tests.fns.logs:fail_while_flag", config: {{flag: "{flag}", value: 21}}}}
          - {{id: b, function: "tests.fns.basic:double"}}
        connections:
          - {{from: a, to: b}}
        outputs: b
    '''))
    env = {**env, "PYTHONPATH": str(REPO)}
    first = rayflow("run", str(spec), "--executor", "local", "--local", "--json", env=env)
    assert first.returncode == 1, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    flag.unlink()
    resumed = rayflow("resume", run_id, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Run {run_id}: SUCCEEDED" in resumed.stdout and "result: 42" in resumed.stdout
    assert resumed.stdout.rstrip().endswith(f"{run_id}: SUCCEEDED")


def test_predict_show_learns_the_history_it_has_not_seen(env, tmp_path):
    env = {**env, "PYTHONPATH": str(REPO)}

    def runs(n: int) -> None:
        for _ in range(n):
            out = rayflow("run", "tests.fns.logs:talk", "--executor", "local", "--local", "-q", env=env)
            assert out.returncode == 0, out.stderr

    runs(5)
    trained = rayflow("predict", "train", env=env)
    assert trained.returncode == 0 and "trained on 10 attempts" in trained.stdout, trained.stdout
    runs(3)   # newer than the saved model: each run refits it before its process exits, else show does
    shown = rayflow("predict", "show", "chatty", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "from the model (8 samples)" in shown.stdout, shown.stdout
    assert "the model was trained now" not in shown.stdout or "8 of tests.fns.logs:chatty" in shown.stdout


def test_the_dev_extra_runs_the_notebooks_headless():
    extra = [r for r in importlib.metadata.requires("rayflow") or [] if 'extra == "dev"' in r]
    assert any(r.startswith("nbconvert") for r in extra), extra
    out = subprocess.run([sys.executable, "-m", "nbconvert", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip()
