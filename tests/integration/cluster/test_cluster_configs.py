"""Fast checks of the cluster configs and the placement example (no Ray, no cluster)."""

from __future__ import annotations

import json

import yaml

import rayflow as rf
from tests.helpers import REPO

ROOT = REPO


def _load(name: str) -> dict:
    data = yaml.safe_load((ROOT / "cluster" / name).read_text())
    assert isinstance(data, dict)
    return data


def test_cluster_launcher_config_parses_and_offers_node_b():
    cfg = _load("cluster.yaml")
    assert cfg["provider"]["type"] in {"aws", "local", "gcp", "azure"}
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = [t for name, t in types.items() if name != cfg["head_node_type"]]
    assert any(t.get("resources", {}).get("node_b") == 1 for t in workers)
    assert any("rayflow" in cmd for cmd in cfg["setup_commands"])
    assert cfg["head_start_ray_commands"] and cfg["worker_start_ray_commands"]


def test_kuberay_manifest_parses_and_worker_group_offers_node_b():
    doc = _load("kuberay.yaml")
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] == "RayCluster"
    spec = doc["spec"]
    assert spec["headGroupSpec"]["template"]["spec"]["containers"]
    groups = spec["workerGroupSpecs"]
    assert groups
    offered = []
    for group in groups:
        raw = group["rayStartParams"].get("resources")
        if raw:
            # KubeRay passes the string to `ray start --resources=...`: a quoted JSON object.
            offered.append(json.loads(json.loads(raw)))
        assert group["template"]["spec"]["containers"]
    assert {"node_b": 1} in offered


def test_placement_spec_and_python_workflow_agree():
    from_spec = rf.explain(str(ROOT / "rayflow" / "examples" / "placement.yaml"))
    from_code = rf.explain("rayflow.examples.placement:pipeline")
    for plan in (from_spec, from_code):
        assert set(plan.tasks) == {"on_node_b", "anywhere", "where"}
        assert plan.tasks["on_node_b"].options.resources == {"node_b": 1.0}
        assert plan.tasks["on_node_b"].options.num_cpus == 0.5
        assert plan.tasks["anywhere"].options.resources == {}
        assert set(plan.tasks["where"].deps) == {"on_node_b", "anywhere"}


def test_placement_example_runs_with_the_local_executor(service):
    """The local executor runs every component in this process; placement does not apply."""
    result = rf.run(str(ROOT / "rayflow" / "examples" / "placement.yaml"), executor="local")
    assert set(result) == {"on_node_b", "anywhere"}
    assert result["on_node_b"]["pid"] == result["anywhere"]["pid"]
