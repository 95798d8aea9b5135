"""Fractional CPU requests: 8 components at num_cpus=0.25 fanned out from one loader.

Each of the 8 sleeps ``--seconds`` (3 s: I/O-bound work); on 2 CPUs all 8 fit at once, so
the ideal wall time is about that. Ray runs every task in a worker process of its own and
by default keeps only as many idle workers as CPUs (starting at most that many at once,
about a second of a core each, and killing idle extras after a second), so the extra
workers are started again for every run. A local Ray that rayflow starts keeps more
(``RAYFLOW_WARM_WORKERS``, rayflow/core/config.py).

Each repetition runs a fresh Python process per mode, in which ``rf.init()`` starts local
Ray (num_cpus=2) and the workflow runs three times: ``cold`` (right after the cluster
started), then ``warm`` and ``warm2`` (2 s after the run before). Modes: ``rayflow``
(the default) and ``ray-default`` (``RAYFLOW_WARM_WORKERS=0``: Ray's own settings).
Reported: medians of wall / ideal per mode and run; target <= 1.3 for every run of the
default. Writes ``benchmarks/results/fractional.json``.

    python benchmarks/fractional.py             # 3 repetitions
    python benchmarks/fractional.py --reps 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from reporting import write_report

RESULTS = Path(__file__).resolve().parent / "results" / "fractional.json"
TARGET = 1.3
RUNS = ("cold", "warm", "warm2")
MODES = {"rayflow": {}, "ray-default": {"RAYFLOW_WARM_WORKERS": "0"}}

CHILD = r'''
import json, sys, tempfile, time
import rayflow as rf

seconds = float(sys.argv[1])

@rf.component(num_cpus=1)
def load() -> int:
    return 1

@rf.component(num_cpus=0.25)
def wait(x: int, i: int) -> int:
    time.sleep(seconds)
    return x + i

@rf.workflow(name="fractional_fan")
def fan():
    x = load()
    return [wait.options(id=f"wait_{i}")(x, i) for i in range(8)]

tmp = tempfile.mkdtemp(prefix="rayflow-frac-")
t0 = time.perf_counter()
rf.init(store=f"sqlite:///{tmp}/f.db", checkpoints="off", num_cpus=2)
out = {"init_s": time.perf_counter() - t0}
for i, label in enumerate(("cold", "warm", "warm2")):
    if i:
        time.sleep(2.0)
    t0 = time.perf_counter()
    value = rf.run(fan)
    out[label] = time.perf_counter() - t0
    assert value == [1 + i for i in range(8)], value
print("RESULT " + json.dumps(out), flush=True)
'''


def one(mode: str, seconds: float) -> dict[str, float]:
    env = {**os.environ, **MODES[mode], "RAYFLOW_SERVER": "local", "RAYFLOW_TRACKER": "0"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(seconds)], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.exit(f"the {mode} run failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0, help="how long each of the 8 components sleeps")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    samples: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for rep in range(args.reps):
        order = list(MODES) if rep % 2 == 0 else list(reversed(MODES))
        for mode in order:
            t0 = time.perf_counter()
            r = one(mode, args.seconds)
            samples[mode].append(r)
            print(f"rep {rep + 1}/{args.reps} {mode:<12} " + "  ".join(f"{k} {r[k]:.2f}s" for k in ("init_s", *RUNS))
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    result: dict = {"benchmark": "fractional", "reps": args.reps, "ideal_s": args.seconds,
                    "shape": "a loader, then 8 components at num_cpus=0.25 sleeping the ideal time, on 2 CPUs",
                    "target": f"wall / ideal <= {TARGET} for every run of the default", "modes": {}}
    for mode, runs in samples.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("init_s", *RUNS)}
        result["modes"][mode] = {"samples": runs, "median_s": {k: round(v, 2) for k, v in med.items()},
                                 "wall_over_ideal": {k: round(med[k] / args.seconds, 2) for k in RUNS}}
    ratios = result["modes"]["rayflow"]["wall_over_ideal"]
    result["meets_target"] = {k: v <= TARGET for k, v in ratios.items()}
    print(f"\nwall / ideal ({args.seconds:g} s), medians of {args.reps} (target <= {TARGET}):")
    for mode in MODES:
        w = result["modes"][mode]["wall_over_ideal"]
        print(f"  {mode:<12} " + "  ".join(f"{k} {w[k]:.2f}" for k in RUNS))
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
