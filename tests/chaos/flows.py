"""The chaos suite's components and workflows, importable by every process (Ray workers,
subprocess drivers, ``rayflow server`` processes, the tracker actor).

One component, ``step``, is every node of a generated DAG: it appends ``start <id> <pid>
<time>`` to the ledger file in the scenario's folder when it begins and ``end <id> <pid>
<time>`` just before it returns (``fail ...`` when it fails on purpose) (the counts the suite asserts on are these lines, never
the store), obeys the gate files there (``hold-<id>``: wait while it exists; ``fail-<id>``:
raise), sleeps, and returns its value: ``(base + sum of its upstream values) % MOD``, as an
int, or as a numpy array of ``big`` copies of it (large enough to be checkpointed in a
``.rfc`` file of its own). ``expected_values`` computes the same values without rayflow.

A DAG travels as a JSON-able dict (``{"nodes": [{"id", "base", "ups", "sleep_s", "big", "cache"}]}``,
in topological order), so a resumed run plans the same graph again: ``chaos_dag`` traces it
with the DSL, ``chaos_spec`` makes a spec dict of it (the spec is recorded with the run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

import rayflow as rf

MOD = 1_000_003
LEDGER = "ledger"


def note(folder: str, what: str, tag: str) -> None:
    """One ledger line, written with a single ``write`` on an O_APPEND file (lines of several
    processes never interleave)."""
    line = f"{what} {tag} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(Path(folder) / LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _gate(folder: str, tag: str) -> None:
    while (Path(folder) / f"hold-{tag}").exists():
        time.sleep(0.02)
    if (Path(folder) / f"fail-{tag}").exists():
        raise RuntimeError(f"{tag} told to fail")


def value_of(up: Any) -> int:
    if isinstance(up, np.ndarray):
        return int(up[0])
    return int(up)


@rf.component(max_retries=3)
def step(folder: str, tag: str, base: int, ups: Any = None, sleep_s: float = 0.0, big: int = 0) -> Any:
    note(folder, "start", tag)
    try:
        _gate(folder, tag)
    except RuntimeError:
        note(folder, "fail", tag)
        raise
    if sleep_s:
        time.sleep(sleep_s)
    parts = ups if isinstance(ups, list) else ([] if ups is None else [ups])
    value = (base + sum(value_of(u) for u in parts)) % MOD
    out: Any = np.full(big, value, dtype=np.int64) if big else value
    note(folder, "end", tag)
    return out


@rf.workflow(name="chaos_dag")
def chaos_dag(folder: str, dag: dict):
    handles: dict[str, Any] = {}
    for node in dag["nodes"]:
        ups = [handles[u] for u in node["ups"]]
        handles[node["id"]] = step.options(id=node["id"], cache=bool(node.get("cache")))(
            folder, node["id"], node["base"], ups=ups, sleep_s=node["sleep_s"], big=node["big"])
    return [handles[s] for s in sinks(dag)]


def chaos_spec(dag: dict, name: str = "chaos_spec") -> dict:
    """The same DAG as a spec dict (ports: ``ups``; one upstream comes as itself, several
    as a list, which ``step`` takes either way)."""
    components = [{"id": n["id"], "function": "tests.chaos.flows:step", "max_retries": 3,
                   "cache": bool(n.get("cache")),
                   "config": {"folder": {"$input": "folder"}, "tag": n["id"], "base": n["base"],
                              "sleep_s": n["sleep_s"], "big": n["big"]}}
                  for n in dag["nodes"]]
    connections = [{"from": u, "to": n["id"], "port": "ups"} for n in dag["nodes"] for u in n["ups"]]
    return {"name": name, "inputs": {"folder": ""}, "components": components, "connections": connections,
            "outputs": sinks(dag)}


def sinks(dag: dict) -> list[str]:
    used = {u for n in dag["nodes"] for u in n["ups"]}
    return [n["id"] for n in dag["nodes"] if n["id"] not in used]


def expected_values(dag: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in dag["nodes"]:
        out[n["id"]] = (n["base"] + sum(out[u] for u in n["ups"])) % MOD
    return out
