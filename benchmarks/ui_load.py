"""The web UI's run page with many components, in a real headless Chromium.

A real ``rayflow server`` (the CLI, a SQLite store, no auth) serves runs recorded in its
store with 1,000 to 30,000 components in three shapes: a layered DAG (each component
reads two of the level before), one wide fan-out with a fan-in, and many short chains.
Timings come from a simulated schedule on 8 slots, so every bar has a queue wait and a
run; one component in 500 failed. For each run and repetition a fresh browser context
measures, from the navigation's start, with the server's 1 s cache of a finished run's
answer expired (each load is cold: the server reads the store and computes the metrics):

- ``fetch_ms``, the baseline: the page's own ``fetch`` of the answer the page reads
  (``GET /v1/runs/{id}?metrics=summary``) and its ``JSON.parse``; what any client showing
  the run pays before drawing anything;
- ``page_ms``: opening ``/#/run/{id}`` until the header, metrics, Gantt chart, DAG and the
  first page of the component table are drawn (the page is usable);
- ``next_page_ms`` and ``detail_ms``: the table's next page, a component's detail with its log.

It reports medians, the ratio ``page_ms / fetch_ms`` and whether the 10,000-component page
loads in under 2 s (the target of the web UI's issue). Run from the repository root::

    python benchmarks/ui_load.py            # 5 repetitions, 1k / 10k / 30k components
    python benchmarks/ui_load.py --quick    # 2 repetitions, 1k / 10k
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from reporting import write_report

from rayflow.store.port import ComponentRecord, RunRecord
from rayflow.store.sqlite import SqliteStore

RESULTS = Path(__file__).parent / "results" / "ui_load.json"
QUICK_RESULTS = RESULTS.with_name("ui_load-quick.json")
TARGET_MS = 2000.0          # the 10,000-component run page
SLOTS = 8
COLD_S = 1.2                # longer than the server's cache of a finished run's answer (1 s): each load is cold
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRAWN = """() => document.querySelector('#run-status') && document.querySelector('#metrics dl')
    && document.querySelectorAll('#components-table tbody tr').length > 0
    && document.querySelector('#gantt').height > 0 && document.querySelector('#dag-svg')"""


def shape(kind: str, n: int) -> dict[str, list[str]]:
    """Component id -> upstream ids."""
    if kind == "layered":
        width = max(1, n // 20)
        ids = [f"c{i:05d}" for i in range(n)]
        return {cid: ([] if i < width else [ids[(i // width - 1) * width + (i * 7 + j) % width] for j in (0, 1)])
                for i, cid in enumerate(ids)}
    if kind == "fan":
        leaves = [f"leaf{i:05d}" for i in range(n - 2)]
        return {"source": [], **{leaf: ["source"] for leaf in leaves}, "sink": leaves}
    chains, length = max(1, n // 10), 10
    return {f"k{c:04d}_{s}": ([] if s == 0 else [f"k{c:04d}_{s - 1}"]) for c in range(chains) for s in range(length)}


def simulate(run_id: str, dag: dict[str, list[str]], t0: float, rng: random.Random) -> list[ComponentRecord]:
    """A list schedule on SLOTS slots: each component is submitted once its upstreams end,
    waits for a slot, runs 10 ms to 0.5 s."""
    ended: dict[str, float] = {}
    records, free = [], [t0] * SLOTS
    heapq.heapify(free)
    for cid, ups in dag.items():                      # dict order is topological in every shape
        submitted = max([t0, *(ended[u] for u in ups)])
        slot = heapq.heappop(free)
        started = max(submitted, slot)
        duration = rng.uniform(0.01, 0.5)
        ended[cid] = started + duration
        heapq.heappush(free, ended[cid])
        failed = rng.random() < 0.002
        records.append(ComponentRecord(
            run_id=run_id, component_id=cid, state="FAILED" if failed else "SUCCEEDED", attempts=1,
            submitted_at=submitted, started_at=started, ended_at=ended[cid], queued_s=started - submitted,
            duration_s=duration, node_id="a1b2c3d4e5f6", worker_id=f"w{rng.randrange(8)}", upstream=list(ups),
            error="ValueError: a simulated failure" if failed else None))
    return records


def record_runs(store_url: str, sizes: list[int], kinds: list[str]) -> dict[str, tuple[str, int]]:
    store = SqliteStore(store_url.removeprefix("sqlite:///"))
    rng = random.Random(7)
    runs = {}
    t0 = time.time() - 3600
    for n in sizes:
        for kind in kinds:
            run_id = f"ui-{kind}-{n}"
            comps = simulate(run_id, shape(kind, n), t0, rng)
            end = max(c.ended_at for c in comps)
            failed = any(c.state == "FAILED" for c in comps)
            run = RunRecord(run_id=run_id, name=f"ui-{kind}", status="FAILED" if failed else "SUCCEEDED",
                            created_at=t0, started_at=t0, ended_at=end, n_components=len(comps),
                            error="component failed" if failed else None)
            store.create_run(run, comps)
            runs[run_id] = (kind, len(comps))
    store.close()
    return runs


def serve(store_url: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "rayflow.cli.main", "server", "--port", str(port), "--auth", "none",
                             "--store", store_url, "--executor", "local"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "RAYFLOW_SERVER": ""})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start in 60 s")


def measure(browser, url: str, run_id: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/ui/app.css")      # same origin, nothing drawn: the fetch baseline's page
    time.sleep(COLD_S)
    fetch_ms = page.evaluate("""async (id) => { const t = performance.now();
        const body = JSON.parse(await (await fetch(`/v1/runs/${id}?metrics=summary`)).text());
        if (!body.components) throw new Error('no components'); return performance.now() - t; }""", run_id)
    page.close()
    page = context.new_page()
    time.sleep(COLD_S)
    page.goto(f"{url}/#/run/{run_id}", wait_until="commit")
    page.wait_for_function(DRAWN, timeout=60_000, polling="raf")
    page_ms = page.evaluate("() => performance.now()")
    t = page.evaluate("() => performance.now()")
    page.click("#comp-next")
    page.wait_for_function("() => document.querySelector('#comp-info').textContent.startsWith('page 2')", polling="raf")
    next_ms = page.evaluate("() => performance.now()") - t
    t = page.evaluate("() => performance.now()")
    page.click("#components-table tbody tr")
    page.wait_for_function("() => { const l = document.querySelector('#log'); return l && l.textContent !== 'loading…'; }",
                           polling="raf")
    detail_ms = page.evaluate("() => performance.now()") - t
    context.close()
    return {"fetch_ms": fetch_ms, "page_ms": page_ms, "next_page_ms": next_ms, "detail_ms": detail_ms}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--sizes", default="1000,10000,30000")
    p.add_argument("--kinds", default="layered,fan,chains")
    p.add_argument("--quick", action="store_true", help="2 repetitions, 1k and 10k components")
    p.add_argument("--port", type=int, default=8479)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.sizes = 2, "1000,10000"
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rayflow-ui-") as tmp:
        store_url = f"sqlite:///{tmp}/ui.db"
        runs = record_runs(store_url, [int(s) for s in args.sizes.split(",")], args.kinds.split(","))
        server = serve(store_url, args.port)
        results: dict[str, dict] = {}
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                url = f"http://127.0.0.1:{args.port}"
                for run_id, (kind, n) in runs.items():
                    sizes = {v: len(urllib.request.urlopen(f"{url}/v1/runs/{run_id}?metrics={v}").read())
                             for v in ("full", "summary")}
                    samples = [measure(browser, url, run_id) for _ in range(args.reps)]
                    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
                    results[run_id] = {"shape": kind, "components": n, "first_page_ms": round(samples[0]["page_ms"], 1),
                                       **{f"median_{k}": round(v, 1) for k, v in med.items()},
                                       "ratio_page_to_fetch": round(med["page_ms"] / med["fetch_ms"], 2),
                                       "page_ms": [round(s["page_ms"], 1) for s in samples],
                                       "answer_bytes": sizes}
                    if n == 10_000:
                        results[run_id] |= {"target_ms": TARGET_MS, "meets_target": med["page_ms"] < TARGET_MS}
                    r = results[run_id]
                    print(f"{kind:<8} {n:>6} components: page {r['median_page_ms']:>7.0f} ms "
                          f"(first {r['first_page_ms']:.0f}), fetch {r['median_fetch_ms']:>6.0f} ms, "
                          f"ratio {r['ratio_page_to_fetch']:>5.2f}, next page {r['median_next_page_ms']:.0f} ms, "
                          f"detail {r['median_detail_ms']:.0f} ms", flush=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    write_report(out, {"benchmark": "ui_load", "reps": args.reps, "slots": SLOTS, "runs": results,
                       "baseline": "the browser's fetch + JSON.parse of GET /v1/runs/{id}?metrics=summary "
                                   "(what the page reads) in the same context",
                       "chromium": subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()})
    missed = [k for k, r in results.items() if r.get("meets_target") is False]
    if missed:
        print(f"BELOW target (10,000 components under {TARGET_MS:.0f} ms): {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
