"""Writes notebooks/quickstart.ipynb and notebooks/patterns.ipynb, without outputs.

The notebooks are generated from the cells below so they stay reviewable as plain
Python and are always stored clean (no outputs, no execution counts). Run it after
editing a cell:

    .venv/bin/python tests/notebooks/build_notebooks.py

``tests/notebooks/test_notebooks.py`` checks that the stored files match this script
and executes them end to end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat import v4

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(text: str) -> tuple[str, str]:
    return ("markdown", text.strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", text.strip("\n"))


# --------------------------------------------------------------------------- quickstart

QUICKSTART = [
    md("""
# rayflow quickstart

This notebook builds a small workflow and runs it on Ray:

1. declare **components** (Python functions with Ray resource options),
2. wire them into a **workflow** (fan-out over partitions, fan-in to a summary),
3. look at the **plan** before anything runs (`rf.explain`),
4. **run** it with a progress bar, then **submit** it and wait on the handle,
5. read the run's **metrics**, draw its **Gantt chart**, and list the runs in the **store**.

It starts its own local Ray (2 CPUs) and records runs in a throwaway SQLite file, so it
runs anywhere `pip install -e ".[dev]"` works; it takes well under a minute.
"""),
    md("""
## Set-up

`rf.init` is optional (`rf.run` calls it lazily), but it lets us choose where runs are
recorded and how many CPUs local Ray gets. The default store is
`sqlite:///~/.rayflow/rayflow.db`; here we use a file in a temporary directory.
"""),
    code("""
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import rayflow as rf

workdir = Path(tempfile.mkdtemp(prefix="rayflow-quickstart-"))
store = f"sqlite:///{workdir / 'runs.db'}"
rf.init(store=store, num_cpus=2)   # starts local Ray with 2 CPUs in this kernel
print("runs are recorded in", store)
"""),
    md("""
## 1. Components

A component is a function plus Ray's options, with Ray's names and units: `num_cpus`
(default 1), `num_gpus`, `memory` (`"256MiB"`), `max_retries`, `timeout_s`, ...
Components pass `pyarrow` tables (or any picklable value) to each other; the values
travel between Ray workers as ObjectRefs, never through this notebook.
"""),
    code("""
@rf.component(num_cpus=0.5)
def load(n: int) -> pa.Table:
    \"\"\"n synthetic rows: an id and an amount (some amounts are negative, i.e. invalid).\"\"\"
    return pa.table({"id": list(range(n)), "amount": [(i * 7) % 23 - 5 for i in range(n)]})


@rf.component(num_cpus=0.5, memory="256MiB", max_retries=2, timeout_s=60)
def clean(table: pa.Table, part: int, parts: int) -> pa.Table:
    \"\"\"Partition `part` of `parts` (contiguous rows), keeping non-negative amounts.\"\"\"
    time.sleep(0.3)   # stands in for real work, so the timeline below has something to show
    size = -(-table.num_rows // parts)   # ceiling division
    chunk = table.slice(part * size, size)
    return chunk.filter(pc.greater_equal(chunk["amount"], 0))


@rf.component
def summarize(parts: list[pa.Table]) -> dict:
    \"\"\"Row count and total amount over every cleaned partition.\"\"\"
    merged = pa.concat_tables(parts)
    return {"rows": merged.num_rows, "amount": pc.sum(merged["amount"]).as_py()}
"""),
    md("""
Outside a workflow a component is just the function, so it stays unit-testable:
"""),
    code("""
def expected(n: int) -> dict:
    \"\"\"The same answer in plain Python, to check the workflow against.\"\"\"
    amounts = [(i * 7) % 23 - 5 for i in range(n)]
    good = [a for a in amounts if a >= 0]
    return {"rows": len(good), "amount": sum(good)}


small = load(10)
halves = [clean(small, part=i, parts=2) for i in range(2)]
print(small.to_pydict())
print([h.num_rows for h in halves], summarize(halves))
assert summarize(halves) == expected(10)
"""),
    md("""
## 2. A workflow

Inside a `@rf.workflow` function, calling a component records a node instead of running
it. The function runs once, on the driver, with the run's inputs, so ordinary Python
(`range(parts)`) shapes the graph. A list of nodes passed to one component fans in.
`.options(id=...)` gives each fan-out node its own id.
"""),
    code("""
@rf.workflow(name="amounts", failure_strategy="fail_fast")
def amounts(n: int = 1000, parts: int = 4):
    table = load(n)
    cleaned = [clean.options(id=f"clean_{i}")(table, part=i, parts=parts) for i in range(parts)]
    return summarize(cleaned)
"""),
    md("""
## 3. The plan, before anything runs

`rf.explain` validates the workflow (cycles, unknown ports, missing arguments, resource
requests no node could satisfy, ...) and analyses the graph without executing anything:
its levels (what can run together), the critical path (by estimated durations; with
nothing measured yet every component counts as 1 unit, so it is the longest chain) and
the components worth a look: those on the critical path and wide joins or splits.
"""),
    code("""
plan = rf.explain(amounts, n=1000, parts=4)
print("levels:         ", plan.levels)
print("parallel groups:", plan.parallel_groups)
print("critical path:  ", " -> ".join(plan.critical_path), f"({plan.critical_path_length:g} units)")
for b in plan.bottlenecks:
    print(f"bottleneck:      {b.id:10} {b.reason:14} share {b.share:.0%}, fan-in {b.fan_in}, fan-out {b.fan_out}")

assert plan.levels == [["load"], ["clean_0", "clean_1", "clean_2", "clean_3"], ["summarize"]]
assert plan.critical_path[0] == "load" and plan.critical_path[-1] == "summarize"
found = {b.id: b for b in plan.bottlenecks}
assert found["load"].fan_out == 4 and found["summarize"].fan_in == 4   # a 4-way split and join
"""),
    md("""
## 4. Run it

`rf.run` blocks and returns the workflow's value (it raises `rf.WorkflowFailed` if a
component fails). `progress=True` shows a bar of finished components; in a notebook it
is on by default.
"""),
    code("""
value = rf.run(amounts, n=1000, parts=4, progress=True)
print(value)
assert value == expected(1000)
"""),
    md("""
`rf.submit` returns a `RunHandle` at once; the run goes on in the background.
`h.wait(progress=True)` follows it with a progress bar and returns the final status;
`h.result()` returns the value.
"""),
    code("""
h = rf.submit(amounts, n=20_000, parts=4)
print(h.run_id, h.status())
status = h.wait(progress=True)
print(status, h.result())
assert status == "SUCCEEDED"
assert h.result() == expected(20_000)
"""),
    md("""
## 5. Metrics

`h.metrics()` is a plain, JSON-serialisable dict: wall time, per-component state,
attempts, queue wait and duration, the measured critical path, throughput and queue-wait
percentiles.
"""),
    code("""
m = h.metrics()
json.dumps(m)   # plain data: store it, send it, compare runs
print(f"status {m['status']}, wall {m['wall_s']:.2f}s, {m['throughput_cps']:.1f} components/s")
print(f"critical path: {' -> '.join(m['critical_path'])} ({m['critical_path_s']:.2f}s)")
print("queue wait p50/p95/p99 (s):", {k: round(v, 4) for k, v in m["queue_wait_s"].items()})

assert set(m["components"]) == {"load", "clean_0", "clean_1", "clean_2", "clean_3", "summarize"}
assert all(c["state"] == "SUCCEEDED" and c["attempts"] == 1 for c in m["components"].values())
assert m["critical_path"][0] == "load" and m["critical_path"][-1] == "summarize"
"""),
    md("""
The per-component part as a table (any table library works; this one needs only IPython):
"""),
    code("""
from html import escape

from IPython.display import HTML, display

cols = ["state", "attempts", "queued_s", "duration_s", "node_id"]
def cell(v):
    return f"{v:.3f}" if isinstance(v, float) else escape(str(v)[:12])
rows = "".join(
    "<tr><td>" + escape(cid) + "</td>" + "".join(f"<td>{cell(c.get(k))}</td>" for k in cols) + "</tr>"
    for cid, c in sorted(m["components"].items(), key=lambda kv: kv[1]["started_at"])
)
display(HTML("<table><tr><th>component</th>" + "".join(f"<th>{k}</th>" for k in cols) + "</tr>" + rows + "</table>"))
"""),
    md("""
## 6. The timeline

`rayflow.report.gantt(metrics)` returns a plotly figure: one bar per component from start
to end, its queue wait as a lighter bar before it, the critical path highlighted.
"""),
    code("""
from rayflow.report import gantt

fig = gantt(m)
assert len(fig.data) >= 2   # the queue-wait bars and at least one group of component bars
fig
"""),
    md("""
A `RunHandle` also renders itself in Jupyter: summary, Gantt chart and component table
in one (plotly.js is inlined, so it works offline).
"""),
    code("""
h
"""),
    md("""
## 7. The run store

Every run is recorded in the store, so any process can list runs and get a handle to
one by id (`rayflow runs` and `rayflow status RUN_ID` on the command line read the same
store when given `--store`).
"""),
    code("""
runs = rf.list_runs()   # newest first
for r in runs:
    print(r.run_id, r.name, r.status, time.strftime("%H:%M:%S", time.localtime(r.created_at)))

assert [r.run_id for r in runs][0] == h.run_id
assert len(runs) == 2 and {r.status for r in runs} == {"SUCCEEDED"}
again = rf.get_run(h.run_id)
assert again.status() == "SUCCEEDED" and again.result() == expected(20_000)
"""),
    md("""
## Next

`patterns.ipynb` shows fan-out/fan-in, actor components, failure strategies, retries,
timeouts, `max_concurrency` and the local executor for debugging.
"""),
]


# --------------------------------------------------------------------------- patterns

PATTERNS = [
    md("""
# rayflow patterns

Common workflow shapes and behaviours, each in a few cells that **assert** what they show
(so running this notebook is also a test):

1. fan-out / fan-in, with several outputs
2. an **actor** component: a class whose instances keep state between calls
3. failure strategies: `fail_fast` vs `continue_on_error`
4. retries that end in success (`max_retries`, `retry_exceptions`)
5. a time limit (`timeout_s`) ending `TIMED_OUT`
6. `max_concurrency`: at most N components in flight
7. the local executor (`executor="local"`), for debugging

It starts its own local Ray (2 CPUs) and a throwaway SQLite run store; it takes about
a minute.
"""),
    code("""
import os
import tempfile
import time
from pathlib import Path

import rayflow as rf

workdir = Path(tempfile.mkdtemp(prefix="rayflow-patterns-"))
rf.init(store=f"sqlite:///{workdir / 'runs.db'}", num_cpus=2)


def states(handle) -> dict[str, str]:
    \"\"\"Component id -> final state, from the run's metrics.\"\"\"
    return {cid: c["state"] for cid, c in handle.metrics()["components"].items()}
"""),
    md("""
## 1. Fan-out / fan-in

A list comprehension of component calls fans out; passing the list to one component fans
in. A workflow may return any structure of nodes (here a dict), and `rf.run` returns the
same structure with the values filled in. The `num_cpus=0.25` request lets Ray run up to
eight of these at once on 2 CPUs.
"""),
    code("""
@rf.component(num_cpus=0.25)
def square(x: int) -> int:
    return x * x


@rf.component(num_cpus=0.25)
def add_all(xs: list[int]) -> int:
    return sum(xs)


@rf.component(num_cpus=0.25)
def biggest(xs: list[int]) -> int:
    return max(xs)


@rf.workflow(name="fan")
def fan(k: int = 8):
    squares = [square.options(id=f"sq_{i}")(i) for i in range(k)]   # fan-out
    return {"sum": add_all(squares), "max": biggest(squares)}         # two fan-ins


plan = rf.explain(fan, k=8)
print("levels:", plan.levels)
out = rf.run(fan, k=8)
print(out)
assert out == {"sum": sum(i * i for i in range(8)), "max": 49}
assert len(plan.levels) == 2 and len(plan.levels[0]) == 8
"""),
    md("""
## 2. Actor components

A class component (`kind="actor"`) becomes a pool of `concurrency` Ray actors. Each
actor runs `__init__` once (load a model, open a connection, ...) and then serves many
calls through `__call__`, keeping its state. The pool is created on first use and
released as soon as its last call has finished. `init_kwargs` are the constructor's
arguments.
"""),
    code("""
@rf.component(kind="actor", concurrency=2, num_cpus=0.5, init_kwargs={"scale": 10})
class Scaler:
    def __init__(self, scale: int):
        time.sleep(0.5)            # an expensive set-up, paid once per actor
        self.scale = scale
        self.calls = 0
        self.pid = os.getpid()

    def __call__(self, x: int) -> dict:
        self.calls += 1
        return {"value": x * self.scale, "pid": self.pid, "call": self.calls}


@rf.workflow(name="actors")
def scaled(n: int = 8):
    return [Scaler.options(id=f"scale_{i}")(i) for i in range(n)]


results = rf.run(scaled, n=8)
for r in results:
    print(r)
pids = {r["pid"] for r in results}
calls = {pid: max(r["call"] for r in results if r["pid"] == pid) for pid in pids}
print("actors:", len(pids), "calls per actor:", calls)

assert [r["value"] for r in results] == [10 * i for i in range(8)]
assert 1 <= len(pids) <= 2                  # at most `concurrency` actors ...
assert sum(calls.values()) == 8             # ... that kept their call counters between calls
assert os.getpid() not in pids              # they are Ray workers, not this kernel
"""),
    md("""
## 3. Failure strategies

A failing component makes the run `FAILED` and `rf.run` raise `rf.WorkflowFailed`, with
`.failed` (the failed ids), `.errors` (id -> error text) and `.states`. What happens to the
rest of the graph depends on the workflow's `failure_strategy`:

- `fail_fast` (default): the first failure cancels what is in flight (`CANCELLED`) and
  skips what has not started (`SKIPPED`).
- `continue_on_error`: everything downstream of the failure is `UPSTREAM_FAILED`, and
  independent branches run to the end.

Both workflows below parse a value, then branch: `validate` fails (and `publish` needs
its result), while `enrich` (slow) and `save` do not depend on it.
"""),
    code("""
@rf.component(num_cpus=0.25)
def parse(text: str) -> int:
    return int(text)


@rf.component(num_cpus=0.25)
def validate(x: int) -> int:
    if x % 2:
        raise ValueError(f"{x} is odd")
    return x


@rf.component(num_cpus=0.25)
def double(x: int) -> int:
    return 2 * x


@rf.component(num_cpus=0.25)
def enrich(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x + 1


def branches(seconds: float):
    x = parse("21")
    published = double.options(id="publish")(validate(x))   # the failing branch
    saved = double.options(id="save")(enrich(x, seconds))   # an independent, slow branch
    return {"published": published, "saved": saved}


@rf.workflow(name="fail-fast", failure_strategy="fail_fast")
def fail_fast(seconds: float = 30.0):
    return branches(seconds)


@rf.workflow(name="keep-going", failure_strategy="continue_on_error")
def keep_going(seconds: float = 1.0):
    return branches(seconds)
"""),
    md("""
With `fail_fast`, the 30-second `enrich` does not hold the run up: it is cancelled as
soon as `validate` fails. rayflow hands a component to Ray as soon as its upstreams have
been handed over, so `publish` and `save` were already submitted and are `CANCELLED`
too (section 6 shows `SKIPPED`: components that were still waiting for their turn).
"""),
    code("""
h = rf.submit(fail_fast, seconds=30.0)
t0 = time.monotonic()
try:
    h.result()
    raise AssertionError("the run should have failed")
except rf.WorkflowFailed as e:
    print("failed:", e.failed)
    print("error: ", e.errors["validate"].splitlines()[-1])
    failure = e
elapsed = time.monotonic() - t0
st = states(h)
for cid, s in sorted(st.items()):
    print(f"  {cid:9} {s}")
print(f"run {h.status()} after {elapsed:.1f}s")

assert h.status() == "FAILED"
assert failure.failed == ["validate"] and "ValueError: 21 is odd" in failure.errors["validate"]
assert st["parse"] == "SUCCEEDED" and st["validate"] == "FAILED"
assert st["enrich"] == "CANCELLED"                          # was in flight: cancelled
assert st["publish"] in {"SKIPPED", "CANCELLED"}
assert st["save"] in {"SKIPPED", "CANCELLED"}
assert elapsed < 25                                         # did not wait for the 30 s sleep
"""),
    md("""
With `continue_on_error`, the independent branch finishes and only the failure's
downstream is `UPSTREAM_FAILED`. The run is still `FAILED`, since one of its outputs
could not be made.
"""),
    code("""
h = rf.submit(keep_going, seconds=1.0)
try:
    h.result()
    raise AssertionError("the run should have failed")
except rf.WorkflowFailed as e:
    failure = e
st = states(h)
for cid, s in sorted(st.items()):
    print(f"  {cid:9} {s}")

assert h.status() == "FAILED" and failure.failed == ["validate"]
assert st == {"parse": "SUCCEEDED", "validate": "FAILED", "publish": "UPSTREAM_FAILED",
              "enrich": "SUCCEEDED", "save": "SUCCEEDED"}
"""),
    md("""
## 4. Retries that succeed

`max_retries` retries an attempt that raised one of `retry_exceptions` (a list of
exception classes, or `True` for any) or timed out. Other exceptions fail at once.
This component fails twice with `ConnectionError` (it counts its attempts in a file,
since each attempt may run in a different worker process) and succeeds on the third.
"""),
    code("""
@rf.component(num_cpus=0.25, max_retries=3, retry_exceptions=[ConnectionError])
def fetch(counter: str, fail_times: int) -> str:
    path = Path(counter)
    with path.open("a") as f:
        f.write("x")
    attempt = len(path.read_text())
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt}: service unavailable")
    return f"fetched on attempt {attempt}"


@rf.workflow(name="retries")
def retrying(counter: str, fail_times: int = 2):
    return fetch(counter, fail_times)


counter = workdir / "attempts.txt"
h = rf.submit(retrying, counter=str(counter), fail_times=2)
print(h.result())
comp = h.metrics()["components"]["fetch"]
print("state", comp["state"], "attempts", comp["attempts"])

assert h.result() == "fetched on attempt 3"
assert comp["state"] == "SUCCEEDED" and comp["attempts"] == 3
assert counter.read_text() == "xxx"
"""),
    md("""
An exception that is not in `retry_exceptions` is not retried: one attempt, then `FAILED`.
"""),
    code("""
@rf.workflow(name="no-retry")
def not_retried(counter: str):
    return fetch.options(retry_exceptions=[TimeoutError])(counter, fail_times=2)


counter = workdir / "attempts-2.txt"
h = rf.submit(not_retried, counter=str(counter))
assert h.wait() == "FAILED"
comp = h.metrics()["components"]["fetch"]
print("state", comp["state"], "attempts", comp["attempts"])
assert comp["state"] == "FAILED" and comp["attempts"] == 1 and counter.read_text() == "x"
"""),
    md("""
## 5. Time limits

`timeout_s` limits one attempt, counted from when it starts. An attempt that runs over
is stopped and the component ends `TIMED_OUT` (after any retries `max_retries` allows);
its downstream never runs.
"""),
    code("""
@rf.component(num_cpus=0.25, timeout_s=1.0)
def hang(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@rf.workflow(name="timeout")
def with_timeout(seconds: float = 30.0):
    return double(hang(seconds))


h = rf.submit(with_timeout, seconds=30.0)
assert h.wait(timeout=25) == "FAILED"
st = states(h)
comp = h.metrics()["components"]["hang"]
print(st, "| hang ran", f"{comp['duration_s']:.1f}s" if comp["duration_s"] else "-")
try:
    h.result()
except rf.WorkflowFailed as e:
    print(e.errors["hang"])
    assert "timeout_s=1" in e.errors["hang"]

assert st["hang"] == "TIMED_OUT" and comp["attempts"] == 1
assert st["double"] in {"SKIPPED", "CANCELLED"}
"""),
    md("""
## 6. `max_concurrency`

Ray already limits what runs at once by resources. `max_concurrency` on the workflow adds
a limit of its own: at most this many components in flight, whatever their resource
requests (useful to be gentle with a database or an API). With `max_concurrency=1` the
six quarter-CPU tasks below run one after another; without it they overlap.
"""),
    code("""
@rf.component(num_cpus=0.25)
def nap(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


def naps(k: int, seconds: float):
    return add_all([nap.options(id=f"nap_{i}")(i, seconds) for i in range(k)])


@rf.workflow(name="one-at-a-time", max_concurrency=1)
def one_at_a_time(k: int = 6, seconds: float = 0.5):
    return naps(k, seconds)


@rf.workflow(name="unbounded")
def unbounded(k: int = 6, seconds: float = 0.5):
    return naps(k, seconds)


def most_in_flight(metrics: dict) -> int:
    \"\"\"The largest number of components running at the same moment.\"\"\"
    edges = []
    for c in metrics["components"].values():
        edges += [(c["started_at"], 1), (c["ended_at"], -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):   # ends before starts at a tie
        running += step
        peak = max(peak, running)
    return peak


for wf in (one_at_a_time, unbounded):
    h = rf.submit(wf, k=6, seconds=0.5)
    assert h.result() == sum(range(6))
    m = h.metrics()
    print(f"{wf.name:14} wall {m['wall_s']:.2f}s, at most {most_in_flight(m)} running at once")
    if wf is one_at_a_time:
        assert most_in_flight(m) == 1
    else:
        assert most_in_flight(m) > 1
"""),
    md("""
Under a limit, components wait for a slot before they are handed to Ray. When a
`fail_fast` run fails, those still waiting never start: they are `SKIPPED`. Ready
components are submitted critical-path first, so the longer `parse -> validate -> double`
chain below goes before the naps, and fails while they wait.
"""),
    code("""
@rf.workflow(name="skipped", max_concurrency=1, failure_strategy="fail_fast")
def skipped(k: int = 4):
    checked = double(validate(parse("21")))
    return add_all([checked] + [nap.options(id=f"nap_{i}")(i, 0.1) for i in range(k)])


h = rf.submit(skipped, k=4)
assert h.wait() == "FAILED"
st = states(h)
print(st)
assert st["parse"] == "SUCCEEDED" and st["validate"] == "FAILED"
assert {st[f"nap_{i}"] for i in range(4)} == {"SKIPPED"}
assert st["double"] == st["add_all"] == "SKIPPED"
"""),
    md("""
## 7. The local executor, for debugging

`executor="local"` runs every component synchronously in this process (in the calling
thread), one at a time, with the same semantics: states, retries, failure strategies,
the run store. `breakpoint()` and `print` inside a component work as in plain Python.
"""),
    code("""
@rf.component
def where(x: int) -> dict:
    return {"x": x, "pid": os.getpid()}


@rf.workflow(name="debug-me")
def debug_me():
    return [where.options(id=f"where_{i}")(i) for i in range(3)]


local = rf.run(debug_me, executor="local")
on_ray = rf.run(debug_me)
print("local:", local)
print("ray:  ", on_ray)
assert {r["pid"] for r in local} == {os.getpid()}      # ran in this kernel
assert os.getpid() not in {r["pid"] for r in on_ray}   # ran in Ray workers
"""),
    md("""
Failures behave the same locally, so a failing workflow can be stepped through here:
"""),
    code("""
try:
    rf.run(keep_going, seconds=0.1, executor="local")
    raise AssertionError("the run should have failed")
except rf.WorkflowFailed as e:
    print(e.failed, e.states)
    assert e.failed == ["validate"]
    assert e.states["publish"] == "UPSTREAM_FAILED" and e.states["save"] == "SUCCEEDED"
"""),
    md("""
## The runs of this notebook

Every run above, failed ones included, is in the store:
"""),
    code("""
runs = rf.list_runs()
for r in runs:
    print(f"{r.run_id}  {r.name:14} {r.status}")
print({s: sum(r.status == s for r in runs) for s in ("SUCCEEDED", "FAILED")})
assert {r.status for r in runs} == {"SUCCEEDED", "FAILED"}
"""),
]


NOTEBOOK_CELLS = {"quickstart.ipynb": QUICKSTART, "patterns.ipynb": PATTERNS}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for i, (kind, source) in enumerate(cells):
        cell = v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source)
        cell["id"] = f"cell-{i:02d}"   # stable ids: regenerating gives the same file
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(NOTEBOOK_CELLS[name])) + "\n"


def main() -> int:
    for name in NOTEBOOK_CELLS:
        path = NOTEBOOKS / name
        path.write_text(render(name))
        print("wrote", path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
