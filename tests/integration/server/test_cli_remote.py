"""``rayflow --server URL ...`` against a real server on a loopback port: the same output
and exit codes as the local commands, over HTTP; one process that never imports ray; and
``rayflow run``/``submit`` finding a server on this machine by themselves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from rayflow.cli import main as cli_main
from rayflow.cli import remote
from rayflow.core import config
from tests.helpers import REPO
from tests.support import server as support

live_server, token_server = support.live_server, support.token_server   # the fixtures, by name

PAIR = {"name": "pair", "inputs": {"n": 3},
        "components": [{"id": "a", "function": "tests.fns.basic:source", "config": {"n": {"$input": "n"}}},
                       {"id": "b", "function": "tests.fns.basic:double"}],
        "connections": [{"from": "a", "to": "b"}]}
FAILS = {"name": "fails", "components": [{"id": "bad", "function": "tests.fns.execute:boom"}]}
CYCLE = {"components": [{"id": "a", "function": "tests.fns.execute:inc"}, {"id": "b", "function": "tests.fns.execute:inc"}],
         "connections": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]}


@pytest.fixture
def specs(tmp_path):
    out = {}
    for name, spec in (("pair", PAIR), ("fails", FAILS), ("cycle", CYCLE)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        out[name] = str(path)
    return out


@pytest.fixture
def cli(monkeypatch):
    """Invoke ``rayflow``; RAYFLOW_SERVER and RAYFLOW_TOKEN unset unless a test sets them.
    The probe for a server on this machine waits longer than 0.2 s: a busy CI box is slow."""
    monkeypatch.delenv(config.SERVER_VAR, raising=False)
    monkeypatch.delenv(config.TOKEN_VAR, raising=False)
    monkeypatch.setattr(remote, "PROBE_S", 5.0)
    runner = CliRunner()

    def invoke(*args: str, env: dict | None = None):
        return runner.invoke(cli_main.cli, list(args), env=env, catch_exceptions=False)

    return invoke


def test_submit_status_runs_report_over_http(cli, live_server, specs, tmp_path):
    url = live_server.url
    submitted = cli("--server", url, "submit", specs["pair"], "-i", "n=4")
    assert submitted.exit_code == 0, submitted.output
    run_id = submitted.stdout.strip()
    assert live_server.store.get_run(run_id) is not None           # the server's store has it
    done = cli("--server", url, "run", specs["pair"], "-i", "n=5", "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["status"] == "SUCCEEDED" and out["result"] == 10 and set(out["metrics"]["components"]) == {"a", "b"}
    shown = json.loads(cli("--server", url, "status", out["run_id"], "--json").stdout)
    assert shown["run"]["status"] == "SUCCEEDED" and shown["metrics"]["components"]["b"]["state"] == "SUCCEEDED"
    table = cli("--server", url, "status", out["run_id"])
    assert "SUCCEEDED" in table.stdout and "critical path" in table.stdout
    listed = json.loads(cli("--server", url, "runs", "--json", "--limit", "5").stdout)
    assert [r["run_id"] for r in listed][0] == out["run_id"] and run_id in [r["run_id"] for r in listed]
    succeeded = json.loads(cli("--server", url, "runs", "--status", "succeeded", "--json").stdout)
    assert {r["status"] for r in succeeded} == {"SUCCEEDED"} and out["run_id"] in [r["run_id"] for r in succeeded]
    assert "Runs on http://127.0.0.1" in cli("--server", url, "runs").stdout
    page = tmp_path / "report.html"
    written = cli("--server", url, "report", out["run_id"], "--html", str(page))
    assert written.exit_code == 0 and "<html" in page.read_text().lower()
    assert json.loads(cli("--server", url, "report", out["run_id"], "--json").stdout)["critical_path"]


def test_run_prints_the_result_and_exits_as_the_local_run_does(cli, live_server, specs):
    env = {config.SERVER_VAR: live_server.url}
    quiet = cli("run", specs["pair"], "-q", env=env)
    assert quiet.exit_code == 0 and quiet.stdout.strip() == "6"
    table = cli("run", specs["pair"], env=env)
    assert table.exit_code == 0 and "result: 6" in table.stdout and "SUCCEEDED" in table.stdout
    failed = cli("run", specs["fails"], "-q", env=env)
    assert failed.exit_code == 1
    assert failed.stderr.startswith("failed: run ") and "bad" in failed.stderr and "boom" in failed.stderr
    invalid = cli("run", specs["cycle"], env=env)
    assert invalid.exit_code == 2 and invalid.stderr.count("\n") == 1 and "cycle" in invalid.stderr


def test_cancel_and_resume_over_http(cli, live_server):
    url = live_server.url
    slow = {"name": "slow", "components": [
        {"id": "s1", "function": "tests.fns.execute:sleepy", "config": {"seconds": 0.5, "value": 1}},
        {"id": "s2", "function": "tests.fns.execute:sleepy", "config": {"seconds": 0.1}}],
        "connections": [{"from": "s1", "to": "s2", "port": "value"}]}
    from rayflow.client import Client

    handle = Client(url).submit(slow)
    cancelled = cli("--server", url, "cancel", handle.run_id)
    assert cancelled.exit_code == 0 and cancelled.stdout.strip() == f"cancel requested for {handle.run_id}"
    assert handle.wait(timeout=30) == "CANCELLED"
    resumed = cli("--server", url, "resume", handle.run_id, "-q")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout.strip() == f"{handle.run_id}: SUCCEEDED"


def test_errors_are_one_line_with_the_documented_exit_codes(cli, live_server, specs):
    url = live_server.url
    for cmd in (["status", "nope"], ["cancel", "nope"], ["report", "nope"]):
        out = cli("--server", url, *cmd)
        assert out.exit_code == 2 and out.stderr == "error: no run with id 'nope' in the run store\n"
    both = cli("--server", url, "status", "x", "--store", "memory://")
    assert both.exit_code == 2 and "--store" in both.stderr
    down = cli("--server", "http://127.0.0.1:9", "status", "x")
    assert down.exit_code == 1 and down.stderr.startswith("error: cannot reach rayflow server at http://127.0.0.1:9")


def test_a_token_server_refuses_a_bad_token_without_printing_it(cli, token_server, specs):
    url = token_server.url
    wrong = "rf_wrong-token-value"
    refused = cli("--server", url, "--token", wrong, "runs")
    assert refused.exit_code == 2 and wrong not in refused.output and "token" in refused.stderr
    good = token_server.token("submit")
    ran = cli("--server", url, "run", specs["pair"], "-q", env={config.TOKEN_VAR: good})
    assert ran.exit_code == 0 and ran.stdout.strip() == "6" and good not in ran.output


def test_run_and_submit_find_a_server_on_this_machine(cli, live_server, specs, monkeypatch, service):
    monkeypatch.setattr(config, "DEFAULT_SERVER_URL", live_server.url)
    assert remote.detect() == live_server.url
    found = cli("run", specs["pair"], "-q")
    assert found.exit_code == 0 and found.stdout.strip() == "6"
    submitted = cli("submit", specs["pair"])
    run_id = submitted.stdout.strip()
    assert f"via rayflow server at {live_server.url}" in submitted.stderr
    assert live_server.store.get_run(run_id) is not None
    spawned = []
    monkeypatch.setattr(cli_main, "_spawn_driver", lambda *args: spawned.append(args))
    here = cli("submit", specs["pair"], "--local")                    # recorded here, driven by a local process
    assert here.exit_code == 0, here.output
    local_id = here.stdout.strip()
    assert spawned and spawned[0][0] == local_id and live_server.store.get_run(local_id) is None
    assert service.store.get_run(local_id) is not None
    monkeypatch.setattr(config, "DEFAULT_SERVER_URL", "http://127.0.0.1:9")   # nothing listens there
    assert remote.detect() is None


def test_token_create_list_revoke(cli, tmp_path):
    from rayflow.cli import admin
    from rayflow.server import tokens

    assert admin.SCOPES == tokens.SCOPES
    store = f"sqlite:///{tmp_path / 'tokens.db'}"
    made = cli("token", "create", "--scope", "read", "--name", "ci", "--store", store)
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("rf_") and "\n" not in secret
    listed = json.loads(cli("token", "list", "--json", "--store", store).stdout)
    assert len(listed) == 1 and listed[0]["name"] == "ci" and listed[0]["scope"] == "read"
    assert listed[0]["token_id"] in made.stderr and secret not in made.stderr
    assert set(listed[0]) == {"token_id", "name", "scope", "created_at", "revoked_at"}
    table = cli("token", "list", "--store", store).stdout
    assert "ci" in table and secret not in table and tokens.hash_token(secret) not in table
    assert cli("token", "revoke", listed[0]["token_id"], "--store", store).exit_code == 0
    assert json.loads(cli("token", "list", "--json", "--store", store).stdout)[0]["revoked_at"] is not None
    unknown = cli("token", "revoke", "nope", "--store", store)
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error: no live token with id 'nope'")
    assert cli("token", "create", "--scope", "root", "--store", store).exit_code == 2


def test_server_refuses_a_public_address_without_tokens(cli):
    out = cli("server", "--host", "0.0.0.0", "--auth", "none", "--store", "memory://", "--executor", "local")
    assert out.exit_code == 2 and out.stderr.count("\n") == 1 and "--host 0.0.0.0" in out.stderr


def test_a_found_server_that_cannot_take_the_run_leaves_it_here(cli, token_server, specs, monkeypatch, service):
    monkeypatch.setattr(config, "DEFAULT_SERVER_URL", token_server.url)
    monkeypatch.setattr(cli_main, "_spawn_driver", lambda *args: None)
    out = cli("submit", specs["pair"])                                 # no token: the server says 401
    assert out.exit_code == 0, out.output
    assert "cannot run it" in out.stderr and service.store.get_run(out.stdout.strip()) is not None


HOOK = """
import atexit, json, sys
def report():
    loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith(("ray.", "pyarrow", "rayflow.service",
                    "rayflow.server", "rayflow.runs", "rayflow.execute", "rayflow.plan", "fastapi")))
    print("LOADED " + json.dumps(loaded))
atexit.register(report)
sys.argv = ["rayflow"] + sys.argv[1:]
from rayflow.cli.main import main
main()
"""


def test_the_remote_commands_never_import_ray_in_their_process(live_server, specs, tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k not in (config.SERVER_VAR, config.TOKEN_VAR)}
    for args in (["--server", live_server.url, "run", specs["pair"], "-q"],
                 ["--server", live_server.url, "runs", "--json"]):
        proc = subprocess.run([sys.executable, "-c", HOOK, *args], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=60)
        assert proc.returncode == 0, proc.stderr
        loaded = json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("LOADED "))
        assert loaded == [], loaded
    assert proc.stdout.splitlines()[0].startswith("[")
