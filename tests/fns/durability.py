"""Workflows for the durability tests. Every component appends its id to a ledger file
in the test's folder (the side-effect count the tests assert on, never the store), and
obeys gate files there: ``fail-<id>`` makes it raise, ``hold-<id>`` makes it wait. The
folder is a workflow input, so components in any worker or process find it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import rayflow as rf


def _ledger(folder: str, name: str) -> None:
    with open(Path(folder) / "ledger", "a") as f:
        f.write(f"{name} {os.getpid()}\n")


def _gate(folder: str, name: str) -> None:
    while (Path(folder) / f"hold-{name}").exists():
        time.sleep(0.02)
    if (Path(folder) / f"fail-{name}").exists():
        raise RuntimeError(f"{name} told to fail")


@rf.component
def source(folder: str, i: int) -> int:
    _ledger(folder, f"source_{i}")
    _gate(folder, f"source_{i}")
    return i


@rf.component
def square(folder: str, x: int, tag: str) -> int:
    _ledger(folder, tag)
    _gate(folder, tag)
    return x * x


@rf.component
def big(folder: str, n: int) -> np.ndarray:
    _ledger(folder, "big")
    _gate(folder, "big")
    return np.arange(n, dtype=np.int64)


@rf.component
def total(folder: str, parts: list[int], arr: np.ndarray | None = None) -> int:
    _ledger(folder, "total")
    _gate(folder, "total")
    return sum(parts) + (int(arr.sum()) if arr is not None else 0)


@rf.workflow(name="ledgered")
def ledgered(folder: str, n: int = 4, big_n: int = 0, checkpoint_squares: bool = True):
    parts = [square.options(checkpoint=checkpoint_squares)(folder, source(folder, i), tag=f"square_{i}")
             for i in range(n)]
    return total(folder, parts, big(folder, big_n) if big_n else None)


@rf.workflow(name="ledgered_auto", sizing="auto")
def ledgered_auto(folder: str, n: int = 4):
    """The same work, auto-sized: Ray does not retry these components, rayflow does."""
    parts = [square(folder, source(folder, i), tag=f"square_{i}") for i in range(n)]
    return total(folder, parts)


def expected_total(n: int, big_n: int = 0) -> int:
    return sum(i * i for i in range(n)) + sum(range(big_n))


def ledger_counts(folder: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    path = Path(folder) / "ledger"
    if path.exists():
        for line in path.read_text().splitlines():
            name = line.split()[0]
            out[name] = out.get(name, 0) + 1
    return out


def ledger_pids(folder: Path, name: str) -> list[int]:
    path = Path(folder) / "ledger"
    if not path.exists():
        return []
    return [int(line.split()[1]) for line in path.read_text().splitlines() if line.split()[0] == name]
