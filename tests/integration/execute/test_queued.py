"""A component handed to the executor but not begun shows QUEUED, and RUNNING only once it
begins (what a new user hit: a progress bar said "running 6" on a 2-CPU machine). On Ray
the worker tells the driver a call began once it has run half a second
(rayflow/execute/worker/running.py); the local executor tells each call as it starts it."""

from __future__ import annotations

import time

import rayflow as rf
from tests.fns import queueing as fns
from tests.helpers import wait_until


def shown(progress: dict) -> dict:
    return {k: v for k, v in progress.items() if k in ("RUNNING", "QUEUED")}


def holds(components: dict) -> dict[str, list[str]]:
    """The holds by shown state: begun (RUNNING with a start) or not (QUEUED)."""
    out: dict[str, list[str]] = {"RUNNING": [], "QUEUED": []}
    for cid, c in components.items():
        if cid.startswith("hold") and c["state"] == "RUNNING":
            out["RUNNING" if c["started_at"] is not None else "QUEUED"].append(cid)
    return out


def test_holds_beyond_the_free_cpus_wait_queued_and_run_once_begun(service, ray_session):
    import ray

    free = int(ray.available_resources().get("CPU", 0))   # 2 here, less when an earlier test's actor holds one
    assert free >= 1
    at_once = min(free, 4)
    h = rf.submit(fns.four_on_two, executor="ray", seconds=3.0)
    deadline, seen = time.monotonic() + 30, []
    while not seen or seen[-1].get("RUNNING") != at_once:
        assert time.monotonic() < deadline, f"{at_once} holds never ran at once; seen {seen[-5:]}"
        seen.append(shown(h.progress()))
        time.sleep(0.05)
    live = holds(h.components())
    assert len(live["RUNNING"]) == at_once and len(live["QUEUED"]) == 4 - at_once, live
    # the join waits for its upstreams (submitted early, as Ray allows): queued too
    assert shown(h.progress()) == {"RUNNING": at_once, "QUEUED": 5 - at_once}
    # another process reading the store sees the same
    stored = wait_until(lambda: (c := holds(rf.get_run(h.run_id).components()))["RUNNING"] == live["RUNNING"] and c,
                        timeout=10, what="the store's rows of the running holds")
    assert sorted(stored["QUEUED"]) == sorted(live["QUEUED"])
    while h.status() == "RUNNING":             # never more running than there are free CPUs
        seen.append(shown(h.progress()))
        time.sleep(0.05)
    assert at_once <= max(s.get("RUNNING", 0) for s in seen) <= int(ray.cluster_resources()["CPU"])
    assert h.result(timeout=120) == 16
    final = h.components()
    assert all(v["state"] == "SUCCEEDED" and v["started_at"] is not None for v in final.values())
    waited = sorted(final[f"hold{i}"]["queued_s"] for i in range(4))
    assert waited[-1] > 2.0 and waited[0] < 1.5          # the last hold waited for a CPU, the first did not


def test_the_local_executor_shows_one_running_and_the_rest_queued(service):
    h = rf.submit(fns.four_on_two, executor="local", seconds=1.0)
    wait_until(lambda: shown(h.progress()) == {"RUNNING": 1, "QUEUED": 3}, timeout=30,
               what="one hold running and three queued (the join is not submitted before its upstreams end)")
    assert h.result(timeout=60) == 16
    assert shown(h.progress()) == {}
