"""What batch progress costs a stream: the data-plane pipeline with progress off, reported, and shown.

One Ray session (num_cpus=2). The data and the three stages are dataplane.py's
(``--gib`` GiB of 8 float64 columns as Parquet; parse, transform, aggregate). Three
modes, interleaved, ``--reps`` times each (the machine is shared and noisy):

- off:      ``RAYFLOW_STREAM_PROGRESS=0``: no progress channel, no reports;
- reported: the coordinator reports to the progress board (the default), nobody draws it;
- shown:    as reported, and ``rf.run(..., progress=True)`` draws the bars (tqdm, to a
            string buffer) while the driver polls the board every 0.2 s.

Reported: median rows/s per mode and the ratios reported/off and shown/off (target:
within noise, >= 0.97). On a shared machine the end-to-end ratios are noisy, so the
costs are also measured directly, in a Ray worker: one fire-and-forget report (as the
coordinator sends at most twice a second) and one batch counted (``StreamCounter.add``,
once per batch). Writes ``benchmarks/results/stream_progress.json``.

    python benchmarks/stream_progress.py              # 1 GiB, 5 reps
    python benchmarks/stream_progress.py --gib 0.25 --reps 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import ray
from dataplane import generate, pipeline
from reporting import write_report

import rayflow as rf
from rayflow.data.progress import StreamCounter
from rayflow.execute.ray.progress import StreamWatch

RESULTS = Path(__file__).resolve().parent / "results" / "stream_progress.json"
MODES = ("off", "reported", "shown")


def run_once(mode: str, path: str, batch_size: int, buffer: int) -> dict:
    os.environ["RAYFLOW_STREAM_PROGRESS"] = "0" if mode == "off" else "1"
    bars = io.StringIO()
    with contextlib.redirect_stderr(bars):
        t0 = time.perf_counter()
        out = rf.run(pipeline, path=path, batch_size=batch_size, buffer=buffer, progress=mode == "shown")
        seconds = time.perf_counter() - t0
    rows = pc.sum(out["rows"]).as_py()
    return {"seconds": seconds, "rows": rows, "rows_per_s": rows / seconds, "sum": pc.sum(out["sum"]).as_py(),
            "bar_chars": len(bars.getvalue())}


@ray.remote(num_cpus=0)
def unit_costs(channel, n: int) -> dict:
    """Seconds per report sent and per batch counted, in a worker like the coordinator."""
    counter = StreamCounter(["parse", "transform", "aggregate"], 1 << 30, every_s=3600)
    snap = counter.snapshot()
    t0 = time.perf_counter()
    for _ in range(n):
        channel.send(snap)
    send = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n * 100):
        counter.add(131_072, 1)
    count = (time.perf_counter() - t0) / (n * 100)
    return {"report_s": send, "count_batch_s": count}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=1.0, help="data size in GiB (default 1)")
    p.add_argument("--reps", type=int, default=5, help="repetitions of each mode, interleaved (default 5)")
    p.add_argument("--batch-size", type=int, default=1 << 17, help="rows per batch (default 131072)")
    p.add_argument("--buffer", type=int, default=4, help="batches in flight through the stream")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    rf.init(store="memory://")
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="rayflow-progress-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        rows = generate(data_dir, args.gib)
        print(f"generated {rows:,} rows ({args.gib} GiB)", flush=True)
        run_once("reported", str(data_dir), args.batch_size, args.buffer)   # warm-up: actors, page cache
        for rep in range(args.reps):
            order = MODES if rep % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                r = run_once(mode, str(data_dir), args.batch_size, args.buffer)
                runs[mode].append(r)
                print(f"rep {rep}  {mode:<9} {r['seconds']:6.2f} s  {r['rows_per_s'] / 1e6:6.2f} M rows/s", flush=True)
    os.environ["RAYFLOW_STREAM_PROGRESS"] = "1"
    costs = ray.get(unit_costs.remote(StreamWatch().channel(("parse", "transform", "aggregate")), 2000))
    batches = -(-rows // args.batch_size)
    seconds = statistics.median(r["seconds"] for r in runs["off"])
    reports = 2 * seconds + 2   # at most every 0.5 s, plus the first and the last
    overhead = (reports * costs["report_s"] + batches * costs["count_batch_s"]) / seconds
    sums = {r["sum"] for rs in runs.values() for r in rs}
    if len({round(s, 6) for s in sums}) != 1:
        sys.exit(f"RESULT MISMATCH between modes: {sorted(sums)}")
    median = {m: statistics.median(r["rows_per_s"] for r in runs[m]) for m in MODES}
    ratios = {m: median[m] / median["off"] for m in ("reported", "shown")}
    print()
    for m in MODES:
        print(f"{m:<9} median {median[m] / 1e6:6.2f} M rows/s")
    print(f"reported / off: {ratios['reported']:.3f}   shown / off: {ratios['shown']:.3f}   (target >= 0.97)")
    print(f"one report {costs['report_s'] * 1e6:.1f} us, one batch counted {costs['count_batch_s'] * 1e9:.0f} ns: "
          f"{overhead:.5%} of the coordinator's time for {batches} batches in {seconds:.1f} s")
    write_report(args.out, {
        "benchmark": "stream_progress", "gib": args.gib, "rows": rows, "reps": args.reps,
        "batch_size": args.batch_size, "buffer": args.buffer, "runs": runs,
        "median_rows_per_s": median, "ratio_reported_over_off": round(ratios["reported"], 3),
        "ratio_shown_over_off": round(ratios["shown"], 3), "target_ratio": 0.97,
        "report_us": round(costs["report_s"] * 1e6, 2), "count_batch_ns": round(costs["count_batch_s"] * 1e9, 1),
        "estimated_overhead_fraction": overhead,
    })
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
