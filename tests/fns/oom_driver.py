"""A driver for the OOM-retry test: its own local Ray whose memory monitor kills a worker
once the node's memory use passes a threshold set just above what is used now (so a test
provokes a real out-of-memory kill without filling the machine). Two auto-sized
components (Ray does not retry those: it would repeat the request) that each hold ~8% of
the machine's memory, each declaring 6 GiB (no history: the declared request is kept),
run at once: together they pass the threshold and Ray kills one; rayflow runs it again
asking for twice the memory, more than the node has left beside the other, so it waits
for the other and runs alone. Prints a JSON summary."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import psutil

vm = psutil.virtual_memory()
CHUNK = int(vm.total * 0.08)
os.environ["RAY_memory_usage_threshold"] = f"{(vm.total - vm.available) / vm.total + 0.12:.3f}"
os.environ["RAY_memory_monitor_refresh_ms"] = "100"
os.environ["RAYFLOW_HOME"] = tempfile.mkdtemp()   # no saved model: the request doubles

import numpy as np  # noqa: E402
import ray  # noqa: E402

import rayflow as rf  # noqa: E402


@rf.component(memory="6GiB", sizing="auto")
def hog(i: int, nbytes: int) -> int:
    block = np.ones(nbytes // 8)
    time.sleep(4.0)             # hold it while the other runs
    return int(block.size) + i


@rf.workflow(name="hogs")
def hogs():
    return [hog(i, CHUNK) for i in range(2)]


def main() -> int:
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    rf.init(store=f"sqlite:///{tempfile.mkdtemp()}/s.db", checkpoints="off")
    handle = rf.submit(hogs)
    status = handle.wait(240)
    comps = handle.metrics()["components"]
    print(json.dumps({"status": status, "node_memory": ray.cluster_resources().get("memory"),
                      "requests": {c: v["resources"].get("memory") for c, v in comps.items()},
                      "states": {c: v["state"] for c, v in comps.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
