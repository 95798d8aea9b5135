"""A run whose every component the cache holds needs no cluster (issue 16 item 7): in a
fresh process it connects to no Ray (so after a cluster restart it starts no worker or
actor), and where runs would go to the cluster's tracker, it is driven where it was
submitted. A run missing one component connects and runs only that one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rayflow.runs.owners import owner_id
from tests.fns import engine as fns

pytestmark = pytest.mark.slow

WARM_RUN = """
import json, sys
import ray
import rayflow as rf
from rayflow.service import get_service
from tests.fns import engine as fns
h = rf.submit(fns.cached, folder=sys.argv[1], n=int(sys.argv[2]))
value = h.result(timeout=300)
print(json.dumps({"value": value, "progress": h.progress(), "ray": ray.is_initialized(),
                  "summary": get_service().store.get_run(h.run_id).summary.get("cache")}))
"""


def _warm_run(tmp_path, cache_url: str, folder, n: int) -> dict:
    env = {**os.environ, "RAYFLOW_CACHE": cache_url, "RAYFLOW_STORE": f"sqlite:///{tmp_path / 'other.db'}",
           "RAYFLOW_TRACKER": "0", "RAY_ADDRESS": ""}
    out = subprocess.run([sys.executable, "-c", WARM_RUN, str(folder), str(n)], env=env, capture_output=True,
                         text=True, timeout=300, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "ledger"
    path.mkdir()
    return path


def test_a_fully_cached_run_in_a_fresh_process_connects_to_no_ray(service, tmp_path, folder) -> None:
    url = f"file://{tmp_path / 'cache'}"
    service.configure(cache=f"memory://,{url}")
    try:
        cold = service.submit(fns.cached, {"folder": str(folder)}, executor="ray").result(timeout=120)
    finally:
        service.configure(cache="memory://")
    ran = fns.ledger(folder)
    warm = _warm_run(tmp_path, url, folder, 3)
    assert warm["value"] == cold and warm["progress"] == {"CACHED": 7}
    assert warm["ray"] is False                          # nothing connected, nothing started
    assert fns.ledger(folder) == ran                     # and nothing ran again
    assert warm["summary"]["hits"] == 7 and warm["summary"]["hits_by_tier"] == {"files": 7}


def test_a_run_missing_one_output_connects_and_runs_only_what_is_missing(service, tmp_path, folder) -> None:
    url = f"file://{tmp_path / 'cache'}"
    service.configure(cache=url)
    try:
        service.submit(fns.cached, {"folder": str(folder), "n": 2}, executor="ray").result(timeout=120)
    finally:
        service.configure(cache="memory://")
    ran = fns.ledger(folder)
    warm = _warm_run(tmp_path, f"memory://,{url}", folder, 3)   # load_2 and scale_20 are new; versioned reads them
    assert warm["value"] == (0 + 10 + 20) * 2 and warm["ray"] is True
    assert warm["progress"] == {"CACHED": 4, "SUCCEEDED": 3}
    assert warm["summary"]["hits_by_tier"] == {"files": 4}   # what was looked up ahead is the run's answer
    new = {k: v - ran.get(k, 0) for k, v in fns.ledger(folder).items() if v != ran.get(k, 0)}
    assert new == {"load_2": 1, "scale_20": 1, "versioned": 1}


def test_a_fully_cached_run_is_driven_where_it_was_submitted(service, monkeypatch, tmp_path, folder) -> None:
    monkeypatch.setenv("RAYFLOW_TRACKER", "1")   # runs go to the cluster's tracker ...
    service.configure(cache=f"memory://,file://{tmp_path / 'cache'}")   # (a tier the tracker shares)
    try:
        first = service.submit(fns.cached, {"folder": str(folder)}, executor="ray")
        assert first.wait(timeout=120) == "SUCCEEDED"
        assert service.store.get_run(first.run_id).owner != owner_id()
        again = service.submit(fns.cached, {"folder": str(folder)}, executor="ray")   # ... but not this one
        assert again.result(timeout=60) == first.result() and again.progress() == {"CACHED": 7}
        assert service.store.get_run(again.run_id).owner == owner_id()
    finally:
        service.configure(cache="memory://")
