"""Cached workflows for the engine tests: each component appends its name to a ledger
file in the folder the workflow is given (what ran, counted outside the store)."""

from __future__ import annotations

import time
from pathlib import Path

import rayflow as rf


def _ran(folder: str, name: str) -> None:
    with open(Path(folder) / "ledger", "a") as f:
        f.write(name + "\n")


@rf.component(cache=True)
def load(folder: str, i: int, pause_s: float = 0.0) -> int:
    _ran(folder, f"load_{i}")
    time.sleep(pause_s)
    return i * 10


@rf.component(cache=True)
def scale(folder: str, x: int, factor: int) -> int:
    _ran(folder, f"scale_{x}")
    return x * factor


@rf.component(cache=True, version="1")
def versioned(folder: str, parts: list[int]) -> int:
    _ran(folder, "versioned")
    return sum(parts)


@rf.component   # not cached
def plain(folder: str, total: int) -> int:
    _ran(folder, "plain")
    return total + 1


@rf.component(cache=True)
def after_plain(folder: str, x: int) -> int:
    _ran(folder, "after_plain")
    return x


@rf.workflow(name="cached")
def cached(folder: str, n: int = 3, factor: int = 2, pause_s: float = 0.0):
    return versioned(folder, [scale(folder, load(folder, i, pause_s), factor) for i in range(n)])


@rf.workflow(name="half_cached")
def half_cached(folder: str):
    return after_plain(folder, plain(folder, versioned(folder, [load(folder, 1)])))


def ledger(folder: Path) -> dict[str, int]:
    path = Path(folder) / "ledger"
    out: dict[str, int] = {}
    for line in path.read_text().split() if path.exists() else []:
        out[line] = out.get(line, 0) + 1
    return out


@rf.component(cache=True)
def big_table(folder: str, n: int):
    import pyarrow as pa

    _ran(folder, "big_table")
    return pa.table({"x": list(range(n))})      # well over the 64 KiB that ride back inline


@rf.component(cache=True)
def count_rows(folder: str, table) -> int:
    _ran(folder, "count_rows")
    return table.num_rows


@rf.workflow(name="big")
def big(folder: str, n: int = 50_000):
    return count_rows(folder, big_table(folder, n))
