"""The result cache on three workloads, each a ratio or a count measured in one run.

- ``warm``: a 20-component workflow of 100 ms components (a fan-out of 17 into two
  reducers and a final one), run cold (nothing cached) then warm (everything cached): the warm run's
  speed-up. Target: >= 20x.
- ``sweep``: a hyperparameter sweep of 50 runs over a 20-component pipeline: ingestion
  and 17 feature steps that every configuration shares, then ``train`` and ``evaluate``,
  which depend on the swept (learning rate, depth) pair. Components are 20 ms. The hit
  ratio over all 50 runs (the first run misses everything). Target: >= 0.85.
- ``redis_down``: the warm workflow's cold run with a Redis tier whose server is stopped,
  against the same run with no cache at all: the time added per component. Target:
  under 50 ms. Also with a Redis that accepts connections and never answers (a hung
  server: every call waits for its timeout until the circuit breaker opens).

Tiers: in-process memory plus a throwaway Redis this script starts on a free port (the
memory tier is emptied between runs where a run must go to Redis). Local Ray, 2 CPUs.
Writes ``benchmarks/results/cache.json``. Run from the repository root::

    python benchmarks/cache.py
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray
from cached_wf import combine, step, warm_wf
from reporting import write_report

import rayflow as rf
from rayflow.service import get_service

RESULTS = Path(__file__).resolve().parent / "results" / "cache.json"
TARGETS = {"warm_speedup": 20.0, "sweep_hit_ratio": 0.85, "redis_down_ms_per_component": 50.0}


@rf.component(cache=True)
def train(features: int, lr: float, depth: int, pause_s: float) -> float:
    time.sleep(pause_s)
    return features * lr + depth


@rf.component(cache=True)
def evaluate(model: float, features: int, pause_s: float) -> float:
    time.sleep(pause_s)
    return round(model / (features or 1), 6)


@rf.workflow(name="bench_sweep")
def sweep_wf(lr: float, depth: int, pause_s: float = 0.02):
    raw = step("ingest", 0, pause_s)
    feats = [combine([raw, step(f"feature{i}", 0, pause_s)], pause_s) for i in range(8)]
    features = combine(feats, pause_s)
    model = train(features, lr, depth, pause_s)
    return evaluate(model, features, pause_s)


def timed_run(wf, **inputs) -> tuple[float, object, rf.RunHandle]:
    t0 = time.perf_counter()
    handle = rf.submit(wf, **inputs)
    value = handle.result(timeout=600)
    return time.perf_counter() - t0, value, handle


def counts(handle) -> dict[str, int]:
    return handle.progress()


def use_cache(urls: str) -> None:
    get_service().configure(cache="off")
    get_service().configure(cache=urls)      # a fresh cache object: the memory tier starts empty


class Redis:
    """A throwaway redis-server on a free port (never the shared one)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not installed")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("the throwaway redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def bench_warm(redis: Redis, reps: int) -> dict:
    cold, warm = [], []
    for rep in range(reps):
        use_cache(f"memory://,{redis.url}")
        t_cold, v_cold, h_cold = timed_run(warm_wf, seed=1000 + rep)       # a new seed: nothing cached
        t_warm, v_warm, h_warm = timed_run(warm_wf, seed=1000 + rep)
        assert v_cold == v_warm, (v_cold, v_warm)
        assert counts(h_warm) == {"CACHED": 20}, counts(h_warm)
        cold.append(t_cold)
        warm.append(t_warm)
        print(f"warm rep {rep + 1}/{reps}: cold {t_cold:.3f} s, warm {t_warm * 1000:.1f} ms, "
              f"speed-up {t_cold / t_warm:.1f}x", flush=True)
    speedups = [c / w for c, w in zip(cold, warm, strict=True)]
    return {"components": 20, "component_s": 0.1, "cold_s": cold, "warm_s": warm,
            "median_speedup": round(statistics.median(speedups), 1)}


def bench_sweep(redis: Redis) -> dict:
    use_cache(f"memory://,{redis.url}")
    grid = [(lr, depth) for lr in (0.001, 0.003, 0.01, 0.03, 0.1) for depth in range(2, 12)]
    hits = misses = 0
    t0 = time.perf_counter()
    for lr, depth in grid:
        _, _, handle = timed_run(sweep_wf, lr=lr, depth=depth)
        c = counts(handle)
        hits += c.get("CACHED", 0)
        misses += c.get("SUCCEEDED", 0)
    ratio = hits / (hits + misses)
    print(f"sweep: {len(grid)} runs, {hits} hits, {misses} misses, hit ratio {ratio:.3f}", flush=True)
    return {"runs": len(grid), "components_per_run": 20, "hits": hits, "misses": misses,
            "hit_ratio": round(ratio, 3), "wall_s": round(time.perf_counter() - t0, 2)}


class Hung:
    """A TCP server that accepts connections and never answers (a hung Redis)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        for c in [*self.conns, self.sock]:
            c.close()


def added_per_component(url: str, reps: int, label: str) -> list[float]:
    added = []
    for rep in range(reps):
        use_cache("off")
        t_off, v_off, _ = timed_run(warm_wf, pause_s=0.0, seed=5000 + rep)
        use_cache(url)               # every lookup and write must fail within a bounded time
        t_down, v_down, h_down = timed_run(warm_wf, pause_s=0.0, seed=5000 + rep)
        assert v_off == v_down and h_down.status() == "SUCCEEDED"
        added.append((t_down - t_off) / 20 * 1000)
        print(f"{label} rep {rep + 1}/{reps}: no cache {t_off * 1000:.0f} ms, {label} "
              f"{t_down * 1000:.0f} ms, {added[-1]:.2f} ms added per component", flush=True)
    return added


def bench_redis_down(redis: Redis, reps: int) -> dict:
    redis.stop()
    down = added_per_component(redis.url, reps, "Redis stopped")
    hung = Hung()
    try:
        stuck = added_per_component(f"redis://127.0.0.1:{hung.port}/0", reps, "Redis hung")
    finally:
        hung.close()
    return {"components": 20, "added_ms_per_component": [round(a, 3) for a in down],
            "median_added_ms_per_component": round(statistics.median(down), 3),
            "hung_added_ms_per_component": [round(a, 3) for a in stuck],
            "hung_median_added_ms_per_component": round(statistics.median(stuck), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="repetitions of the warm and redis_down cases")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    with tempfile.TemporaryDirectory(prefix="rayflow-bench-") as tmp:
        rf.init(store=f"sqlite:///{tmp}/bench.db", checkpoints="off")
        redis = Redis()
        try:
            results = {"warm": bench_warm(redis, args.reps), "sweep": bench_sweep(redis),
                       "redis_down": bench_redis_down(redis, args.reps)}
        finally:
            redis.stop()
        rf.init(store="memory://", cache="memory://")
    figures = {"warm_speedup": results["warm"]["median_speedup"],
               "sweep_hit_ratio": results["sweep"]["hit_ratio"],
               "redis_down_ms_per_component": results["redis_down"]["median_added_ms_per_component"],
               "redis_hung_ms_per_component": results["redis_down"]["hung_median_added_ms_per_component"]}
    meets = {"warm_speedup": figures["warm_speedup"] >= TARGETS["warm_speedup"],
             "sweep_hit_ratio": figures["sweep_hit_ratio"] >= TARGETS["sweep_hit_ratio"],
             "redis_down_ms_per_component": figures["redis_down_ms_per_component"] < TARGETS["redis_down_ms_per_component"],
             "redis_hung_ms_per_component": figures["redis_hung_ms_per_component"] < TARGETS["redis_down_ms_per_component"]}
    print(f"\n{'figure':<30} {'value':>10} {'target':>10}")
    for name, value in figures.items():
        target = TARGETS.get(name, TARGETS["redis_down_ms_per_component"])
        op = "<" if name.startswith("redis") else ">="
        print(f"{name:<30} {value:>10} {op + str(target):>10} {'ok' if meets[name] else 'BELOW'}")
    write_report(args.out, {"benchmark": "cache", "reps": args.reps, "targets": TARGETS, "figures": figures,
                            "meets_target": meets, "cases": results})
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
