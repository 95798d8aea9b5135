"""Learned sizing and ordering against static declarations, on this machine (2 CPUs).

Case 1, ``sizing``: a mixed workload, every component declared ``num_cpus=1`` as users
do: 8 I/O-bound components (wait 3 s on a service, use a few percent of a core), 2 CPU-bound ones
(1 s of arithmetic), and 2 memory-heavy ones whose peak grows with their input size.
After a few training runs (history -> ``rayflow predict train``), one run with the
declared resources and one with ``sizing="auto"``. Reported: the makespan ratio (target:
auto >= 30% lower), OOM kills on each side (target 0), and memory requested over the
p95 actually used over the history of each component (target <= 1.5). The auto run's
time includes Ray starting the extra workers its fractional requests let run at once
(about a second each, two at a time on this machine).

Case 2, ``ordering``: a DAG whose branches have uneven durations (one 2 s step beside
a chain of three 0.3 s steps and four more) under ``max_concurrency=2``, ordered by
upward rank with every component weighing the same (the FIFO-like default without
history: the chain looks longest) or with the model's predicted durations (HEFT: the
long step goes first). Reported: the makespan ratio, predicted over unit weights.

Each side is measured ``--reps`` times, alternating; medians. Writes
``benchmarks/results/predict.json``. Run from the repository root::

    python benchmarks/predict.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rayflow as rf

RESULTS = Path(__file__).resolve().parent / "results" / "predict.json"
TARGETS = {"makespan_reduction": 0.30, "oom_kills": 0, "memory_requested_over_p95_used": 1.5}


# -- the workloads (defined here: Ray ships them to the workers by value) ---------------------


@rf.component
def io_wait(i: int, seconds: float = 3.0) -> int:
    time.sleep(seconds)             # waiting on a service: a few percent of a core
    return i


@rf.component
def crunch(i: int, seconds: float = 1.0) -> float:
    x, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        x += sum(k * k for k in range(200))
    return x


@rf.component
def memhog(mib: int) -> int:
    block = np.ones(mib * 2**20 // 8)   # peak memory grows with the input
    time.sleep(0.3)
    return int(block.size)


@rf.workflow(name="mixed")
def mixed():
    return [io_wait(i) for i in range(8)] + [crunch(i) for i in range(2)] + [memhog(300), memhog(600)]


@rf.workflow(name="mixed", sizing="auto")
def mixed_auto():
    return [io_wait(i) for i in range(8)] + [crunch(i) for i in range(2)] + [memhog(300), memhog(600)]


@rf.component
def long_step(x: int) -> int:
    time.sleep(2.0)
    return x


@rf.component
def short_step(x: int) -> int:
    time.sleep(0.3)
    return x + 1


@rf.component
def gather(parts: list[int]) -> int:
    return sum(parts)


@rf.workflow(name="uneven", max_concurrency=2)
def uneven():
    """Declared short work first: a chain of 3 short steps and 4 more short ones, then one
    long step. By component count the chain looks longest; by time the long step is."""
    chain = short_step(short_step(short_step(0)))
    singles = [short_step(i) for i in range(4)]
    return gather([chain, *singles, long_step(1)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--train-runs", type=int, default=4, help="runs of history before training")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    home = tempfile.mkdtemp(prefix="rayflow-predict-")
    os.environ["RAYFLOW_HOME"] = home           # a model of this benchmark's own
    import ray
    from reporting import write_report

    from rayflow.predict import history
    from rayflow.service import get_service

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    rf.init(store=f"sqlite:///{home}/bench.db", checkpoints="off")
    service = get_service()

    print(f"training: {args.train_runs} runs of each workload", flush=True)
    for _ in range(args.train_runs):
        rf.run(mixed)
        rf.run(uneven)
    model = history.train(get_service().store)
    print(f"model: {model.n_samples} samples, families {model.components()}", flush=True)

    sizing = {"static": [], "auto": []}
    ooms = {"static": 0, "auto": 0}
    ratios = []
    for rep in range(args.reps):
        for side in (["static", "auto"] if rep % 2 == 0 else ["auto", "static"]):
            t0 = time.perf_counter()
            handle = rf.submit(mixed_auto if side == "auto" else mixed)
            handle.wait(600)
            sizing[side].append(time.perf_counter() - t0)
            comps = handle.metrics()["components"]
            ooms[side] += sum(1 for c in comps.values() if "OutOfMemory" in (c.get("error") or ""))
            if side == "auto":
                ratios.append(_memory_ratio(comps, _p95_peaks(service.store)))
        print(f"sizing rep {rep + 1}/{args.reps}: static {sizing['static'][-1]:.2f} s, "
              f"auto {sizing['auto'][-1]:.2f} s", flush=True)
    static_s, auto_s = statistics.median(sizing["static"]), statistics.median(sizing["auto"])

    order = {"fifo": [], "ranked": []}
    for rep in range(args.reps):
        for side in (["fifo", "ranked"] if rep % 2 == 0 else ["ranked", "fifo"]):
            service.settings.predicted_order = side == "ranked"
            t0 = time.perf_counter()
            rf.run(uneven)
            order[side].append(time.perf_counter() - t0)
        print(f"ordering rep {rep + 1}/{args.reps}: FIFO {order['fifo'][-1]:.2f} s, "
              f"ranked {order['ranked'][-1]:.2f} s", flush=True)
    fifo_s, ranked_s = statistics.median(order["fifo"]), statistics.median(order["ranked"])

    mem_ratio = max(ratios) if ratios else None
    figures = {"makespan_reduction": round(1 - auto_s / static_s, 3), "oom_kills_static": ooms["static"],
               "oom_kills_auto": ooms["auto"], "memory_requested_over_p95_used": mem_ratio,
               "ordering_makespan_ratio_ranked_over_fifo": round(ranked_s / fifo_s, 3)}
    print(f"\nsizing: static {static_s:.2f} s, auto {auto_s:.2f} s -> makespan {figures['makespan_reduction']:.0%} "
          f"lower (target >= 30%); OOM kills static {ooms['static']}, auto {ooms['auto']} (target 0); "
          f"memory requested / p95 used (auto, worst component) {mem_ratio} (target <= 1.5)")
    print(f"ordering: FIFO {fifo_s:.2f} s, predicted rank {ranked_s:.2f} s -> ratio {ranked_s / fifo_s:.3f}")
    write_report(args.out, {"benchmark": "predict", "reps": args.reps, "train_runs": args.train_runs,
                            "targets": TARGETS, "figures": figures,
                            "samples_s": {"sizing": sizing, "ordering": order}})
    ray.shutdown()
    return 0


def _p95_peaks(store) -> dict[str, float]:
    """Per component family, the p95 of the peak memory its attempts used (run history)."""
    from rayflow.predict.history import samples_from_store

    peaks: dict[str, list[float]] = {}
    for s in samples_from_store(store):
        if s.peak_rss_bytes:
            peaks.setdefault(s.component, []).append(float(s.peak_rss_bytes))
    return {k: float(np.percentile(v, 95)) for k, v in peaks.items()}


def _memory_ratio(components: dict, p95: dict[str, float]) -> float | None:
    """Memory requested over the family's p95 peak, worst over the components that requested some."""
    worst = None
    for cid, c in components.items():
        family = f"__main__:{cid.rsplit('_', 1)[0] if cid.rsplit('_', 1)[-1].isdigit() else cid}"
        req, used = c["resources"].get("memory"), p95.get(family)
        if req and used:
            worst = max(worst or 0.0, req / used)
    return None if worst is None else round(worst, 2)


if __name__ == "__main__":
    sys.exit(main())
