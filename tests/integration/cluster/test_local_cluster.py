"""rayflow on a real two-node Ray cluster (cluster/local.sh): placement and `ray job submit`.

The cluster runs on non-default ports with its own state folder, is started once for the
module and is always stopped at the end, by process group (never `ray stop`, which would
end every Ray instance on the machine). Everything that talks to the cluster runs in a
subprocess: this pytest process may hold its own local Ray session and never joins it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO, free_port

pytestmark = pytest.mark.slow

ROOT = REPO
LOCAL_SH = ROOT / "cluster" / "local.sh"
PLACEMENT = "rayflow/examples/placement.yaml"
VENV_BIN = Path(sys.executable).parent


def _port(preferred: int) -> int:
    """``preferred`` if it is free here, else any free port (another session may hold it)."""
    for candidate in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("", candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 120
JOB_TIMEOUT_S = 240

NODES_SCRIPT = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([{"node_id": n["NodeID"], "alive": n["Alive"], "resources": n["Resources"]}
                  for n in ray.nodes()]))
"""


@dataclass
class Cluster:
    address: str
    dashboard: str
    env: dict
    dir: Path
    node_b: str          # the node offering the custom resource node_b
    nodes: list[str]     # every alive node


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"({path} unreadable)"


def _sh(args: list[str], env: dict, timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)


def _explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


def _json_line(text: str) -> dict:
    """The JSON object the CLI printed (the last line that parses as one)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON object in the output:\n{text[-4000:]}")


def _kill_leftovers(state: Path) -> None:
    """SIGKILL the process groups of nodes that `local.sh stop` did not get to (it was interrupted)."""
    for pgid_file in state.glob("*.pgid"):
        try:
            os.killpg(int(pgid_file.read_text().strip()), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        pgid_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    if shutil.which("bash") is None:
        pytest.skip("cluster/local.sh needs bash")
    state = tmp_path_factory.mktemp("local-cluster")
    head_port = _port(int(os.environ.get("RAYFLOW_TEST_HEAD_PORT", "6392")))
    dashboard_port = _port(int(os.environ.get("RAYFLOW_TEST_DASHBOARD_PORT", "8277")))
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAYFLOW_STORE"}}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",   # the raylets' python: this venv's
        RAYFLOW_CLUSTER_DIR=str(state),
        RAYFLOW_HEAD_PORT=str(head_port),
        RAYFLOW_DASHBOARD_PORT=str(dashboard_port),
        RAY_AUTH_MODE="token",          # clusters from `ray start` require the token (~/.ray/auth_token)
        RAYFLOW_SERVER_PORT=str(free_port()),   # its server: never the machine's 8470
    )
    try:
        try:
            proc = _sh(["bash", str(LOCAL_SH), "start"], env, START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"cluster did not start in {START_TIMEOUT_S}s\n{_tail(state / 'head.log')}\n{_tail(state / 'node_b.log')}")
        if proc.returncode != 0:
            pytest.fail(f"cluster/local.sh start failed: {_explain(proc)}\n--- head.log\n{_tail(state / 'head.log')}"
                        f"\n--- node_b.log\n{_tail(state / 'node_b.log')}")
        address = (state / "address").read_text().strip()
        nodes_proc = _sh([sys.executable, "-c", NODES_SCRIPT, address], env, 90)
        assert nodes_proc.returncode == 0, _explain(nodes_proc)
        nodes = json.loads(nodes_proc.stdout.strip().splitlines()[-1])
        alive = [n for n in nodes if n["alive"]]
        offering = [n["node_id"] for n in alive if n["resources"].get("node_b")]
        assert len(alive) == 2 and len(offering) == 1, nodes
        yield Cluster(address=address, dashboard=f"http://127.0.0.1:{dashboard_port}", env=env, dir=state,
                      node_b=offering[0], nodes=[n["node_id"] for n in alive])
    finally:
        try:
            stop = _sh(["bash", str(LOCAL_SH), "stop"], env, STOP_TIMEOUT_S)
        finally:
            _kill_leftovers(state)   # `stop` removes the files it handled; anything left gets SIGKILL
        assert stop.returncode == 0, _explain(stop)


def _rayflow(cluster: Cluster, *args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return _sh([sys.executable, "-m", "rayflow.cli.main", *args], cluster.env, timeout)


def _check_placement(cluster: Cluster, components: dict) -> None:
    assert components["on_node_b"]["state"] == "SUCCEEDED"
    assert components["on_node_b"]["node_id"] == cluster.node_b
    for cid in ("anywhere", "where"):
        assert components[cid]["state"] == "SUCCEEDED"
        assert components[cid]["node_id"] in cluster.nodes, (cid, components[cid])


def test_run_with_address_places_the_component_on_node_b(cluster, tmp_path):
    store = f"sqlite:///{tmp_path / 'c.db'}"
    proc = _rayflow(cluster, "run", PLACEMENT, "--address", cluster.address, "--store", store, "--json")
    assert proc.returncode == 0, _explain(proc)
    out = _json_line(proc.stdout)
    assert out["status"] == "SUCCEEDED"
    _check_placement(cluster, out["metrics"]["components"])
    # The component's own view agrees with what rayflow recorded.
    assert out["result"]["on_node_b"]["node_id"] == cluster.node_b
    assert out["result"]["anywhere"]["node_id"] == out["metrics"]["components"]["anywhere"]["node_id"]

    # Another process reads the same run from the store.
    status = _rayflow(cluster, "status", out["run_id"], "--store", store, "--json")
    assert status.returncode == 0, _explain(status)
    recorded = _json_line(status.stdout)
    assert recorded["run"]["status"] == "SUCCEEDED"
    _check_placement(cluster, recorded["metrics"]["components"])


def test_request_no_node_offers_is_rejected_before_running(cluster, tmp_path):
    spec = (ROOT / PLACEMENT).read_text().replace("node_b: 1", "node_c: 1")
    path = tmp_path / "placement_c.yaml"
    path.write_text(spec)
    store = f"sqlite:///{tmp_path / 'c.db'}"
    proc = _rayflow(cluster, "run", str(path), "--address", cluster.address, "--store", store, "--json")
    assert proc.returncode == 2, _explain(proc)
    assert "on_node_b" in proc.stderr and "node_c" in proc.stderr, _explain(proc)
    runs = _rayflow(cluster, "runs", "--store", store, "--json")
    assert runs.returncode == 0 and json.loads(runs.stdout.strip().splitlines()[-1]) == [], _explain(runs)


def test_ray_job_submit_records_the_run_in_the_store(cluster, tmp_path):
    db = tmp_path / "job.db"
    store = f"sqlite:///{db}"          # absolute, on this machine: the job's driver runs here too
    submission_id = f"rayflow-test-{uuid.uuid4().hex[:8]}"
    # rayflow is installed in the cluster's Python (its PATH is the venv), so the job needs
    # no working-dir upload; the spec is named by its absolute path on this machine.
    # (Uploading the repository with --working-dir also works, as cluster/README.md shows,
    # but Ray 2.60 here sometimes garbage-collects the unpacked copy while the job runs.)
    cmd = [str(VENV_BIN / "ray"), "job", "submit", "--address", cluster.dashboard,
           "--submission-id", submission_id, "--",
           "python", "-m", "rayflow.cli.main", "run", str(ROOT / PLACEMENT), "--store", store, "--json"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        try:
            proc = _sh(cmd, cluster.env, max(10.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _sh([str(VENV_BIN / "ray"), "job", "stop", "--address", cluster.dashboard, submission_id], cluster.env, 60)
            raise
        # Just after start the head's job agent may not be registered yet; Ray says to retry.
        if "No available agent" not in proc.stderr + proc.stdout or time.monotonic() > deadline - 60:
            break
        time.sleep(3)
    assert proc.returncode == 0, _explain(proc)
    assert "succeeded" in proc.stdout + proc.stderr, _explain(proc)

    # Read the store from other processes, as a user would after the job ends.
    runs = _rayflow(cluster, "runs", "--store", store, "--json")
    assert runs.returncode == 0, _explain(runs)
    records = json.loads(runs.stdout.strip().splitlines()[-1])
    assert [r["status"] for r in records] == ["SUCCEEDED"], records
    status = _rayflow(cluster, "status", records[0]["run_id"], "--store", store, "--json")
    assert status.returncode == 0, _explain(status)
    recorded = _json_line(status.stdout)
    assert recorded["run"]["status"] == "SUCCEEDED"
    _check_placement(cluster, recorded["metrics"]["components"])


SUBMIT_AND_EXIT = '''
import sys, time
import rayflow as rf

@rf.component(num_cpus=0.5)
def step(x, seconds=1.0):
    time.sleep(seconds)
    return x + 1

@rf.workflow
def slow_chain(n: int = 4):
    node = step(0)
    for _ in range(n - 1):
        node = step(node)
    return node

rf.init(address=sys.argv[1], store=sys.argv[2])
h = rf.submit(slow_chain, n=4)
print(h.run_id, h.status())
'''

WAIT_ELSEWHERE = '''
import json, sys
import rayflow as rf

rf.init(store=sys.argv[1])          # no Ray needed: the store has the run
h = rf.get_run(sys.argv[2])
status = h.wait(timeout=120)
print(json.dumps({"status": status, "metrics": h.metrics(), "result": h.result()}))
'''


def test_a_run_outlives_the_script_that_submitted_it(cluster, tmp_path):
    store = f"sqlite:///{tmp_path / 'tracker.db'}"
    script = tmp_path / "submit_and_exit.py"
    script.write_text(SUBMIT_AND_EXIT)
    first = _sh([sys.executable, str(script), cluster.address, store], cluster.env, RUN_TIMEOUT_S)
    assert first.returncode == 0, _explain(first)
    run_id, status_at_exit = first.stdout.strip().splitlines()[-1].split()
    assert status_at_exit in ("PENDING", "RUNNING")     # the script exited with its run still going

    waiter = tmp_path / "wait_elsewhere.py"
    waiter.write_text(WAIT_ELSEWHERE)
    second = _sh([sys.executable, str(waiter), store, run_id], cluster.env, RUN_TIMEOUT_S)
    assert second.returncode == 0, _explain(second)
    out = _json_line(second.stdout)
    assert out["status"] == "SUCCEEDED" and out["result"] == 4
    comps = out["metrics"]["components"]
    assert set(comps) == {"step", "step_1", "step_2", "step_3"}
    for comp in comps.values():
        assert comp["state"] == "SUCCEEDED" and comp["duration_s"] >= 0.9 and comp["node_id"] in cluster.nodes
    assert out["metrics"]["critical_path"] == ["step", "step_1", "step_2", "step_3"]
    shown = _rayflow(cluster, "status", run_id, "--store", store)
    assert shown.returncode == 0 and "SUCCEEDED" in shown.stdout, _explain(shown)


TRACKER_JOB = '''
import json, sys, ray
from rayflow.server.tracker import NAME, NAMESPACE
ray.init(address=sys.argv[1], namespace=NAMESPACE)
actor = ray.get_actor(NAME, namespace=NAMESPACE)
print(json.dumps({"tracker_job": ray.get(actor.job_id.remote()), "mine": ray.get_runtime_context().get_job_id()}))
'''


def test_the_tracker_belongs_to_a_host_job_that_outlives_the_submitters(cluster, tmp_path):
    """The tracker's component tasks belong to the job that created it, and Ray ends a
    finished job's idle workers at once: the tracker must be made by its host process,
    whose job lives on, never by the script that happened to submit first."""
    script = tmp_path / "submit_and_exit.py"
    script.write_text(SUBMIT_AND_EXIT)
    first = _sh([sys.executable, str(script), cluster.address, f"sqlite:///{tmp_path / 't.db'}"], cluster.env,
                RUN_TIMEOUT_S)
    assert first.returncode == 0, _explain(first)
    probe = tmp_path / "tracker_job.py"
    probe.write_text(TRACKER_JOB)
    shown = _sh([sys.executable, str(probe), cluster.address], cluster.env, 120)
    assert shown.returncode == 0, _explain(shown)
    jobs = _json_line(shown.stdout)
    log = Path(cluster.env["RAYFLOW_HOME"]) / "logs" / "tracker-host.log"
    hosted = [line for line in log.read_text().splitlines() if "hosting the tracker" in line]
    assert hosted and hosted[-1].endswith(f"(job {jobs['tracker_job']})"), (hosted, jobs)
    hosts = subprocess.run(["pgrep", "-f", f"rayflow.server.tracker_host --address {cluster.address}"],
                           capture_output=True, text=True)
    assert hosts.stdout.split(), "the tracker's host process is not running"


MANY_SMALL = '''
import json, sys
import rayflow as rf

@rf.component(num_cpus=0.1)
def a(i): return i

@rf.component(num_cpus=0.1)
def b(x): return x + 1

@rf.component(num_cpus=0.1)
def e(*xs): return sum(xs)

@rf.workflow
def small(i: int = 0):
    x = a(i)
    return e(b(x), b(x), b(x))

rf.init(address=sys.argv[1], store=sys.argv[2])
n = int(sys.argv[3])
handles = [rf.submit(small, i=i) for i in range(n)]
results = [h.result(timeout=900) for h in handles]
print(json.dumps({"ok": sum(r == 3 * (i + 1) for i, r in enumerate(results)), "n": n}))
'''


@pytest.mark.timeout(600)   # ~60-80 s alone on 2 cores; several times that when the machine is loaded
def test_a_thousand_concurrent_small_workflows_through_the_tracker(cluster, tmp_path):
    store = f"sqlite:///{tmp_path / 'many.db'}"
    script = tmp_path / "many.py"
    script.write_text(MANY_SMALL)
    env = {**cluster.env, "RAYFLOW_TRACKER": "1"}
    proc = _sh([sys.executable, str(script), cluster.address, store, "1000"], env, 540)
    assert proc.returncode == 0, _explain(proc)
    assert _json_line(proc.stdout) == {"ok": 1000, "n": 1000}
    from rayflow.store.sqlite import SqliteStore

    db = SqliteStore(tmp_path / "many.db")
    try:
        runs = db.list_runs(limit=2000)
        assert len(runs) == 1000 and {r.status for r in runs} == {"SUCCEEDED"}
        assert {c.state for c in db.get_components(runs[0].run_id)} == {"SUCCEEDED"}
    finally:
        db.close()


def test_cli_submit_on_a_cluster_hands_the_run_to_the_tracker(cluster, tmp_path):
    store = f"sqlite:///{tmp_path / 'submit.db'}"
    proc = _rayflow(cluster, "submit", PLACEMENT, "--address", cluster.address, "--store", store)
    assert proc.returncode == 0, _explain(proc)
    run_id = proc.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        shown = _rayflow(cluster, "status", run_id, "--store", store, "--json")
        assert shown.returncode == 0, _explain(shown)
        data = _json_line(shown.stdout)
        if data["run"]["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert data["run"]["status"] == "SUCCEEDED", data["run"]
    assert data["run"]["owner"] != ""
    assert not (Path.home() / ".rayflow" / "logs" / f"{run_id}.log").exists()  # no detached local driver
    _check_placement(cluster, data["metrics"]["components"])


@pytest.mark.parametrize("target", ["rayflow.examples.placement:round_robin", "rayflow.examples.placement:least_loaded"])
def test_placement_strategies_spread_work_over_both_nodes(cluster, tmp_path, target):
    """Weighted round robin spreads a chain (Ray alone keeps a chain where its input is),
    and least-loaded spreads independent steps, over the head (2 CPUs) and node b (1 CPU)."""
    store = f"sqlite:///{tmp_path / 'p.db'}"
    proc = _rayflow(cluster, "run", target, "--address", cluster.address, "--store", store, "--json")
    assert proc.returncode == 0, _explain(proc)
    out = _json_line(proc.stdout)
    assert out["status"] == "SUCCEEDED"
    ran_on = [step["node_id"] for step in out["result"]]
    assert set(ran_on) == set(cluster.nodes), ran_on
    recorded = {c["node_id"] for c in out["metrics"]["components"].values()}
    assert recorded == set(cluster.nodes)


def test_the_servers_cluster_view_shows_both_nodes_and_links_the_ray_dashboard(cluster):
    """What the web UI's cluster page draws, from the server cluster/local.sh started
    beside the two nodes: both nodes alive with their resources, and the dashboard's URL
    (the UI links each node to its page there)."""
    import urllib.request

    url = (cluster.dir / "server_url").read_text().strip()
    with urllib.request.urlopen(f"{url}/v1/cluster", timeout=30) as r:
        view = json.loads(r.read())
    ray_part = view["ray"]
    assert ray_part["ok"] and ray_part["connected"], ray_part
    alive = {n["node_id"] for n in ray_part["nodes"] if n["alive"]}
    assert alive == set(cluster.nodes)
    assert ray_part["total"]["CPU"] >= 2 and ray_part["total"].get("node_b") == 1
    assert ray_part["dashboard_url"].rstrip("/").endswith(cluster.dashboard.rsplit(":", 1)[1])
    with urllib.request.urlopen(ray_part["dashboard_url"], timeout=30) as r:   # the link opens
        assert r.status == 200
    assert [s["this"] for s in view["servers"]["servers"]] == [True]
