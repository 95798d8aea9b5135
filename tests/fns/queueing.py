"""Components that hold a whole CPU for a while, more of them than the test cluster's 2
CPUs: some wait in Ray's queue (importable by Ray workers)."""

from __future__ import annotations

import time

import rayflow as rf


@rf.component(num_cpus=0.1)
def load(n: int = 4) -> int:
    return n


@rf.component(num_cpus=1)
def hold(x: int, seconds: float = 2.0) -> int:
    time.sleep(seconds)
    return x


@rf.component(num_cpus=0.1)
def total(*xs: int) -> int:
    return sum(xs)


@rf.workflow
def four_on_two(seconds: float = 2.0):
    n = load()
    return total(*[hold.options(id=f"hold{i}")(n, seconds) for i in range(4)])
