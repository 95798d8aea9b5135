"""A fully cached run after the Ray cluster restarted, against the cold run (issue 16 item 7).

The workflow is ``cache.py``'s warm one (``cached_wf.py``) (20 cached components of 100 ms: a fan-out of 17
into two reducers and a final one). Each driver is a fresh process, as after a restart:

- ``cluster``: a cluster from ``ray start`` on a spare port. The cold run joins it
  (``RAY_ADDRESS``); the cluster is stopped and started again; then the same run,
  whose outputs a throwaway Redis holds, is submitted twice more from fresh processes:
  ``warm_init`` calls ``rf.init()`` first (it connects to the cluster), ``warm_lazy``
  does not (the run connects only if it needs the cluster; fully cached, it never does).
- ``local``: no cluster; the cold process starts local Ray, the warm one runs with
  nothing but the Redis tier.

Figures per case: ``run`` (submit to result) and ``process`` (the driver's whole time,
import to result) of the cold run divided by the warm run's; medians over ``--reps``.
Target: ``process`` >= 5x (the issue's figure: a fully cached run after a restart >= 5x
faster than the cold run). Writes ``benchmarks/results/cache_restart.json``::

    python benchmarks/cache_restart.py [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cache import Redis
from reporting import write_report

RESULTS = Path(__file__).resolve().parent / "results" / "cache_restart.json"
TARGET = 5.0
PORT = 6398   # a spare port (Redis holds 6379 here)

DRIVER = """
import json, os, sys, time
t0 = time.perf_counter()
import rayflow as rf
from rayflow.service import get_service
sys.path.insert(0, {bench!r})
from cached_wf import warm_wf
if sys.argv[1] == "init":
    rf.init()
t1 = time.perf_counter()
h = rf.submit(warm_wf, seed=int(sys.argv[2]))
value = h.result(timeout=600)
t2 = time.perf_counter()
ran = sorted(c for c, m in h.components().items() if m.get("state") != "CACHED")
print(json.dumps({{"run_s": t2 - t1, "process_s": t2 - t0, "progress": h.progress(), "value": value, "ran": ran,
                  "connected": "ray" in sys.modules and sys.modules["ray"].is_initialized(),
                  "ray_loaded": "ray" in sys.modules,
                  "tiers": [t.counters.snapshot() for t in get_service().cache().tiers]}}))
"""


def drive(mode: str, seed: int, env: dict) -> dict:
    script = DRIVER.format(bench=str(Path(__file__).resolve().parent))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, mode, str(seed)], env=env, capture_output=True,
                         text=True, timeout=900)
    if out.returncode != 0:
        sys.exit(f"driver failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0   # with the interpreter's start
    return result


class Cluster:
    """``ray start --head`` on PORT with its own temp dir, stopped by killing its processes."""

    def __init__(self, tmp: str, env: dict) -> None:
        self.tmp = os.path.join(tmp, "ray")
        self.env = {**env, "RAY_TMPDIR": self.tmp}   # the tracker, started there, shares the drivers' settings

    def start(self) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        subprocess.run([ray, "start", "--head", f"--port={PORT}", "--num-cpus=2", "--include-dashboard=false",
                        "--disable-usage-stats"], env=self.env, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        """Kill the cluster's processes (those naming its temp dir) and their children
        (the agents, the workers; the client server names its address): never ``ray stop``, which stops every cluster here."""
        import psutil

        mine = (self.tmp, f":{PORT} ", f":{PORT}\0")   # its temp dir, or its GCS address (the client server)
        procs = [p for p in psutil.process_iter(["cmdline"])
                 if any(m in " ".join(p.info["cmdline"] or ()) + "\0" for m in mine)]
        procs += [c for p in procs for c in _children(p)]
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)


def _children(proc) -> list:
    import psutil

    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    redis = Redis()
    results: dict = {"cluster": {"samples": []}, "local": {"samples": []}}
    try:
        with tempfile.TemporaryDirectory(prefix="rayflow-restart-") as tmp:
            base = {**os.environ, "RAYFLOW_STORE": f"sqlite:///{tmp}/runs.db", "RAYFLOW_CACHE": redis.url,
                    "RAYFLOW_CHECKPOINTS": "off", "RAYFLOW_HOME": f"{tmp}/home"}
            cluster = Cluster(tmp, base)
            joined = {**base, "RAY_TMPDIR": cluster.tmp, "RAY_ADDRESS": f"127.0.0.1:{PORT}"}
            if os.path.exists(os.path.expanduser("~/.ray/auth_token")):   # a `ray start` cluster asks for it
                joined.setdefault("RAY_AUTH_MODE", "token")
            for rep in range(args.reps):
                seed = int(time.time() * 1000) % 10**9 + rep
                cluster.start()
                cold = drive("lazy", seed, joined)
                cluster.stop()
                cluster.start()
                warm_init = drive("init", seed, joined)
                cluster.stop()
                cluster.start()
                warm_lazy = drive("lazy", seed, joined)
                cluster.stop()
                sample = {"cold": cold, "warm_init": warm_init, "warm_lazy": warm_lazy}
                assert all(s["progress"] == {"CACHED": 20} for s in (warm_init, warm_lazy)), sample
                results["cluster"]["samples"].append(sample)
                local = {**base, "RAY_ADDRESS": ""}
                seed += 1
                sample = {"cold": drive("lazy", seed, local), "warm_lazy": drive("lazy", seed, local)}
                assert sample["warm_lazy"]["progress"] == {"CACHED": 20}, sample
                results["local"]["samples"].append(sample)
                for name in ("cluster", "local"):
                    s = results[name]["samples"][-1]
                    print(f"{name} rep {rep + 1}/{args.reps}: " + ", ".join(
                        f"{k} run {v['run_s']:.2f} s process {v['process_s']:.2f} s"
                        f"{'' if v['connected'] else ' (no Ray)'}" for k, v in s.items()), flush=True)
    finally:
        redis.stop()
    figures, meets = {}, {}
    for name, res in results.items():
        for warm in ("warm_init", "warm_lazy"):
            if warm not in res["samples"][0]:
                continue
            for part in ("run", "process"):
                key = f"{name}_{warm}_{part}_speedup"
                figures[key] = round(statistics.median(s["cold"][f"{part}_s"] / s[warm][f"{part}_s"]
                                                       for s in res["samples"]), 1)
                if part == "process":
                    meets[key] = figures[key] >= TARGET
    print(f"\n{'figure':<40} {'value':>8} target >= {TARGET}x on the process figures")
    for key, value in figures.items():
        print(f"{key:<40} {value:>8}  {'' if key not in meets else 'ok' if meets[key] else 'BELOW'}")
    write_report(args.out, {"benchmark": "cache_restart", "reps": args.reps, "target_process_speedup": TARGET,
                            "figures": figures, "meets_target": meets, "cases": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
