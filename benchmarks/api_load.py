"""HTTP load on a real ``rayflow server``, with wrk on loopback, against a bare FastAPI app.

For each run store (SQLite in a temporary folder; PostgreSQL in a throwaway database
``rayflow_bench_<pid>``, dropped at the end) the benchmark makes tokens, starts ``rayflow
server --auth token`` as its own process on a free loopback port (a Ray driver: one
process, no ``--workers``), drives one run to the end, and then measures with Debian's
``wrk`` (a Lua script: bearer token, JSON body, per-status counts, p95 from ``done()``):

- ``get``:    ``GET /v1/runs/{id}`` of that finished run. Target >= 2,000 requests/s answered
  200 with p95 <= 50 ms.
- ``submit``: ``POST /v1/runs`` of a small spec, a distinct Idempotency-Key per request.
  Target >= 300 runs/s accepted (201). The server runs with a small ``--max-runs``, so
  most submitted runs wait queued; how many were accepted and how many the server drove
  is reported.

The baseline, in the same run: a minimal FastAPI app under uvicorn (one process, the same
uvicorn settings) answering the same routes with static JSON of the same size (the GET
body is the finished run's own JSON). Reported: medians of ``--reps`` repetitions (sides
alternating which goes first), rayflow / bare ratios, the CPU time of each server process
per request. Also one ``get`` run with a single token, to show the per-caller rate limit.
Run from the repository root::

    python benchmarks/api_load.py              # 3 repetitions of 10 s, writes results/api_load.json
    python benchmarks/api_load.py --reps 5 --duration 15 --stores sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from reporting import write_report

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "api_load.json"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGETS = {"get_rps": 2000.0, "get_p95_ms": 50.0, "submit_rps": 300.0}
SPEC = {"name": "bench_submit",
        "components": [{"id": "load", "function": "rayflow.examples.etl:load", "config": {"n": 10}},
                       {"id": "total", "function": "rayflow.examples.etl:total"}],
        "connections": [{"from": "load", "to": "total"}]}
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")

BASELINE_APP = '''
import json, sys
import uvicorn
from fastapi import FastAPI

GET_BODY = json.loads(open(sys.argv[1]).read())
POST_BODY = json.loads(open(sys.argv[2]).read())
app = FastAPI()


@app.get("/v1/runs/{run_id}")
def get_run(run_id: str) -> dict:
    return GET_BODY


@app.post("/v1/runs", status_code=201)
def submit_run(payload: dict) -> dict:
    return POST_BODY


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False,
            timeout_graceful_shutdown=5)
'''

# {tokens}, {method}, {path}, {body}, {per_thread}, {keyed}, {nonce} filled in by wrk_script()
LUA = r'''-- written by benchmarks/api_load.py
local tokens = {tokens}
local method, path, body = "{method}", "{path}", {body}
local per_thread = {per_thread}      -- responses per wrk thread before it stops (0: the duration bounds it)
local keyed = {keyed}                -- a distinct Idempotency-Key per request
local nonce = "{nonce}"
local threads = {{}}
counter, answered, codes, started_ns, stopped_ns = 0, 0, {{}}, 0, 0

local function now_ns()              -- wall clock; wrk's Lua has none finer than seconds
  local f = io.popen("date +%s%N")
  local t = tonumber(f:read("*l"))
  f:close()
  return t
end

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function request()
  if counter == 0 then started_ns = now_ns() end
  counter = counter + 1
  local h = {{["Authorization"] = "Bearer " .. tokens[(counter % #tokens) + 1]}}
  if body then h["Content-Type"] = "application/json" end
  if keyed then h["Idempotency-Key"] = nonce .. "-" .. tid .. "-" .. counter end
  return wrk.format(method, path, h, body)
end

function response(status, headers, resp_body)
  answered = answered + 1
  codes[status] = (codes[status] or 0) + 1
  if per_thread > 0 and answered >= per_thread and stopped_ns == 0 then
    stopped_ns = now_ns()            -- the request bound: this thread stops before the duration
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local agg = {{}}
  local elapsed_us, capped = 0, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do agg[k] = (agg[k] or 0) + v end
    local t0, t1 = t:get("started_ns"), t:get("stopped_ns")
    local us = summary.duration
    if t1 > 0 and t0 > 0 then us = (t1 - t0) / 1000; capped = capped + 1 end
    if us > elapsed_us then elapsed_us = us end
  end
  local parts = {{}}
  for k, v in pairs(agg) do table.insert(parts, string.format('"%d": %d', k, v)) end
  local e = summary.errors
  io.write(string.format('RESULT {{"requests": %d, "duration_us": %d, "elapsed_us": %d, "capped_threads": %d, '
    .. '"bytes": %d, "errors": {{"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}, '
    .. '"p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
    .. '"codes": {{%s}}}}\n',
    summary.requests, summary.duration, elapsed_us, capped, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, table.concat(parts, ", ")))
end
'''


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_SERVER", "RAYFLOW_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["RAYFLOW_HOME"] = str(home)                       # checkpoints and the signing key: temporary
    env["RAYFLOW_CHECKPOINTS"] = str(home / "checkpoints")
    return env


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Served:
    """An HTTP server process of the benchmark (rayflow's or the baseline), its log in a file."""

    name: str
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def wait_up(self, timeout: float, headers: dict[str, str] | None = None, path: str = "/healthz") -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited ({self.proc.returncode}) before answering:\n{self.tail()}")
            try:
                if httpx.get(self.url + path, headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{self.name} did not answer {path} in {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.25)

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM, then wait; seconds it took to exit (killed after ``timeout``)."""
        if self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"{self.name} ignored SIGTERM for {timeout:.0f} s: killed")
            self.proc.kill()
            self.proc.wait(10)
        return time.monotonic() - started


def start(name: str, argv: list[str], log: Path, env: dict[str, str], port: int) -> Served:
    out = open(log, "wb")   # noqa: SIM115 - the child writes it for its whole life
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
    out.close()
    return Served(name, proc, port, log)


def rayflow_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "rayflow.cli.main", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    if done.returncode != 0:
        sys.exit(f"rayflow {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


# -- wrk ---------------------------------------------------------------------------------------


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (done.stdout + done.stderr).splitlines()[0].strip()


def lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrk_script(folder: Path, name: str, *, method: str, path: str, body: str | None, tokens: list[str],
               per_thread: int, keyed: bool) -> Path:
    script = LUA.format(tokens="{" + ", ".join(lua_string(t) for t in tokens) + "}", method=method, path=path,
                        body=lua_string(body) if body is not None else "nil", per_thread=per_thread,
                        keyed="true" if keyed else "false", nonce=f"{name}-{os.getpid()}-{time.time_ns()}")
    out = folder / f"{name}.lua"
    out.write_text(script)
    return out


@dataclass
class Load:
    """One wrk run: what it sent and what came back."""

    requests: int
    seconds: float
    codes: dict[int, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    server_cpu_s: float
    ok_status: int
    capped: bool = False     # the request bound ended it before the duration

    @property
    def ok(self) -> int:
        return self.codes.get(self.ok_status, 0)

    @property
    def ok_rps(self) -> float:
        return self.ok / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.server_cpu_s / max(1, self.requests)

    def as_json(self) -> dict:
        return {"requests": self.requests, "seconds": round(self.seconds, 3), "ok": self.ok,
                "ok_per_s": round(self.ok_rps, 1), "codes": {str(k): v for k, v in sorted(self.codes.items())},
                "p50_ms": round(self.p50_ms, 2), "p95_ms": round(self.p95_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "max_ms": round(self.max_ms, 2), "socket_errors": self.errors, "ended_by_request_bound": self.capped,
                "server_cpu_us_per_request": round(self.cpu_us_per_request, 1)}


def run_wrk(server: Served, script: Path, args: argparse.Namespace, *, duration: float, ok_status: int) -> Load:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration:g}s", "--timeout", "10s",
           "--latency", "-s", str(script), server.url]
    cpu0 = cpu_seconds(server.proc.pid)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    cpu = cpu_seconds(server.proc.pid) - cpu0
    found = re.search(r"^RESULT (\{.*\})$", done.stdout, re.M)
    if done.returncode != 0 or not found:
        sys.exit(f"wrk failed ({done.returncode}): {done.stderr.strip()[-800:]}\n{done.stdout[-1500:]}")
    r = json.loads(found.group(1))
    # a thread that reached the request bound stopped early, but wrk waits out the duration:
    # rates are over the time the threads were sending (elapsed_us), not wrk's runtime
    return Load(requests=r["requests"], seconds=r["elapsed_us"] / 1e6, capped=r["capped_threads"] > 0,
                codes={int(k): v for k, v in r["codes"].items()}, p50_ms=r["p50_us"] / 1e3,
                p95_ms=r["p95_us"] / 1e3, p99_ms=r["p99_us"] / 1e3, max_ms=r["max_us"] / 1e3,
                errors=r["errors"], server_cpu_s=cpu, ok_status=ok_status)


# -- stores --------------------------------------------------------------------------------------


def pg_execute(url: str, statement: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())


def pg_database_url(admin_url: str, database: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + database


@dataclass
class StoreCase:
    kind: str
    url: str
    cleanup: list = field(default_factory=list)


def make_store(kind: str, tmp: Path, admin_url: str) -> StoreCase | None:
    if kind == "sqlite":
        return StoreCase(kind, f"sqlite:///{tmp / 'bench.db'}")
    database = f"rayflow_bench_{os.getpid()}"
    try:
        pg_execute(admin_url, f"DROP DATABASE IF EXISTS {database}")
        pg_execute(admin_url, f"CREATE DATABASE {database}")
    except Exception as exc:  # noqa: BLE001 - the case is skipped with the reason
        print(f"skipping the PostgreSQL store: {type(exc).__name__}: {exc}")
        return None
    case = StoreCase(kind, pg_database_url(admin_url, database))
    case.cleanup.append(lambda: pg_execute(admin_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
    return case


def make_tokens(store_url: str, env: dict[str, str], n: int) -> list[str]:
    """The first through ``rayflow token create`` (as an operator would), the rest directly."""
    from rayflow.server import tokens
    from rayflow.store import open_store

    made = [rayflow_cli(env, "token", "create", "--scope", "submit", "--name", "bench-0", "--store",
                        store_url).strip()]
    store = open_store(store_url)
    try:
        made += [tokens.create(store, "submit", f"bench-{i}")[0] for i in range(1, n)]
    finally:
        store.close()
    return made


def run_counts(store_url: str) -> dict[str, int]:
    from rayflow.store import open_store

    store = open_store(store_url)
    try:
        counts: dict[str, int] = {}
        for status in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"):
            counts[status] = len(store.list_runs_page(status=status, limit=1_000_000))
        return counts
    finally:
        store.close()


def scrape(server: Served, token: str) -> dict[str, float]:
    """Sums of the server's run metrics (over every label), from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name in ("rayflow_runs_finished_total", "rayflow_runs_in_flight", "rayflow_runs_queued"):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


# -- one store ------------------------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(rayflow: list[Load], bare: list[Load]) -> dict:
    rf_rps, bare_rps = median([s.ok_rps for s in rayflow]), median([s.ok_rps for s in bare])
    return {
        "rayflow": [s.as_json() for s in rayflow],
        "bare_fastapi": [s.as_json() for s in bare],
        "rayflow_median_ok_per_s": round(rf_rps, 1),
        "rayflow_median_p50_ms": round(median([s.p50_ms for s in rayflow]), 2),
        "rayflow_median_p95_ms": round(median([s.p95_ms for s in rayflow]), 2),
        "bare_median_ok_per_s": round(bare_rps, 1),
        "bare_median_p95_ms": round(median([s.p95_ms for s in bare]), 2),
        "ratio": round(rf_rps / bare_rps, 3) if bare_rps else None,
        "paired_ratio_median": round(median([r.ok_rps / b.ok_rps for r, b in zip(rayflow, bare, strict=True)
                                             if b.ok_rps]), 3),
        "server_cpu_us_per_request": {"rayflow": round(median([s.cpu_us_per_request for s in rayflow]), 1),
                                      "bare_fastapi": round(median([s.cpu_us_per_request for s in bare]), 1)},
    }


def wait_final(server: Served, run_id: str, headers: dict[str, str], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=headers, timeout=30).json()
        if run.get("status") in TERMINAL:
            return run
        if time.monotonic() > deadline or server.proc.poll() is not None:
            sys.exit(f"the warm-up run {run_id} did not end ({run.get('status')}):\n{server.tail()}")
        time.sleep(0.2)


def bench_store(case: StoreCase, args: argparse.Namespace, tmp: Path) -> dict:
    folder = tmp / case.kind
    folder.mkdir()
    env = child_env(folder / "home")
    print(f"\n== {case.kind}: making {args.tokens} tokens", flush=True)
    toks = make_tokens(case.url, env, args.tokens)
    auth = {"Authorization": f"Bearer {toks[0]}"}
    port = free_port()
    server = start("rayflow server", [sys.executable, "-m", "rayflow.cli.main", "server", "--host", "127.0.0.1",
                                      "--port", str(port), "--store", case.url, "--auth", "token",
                                      "--max-runs", str(args.max_runs)], folder / "server.log", env, port)
    bare: Served | None = None
    out: dict = {"store": case.kind}
    try:
        t0 = time.monotonic()
        server.wait_up(180)
        server.wait_up(180, headers=auth, path="/readyz")
        out["server_start_s"] = round(time.monotonic() - t0, 2)
        print(f"rayflow server up in {out['server_start_s']} s (pid {server.proc.pid})", flush=True)
        r = httpx.post(server.url + "/v1/runs", json={"spec": SPEC}, headers=auth, timeout=30)
        if r.status_code != 201:
            sys.exit(f"the warm-up submit was refused: {r.status_code} {r.text[:500]}")
        post_body = r.text
        run_id = r.json()["run_id"]
        run = wait_final(server, run_id, auth)
        if run["status"] != "SUCCEEDED":
            sys.exit(f"the warm-up run {run_id} ended {run['status']}: {json.dumps(run)[:800]}")
        get_body = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=auth, timeout=30).content
        (folder / "get.json").write_bytes(get_body)
        (folder / "post.json").write_text(post_body)
        (folder / "bare.py").write_text(BASELINE_APP)
        bare_port = free_port()
        bare = start("bare FastAPI", [sys.executable, str(folder / "bare.py"), str(folder / "get.json"),
                                      str(folder / "post.json"), str(bare_port)], folder / "bare.log", env, bare_port)
        bare.wait_up(60)
        out["get_body_bytes"] = len(get_body)
        out["submit_body_bytes"] = len(json.dumps({"spec": SPEC}))

        path = f"/v1/runs/{run_id}"
        body = json.dumps({"spec": SPEC})
        get_limit = args.get_requests // args.threads
        post_limit = args.submit_requests // args.threads
        get_script = wrk_script(folder, "get", method="GET", path=path, body=None, tokens=toks,
                                per_thread=get_limit, keyed=False)
        one_script = wrk_script(folder, "get-one-token", method="GET", path=path, body=None, tokens=toks[:1],
                                per_thread=get_limit, keyed=False)
        # the baseline is sent the same headers (it ignores them)
        for side in (server, bare):
            run_wrk(side, get_script, args, duration=args.warmup, ok_status=200)

        sides = {"rayflow": server, "bare": bare}
        get_samples: dict[str, list[Load]] = {"rayflow": [], "bare": []}
        for rep in range(args.reps):
            order = ["rayflow", "bare"] if rep % 2 == 0 else ["bare", "rayflow"]
            for name in order:
                time.sleep(args.settle)
                get_samples[name].append(run_wrk(sides[name], get_script, args, duration=args.duration, ok_status=200))
            r_, b_ = get_samples["rayflow"][-1], get_samples["bare"][-1]
            print(f"rep {rep + 1}/{args.reps} get     rayflow {r_.ok_rps:8.1f}/s p95 {r_.p95_ms:6.1f} ms  "
                  f"bare {b_.ok_rps:8.1f}/s p95 {b_.p95_ms:6.1f} ms  ratio {r_.ok_rps / b_.ok_rps:.3f}  "
                  f"codes {r_.codes}", flush=True)
        out["get"] = summarize(get_samples["rayflow"], get_samples["bare"])
        time.sleep(args.settle)
        single = run_wrk(server, one_script, args, duration=min(args.duration, 5.0), ok_status=200)
        out["get_one_token"] = single.as_json()
        print(f"get with one token: {single.ok_rps:.1f}/s answered 200, codes {single.codes}", flush=True)

        before = scrape(server, toks[0])
        post_samples: dict[str, list[Load]] = {"rayflow": [], "bare": []}
        accounting = []
        for rep in range(args.reps):
            order = ["rayflow", "bare"] if rep % 2 == 0 else ["bare", "rayflow"]
            for name in order:
                time.sleep(args.settle)
                script = wrk_script(folder, f"submit-{name}-{rep}", method="POST", path="/v1/runs", body=body,
                                    tokens=toks, per_thread=post_limit, keyed=True)
                sample = run_wrk(sides[name], script, args, duration=args.duration, ok_status=201)
                post_samples[name].append(sample)
                if name == "rayflow":
                    now = scrape(server, toks[0])
                    accounting.append({"accepted": sample.ok,
                                       "finished_so_far": now.get("rayflow_runs_finished_total", 0.0)
                                       - before.get("rayflow_runs_finished_total", 0.0),
                                       "in_flight": now.get("rayflow_runs_in_flight"),
                                       "queued": now.get("rayflow_runs_queued")})
            r_, b_ = post_samples["rayflow"][-1], post_samples["bare"][-1]
            print(f"rep {rep + 1}/{args.reps} submit  rayflow {r_.ok_rps:8.1f}/s p95 {r_.p95_ms:6.1f} ms  "
                  f"bare {b_.ok_rps:8.1f}/s p95 {b_.p95_ms:6.1f} ms  ratio {r_.ok_rps / b_.ok_rps:.3f}  "
                  f"codes {r_.codes}  queued {accounting[-1]['queued']}", flush=True)
        out["submit"] = summarize(post_samples["rayflow"], post_samples["bare"])
        after = scrape(server, toks[0])
        accepted = sum(s.ok for s in post_samples["rayflow"])
        out["submit_accounting"] = {
            "accepted_201": accepted,
            "refused": sum(s.requests - s.ok for s in post_samples["rayflow"]),
            "driven_to_the_end_during_the_submit_tests": int(after.get("rayflow_runs_finished_total", 0.0)
                                                             - before.get("rayflow_runs_finished_total", 0.0)),
            "driving_at_the_end": after.get("rayflow_runs_in_flight"),
            "queued_at_the_end": after.get("rayflow_runs_queued"),
            "per_rep": accounting,
        }
    finally:
        if bare is not None:
            bare.stop()
        out["server_stop_s"] = round(server.stop(), 2)
        out["server_exit_code"] = server.proc.returncode
    out["runs_in_store_after_stop"] = run_counts(case.url)
    if "submit_accounting" in out:
        # what the server recorded: wrk counts the 201s it read, but a request in flight when
        # wrk stops (its duration or request bound) may still be recorded by the server
        out["submit_accounting"]["recorded_by_the_server"] = sum(out["runs_in_store_after_stop"].values()) - 1
    acc = out.get("submit_accounting", {})
    print(f"submitted runs: {acc.get('accepted_201')} answered 201 ({acc.get('recorded_by_the_server')} recorded), "
          f"{acc.get('driven_to_the_end_during_the_submit_tests')}"
          f" driven to the end during the tests; after stop: {out['runs_in_store_after_stop']}; stop took "
          f"{out['server_stop_s']} s", flush=True)
    return out


def judge(results: dict[str, dict]) -> dict[str, dict]:
    verdicts = {}
    for kind, res in results.items():
        get, sub = res["get"], res["submit"]
        verdicts[kind] = {
            "get_rps": {"value": get["rayflow_median_ok_per_s"], "target": f">= {TARGETS['get_rps']:g}",
                        "met": get["rayflow_median_ok_per_s"] >= TARGETS["get_rps"]},
            "get_p95_ms": {"value": get["rayflow_median_p95_ms"], "target": f"<= {TARGETS['get_p95_ms']:g}",
                           "met": get["rayflow_median_p95_ms"] <= TARGETS["get_p95_ms"]},
            "submit_rps": {"value": sub["rayflow_median_ok_per_s"], "target": f">= {TARGETS['submit_rps']:g}",
                           "met": sub["rayflow_median_ok_per_s"] >= TARGETS["submit_rps"]},
        }
    return verdicts


def print_table(results: dict[str, dict], verdicts: dict[str, dict], args: argparse.Namespace) -> None:
    print(f"\nmedians of {args.reps} repetitions of {args.duration:g} s, wrk -t{args.threads} -c{args.connections}, "
          f"requests answered as intended per second (GET 200, submit 201)")
    print(f"{'store':<7} {'case':<7} {'rayflow/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'bare/s':>9} {'bare p95':>9} "
          f"{'ratio':>6} {'CPU us/req rf|bare':>19}  target")
    for kind, res in results.items():
        for case, key in (("get", "get_rps"), ("submit", "submit_rps")):
            r, v = res[case], verdicts[kind][key]
            cpu = r["server_cpu_us_per_request"]
            mark = "met" if v["met"] else "MISSED"
            extra = ""
            if case == "get":
                p = verdicts[kind]["get_p95_ms"]
                extra = f"; p95 {p['target']} ms: {'met' if p['met'] else 'MISSED'}"
            print(f"{kind:<7} {case:<7} {r['rayflow_median_ok_per_s']:>10.1f} {r['rayflow_median_p50_ms']:>7.1f} "
                  f"{r['rayflow_median_p95_ms']:>7.1f} {r['bare_median_ok_per_s']:>9.1f} {r['bare_median_p95_ms']:>9.1f} "
                  f"{r['ratio']:>6.3f} {cpu['rayflow']:>9.0f} | {cpu['bare_fastapi']:<7.0f}  "
                  f"{v['target']}/s: {mark}{extra}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="repetitions per case and side (default 3)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run (default 10)")
    p.add_argument("--get-requests", type=int, default=100_000, help="at most this many GETs per wrk run")
    p.add_argument("--submit-requests", type=int, default=20_000, help="at most this many submits per wrk run")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the machine has 2 cores)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections in all (default 16)")
    p.add_argument("--tokens", type=int, default=32,
                   help="distinct submit tokens the requests rotate through, as many callers would (default 32)")
    p.add_argument("--max-runs", type=int, default=2, help="the server's --max-runs: the rest wait queued (default 2)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk GET on each side before timing")
    p.add_argument("--settle", type=float, default=1.0, help="quiet seconds before each timed wrk run")
    p.add_argument("--stores", default="sqlite,postgresql", help="comma-separated subset of sqlite,postgresql")
    p.add_argument("--pg-admin-url", default=PG_ADMIN_URL,
                   help=f"where to create and drop the throwaway database (default {PG_ADMIN_URL})")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("api_load: wrk is not installed (apt-get install -y wrk); nothing measured")
        return 2
    version = wrk_version()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="rayflow-api-load-") as tmp_name:
        tmp = Path(tmp_name)
        for kind in [k.strip() for k in args.stores.split(",") if k.strip()]:
            case = make_store(kind, tmp, args.pg_admin_url)
            if case is None:
                continue
            try:
                results[kind] = bench_store(case, args, tmp)
            finally:
                for cleanup in case.cleanup:
                    try:
                        cleanup()
                    except Exception as exc:  # noqa: BLE001 - say so, and go on
                        print(f"cleanup of {kind} failed: {exc}")
    if not results:
        print("api_load: no store could be measured")
        return 1
    verdicts = judge(results)
    print_table(results, verdicts, args)
    write_report(args.out, {
        "benchmark": "api_load", "reps": args.reps,
        "settings": {"duration_s": args.duration, "wrk_threads": args.threads, "wrk_connections": args.connections,
                     "tokens": args.tokens, "max_runs": args.max_runs, "get_requests_cap": args.get_requests,
                     "submit_requests_cap": args.submit_requests, "server": "one `rayflow server` process "
                     "(uvicorn, one event loop; a Ray driver, so no --workers)", "spec": SPEC},
        "wrk": version, "cpu_model": cpu_model(), "cores": os.cpu_count(),
        "targets": {"get_rps": f">= {TARGETS['get_rps']:g}", "get_p95_ms": f"<= {TARGETS['get_p95_ms']:g}",
                    "submit_rps": f">= {TARGETS['submit_rps']:g}"},
        "verdicts": verdicts, "stores": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
