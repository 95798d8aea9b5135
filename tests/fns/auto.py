"""Components for the auto-sizing tests (importable by name)."""

from __future__ import annotations

import time

import rayflow as rf


@rf.component
def waits(i: int) -> int:
    time.sleep(0.05)          # a few percent of a core
    return i


@rf.component
def adds(parts: list[int]) -> int:
    return sum(parts)


@rf.workflow(name="sized", sizing="auto")
def sized(n: int = 3):
    return adds([waits(i) for i in range(n)])


@rf.workflow(name="declared")
def declared(n: int = 3):
    return adds([waits(i) for i in range(n)])
