"""Eviction policies of the in-process cache tier on synthetic workloads.

Replays request streams through rayflow.cache.memory.MemoryTier (the product code, one
tier per policy; entries held with ``put_value`` so no bytes are allocated) and reports,
per workload and policy, the hit ratio and the recompute cost saved (the ``cost_s`` of
every request served from the cache, as a share of the cost of all requests): medians
over seeds, and each policy's ratio to LRU, the baseline, on the same streams.

Workloads (each ``--requests`` long):
- scan: a hot set of 500 equal entries read with Zipf(0.8) popularity, interrupted by
  sequential scans over never-repeated keys (about 40% of requests).
- zipf: 10,000 equal entries, Zipf(0.9) popularity; the cache holds 10% of them.
- mixed: 5,000 entries with log-normal sizes (median 16 KiB) and log-normal recompute
  costs (median 0.5 s) drawn independently, Zipf(0.8) popularity; the cache holds 5%
  of the bytes.
- shift: 10,000 equal entries, Zipf(0.9), but the popular keys change 4 times.

    python benchmarks/cache_eviction.py [--requests 40000] [--seeds 5]

No Ray session is started.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reporting import write_report  # noqa: E402
from rayflow.cache.eviction import POLICIES  # noqa: E402
from rayflow.cache.memory import MemoryTier  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "cache_eviction.json"
KIB = 1024


@dataclass
class Workload:
    keys: np.ndarray        # the key id of each request
    sizes: np.ndarray       # bytes, per key id
    costs: np.ndarray       # recompute seconds, per key id
    capacity: int           # the cache's max_bytes


def zipf_probs(n: int, alpha: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** alpha
    return p / p.sum()


def scan(rng: np.random.Generator, n: int) -> Workload:
    hot, scan_len = 500, 1500
    keys, cold = [], hot
    while len(keys) < n:
        keys.extend(rng.choice(hot, size=2250, p=zipf_probs(hot, 0.8)))
        keys.extend(range(cold, cold + scan_len))
        cold += scan_len
    size = np.full(cold, 4 * KIB)
    return Workload(np.array(keys[:n]), size, np.ones(cold), capacity=300 * 4 * KIB)


def zipf(rng: np.random.Generator, n: int) -> Workload:
    universe = 10_000
    keys = rng.permutation(universe)[rng.choice(universe, size=n, p=zipf_probs(universe, 0.9))]
    return Workload(keys, np.full(universe, 4 * KIB), np.ones(universe), capacity=universe // 10 * 4 * KIB)


def mixed(rng: np.random.Generator, n: int) -> Workload:
    universe = 5_000
    sizes = np.clip(rng.lognormal(np.log(16 * KIB), 1.5, universe), 256, 4 * KIB * KIB).astype(int)
    costs = rng.lognormal(np.log(0.5), 1.5, universe)
    keys = rng.permutation(universe)[rng.choice(universe, size=n, p=zipf_probs(universe, 0.8))]
    return Workload(keys, sizes, costs, capacity=int(sizes.sum() * 0.05))


def shift(rng: np.random.Generator, n: int) -> Workload:
    universe, phases = 10_000, 4
    probs = zipf_probs(universe, 0.9)
    parts = [rng.permutation(universe)[rng.choice(universe, size=n // phases, p=probs)] for _ in range(phases)]
    return Workload(np.concatenate(parts), np.full(universe, 4 * KIB), np.ones(universe),
                    capacity=universe // 10 * 4 * KIB)


WORKLOADS: dict[str, Callable[[np.random.Generator, int], Workload]] = {
    "scan": scan, "zipf": zipf, "mixed": mixed, "shift": shift}


def replay(work: Workload, policy: str) -> dict[str, float]:
    tier = MemoryTier(work.capacity, policy)
    hits = 0
    saved = 0.0
    sizes, costs = work.sizes.tolist(), work.costs.tolist()
    for k in work.keys.tolist():
        key = str(k)
        if tier.get_value(key)[0]:
            hits += 1
            saved += costs[k]
        else:
            tier.put_value(key, None, size_bytes=sizes[k], cost_s=costs[k])
    total = float(work.costs[work.keys].sum())
    return {"hit_ratio": hits / len(work.keys), "cost_saved": saved / total, "cost_saved_s": saved}


def run(requests: int, seeds: int) -> dict:
    results: dict = {}
    for name, make in WORKLOADS.items():
        runs: dict[str, list[dict[str, float]]] = {p: [] for p in POLICIES}
        for seed in range(seeds):
            work = make(np.random.default_rng(seed), requests)
            for policy in POLICIES:        # the same stream for every policy
                runs[policy].append(replay(work, policy))
        results[name] = {p: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for p, rs in runs.items()}
        for p in POLICIES:
            lru = results[name]["lru"]
            results[name][p]["hit_ratio_vs_lru"] = results[name][p]["hit_ratio"] / lru["hit_ratio"]
            results[name][p]["cost_saved_vs_lru"] = results[name][p]["cost_saved"] / lru["cost_saved"]
    return results


def winners(results: dict) -> dict[str, dict[str, str]]:
    return {w: {m: max(POLICIES, key=lambda p, w=w, m=m: results[w][p][m]) for m in ("hit_ratio", "cost_saved")}
            for w in results}


def print_table(results: dict) -> None:
    print(f"{'workload':<9}{'policy':<10}{'hit ratio':>10}{'vs LRU':>8}{'cost saved':>12}{'vs LRU':>8}")
    for workload, by_policy in results.items():
        for policy, r in by_policy.items():
            print(f"{workload:<9}{policy:<10}{r['hit_ratio']:>10.3f}{r['hit_ratio_vs_lru']:>8.2f}"
                  f"{r['cost_saved']:>12.3f}{r['cost_saved_vs_lru']:>8.2f}")
    for workload, best in winners(results).items():
        print(f"{workload}: best hit ratio {best['hit_ratio']}, best cost saved {best['cost_saved']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.requests, args.seeds)
    print_table(results)
    write_report(OUT, {"benchmark": "cache_eviction", "requests": args.requests, "seeds": args.seeds,
                       "statistic": "median over seeds", "baseline": "lru", "results": results,
                       "winners": winners(results), "wall_s": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
