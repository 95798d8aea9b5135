"""Components used by the executor contract suite (importable by Ray workers)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import rayflow as rf


@rf.component(num_cpus=0.1)
def const(x):
    return x


@rf.component(num_cpus=0.1)
def add(*xs):
    return sum(xs)


@rf.component(num_cpus=0.1)
def inc(x):
    return x + 1


@rf.component(num_cpus=0.1)
def total(parts: list):
    return sum(parts)


@rf.component(num_cpus=0.1)
def boom(x=None, message="boom"):
    raise ValueError(message)


@rf.component(num_cpus=0.1)
def sleepy(seconds, value=None):
    time.sleep(seconds)
    return value


@rf.component(num_cpus=0.1)
def flaky(ledger: str, fail_times: int, value=1):
    """Fails ``fail_times`` times (counted in a ledger file), then returns ``value``."""
    path = Path(ledger)
    with path.open("a") as f:
        f.write("x")
    if len(path.read_text()) <= fail_times:
        raise ConnectionError(f"attempt {len(path.read_text())} failed")
    return value


@rf.component(num_cpus=0.1)
def record(ledger: str, value=None):
    """Appends this pid to a ledger file (to count executions)."""
    with open(ledger, "a") as f:
        f.write(f"{os.getpid()}\n")
    return value


@rf.component(kind="actor", concurrency=2, num_cpus=0.1, init_kwargs={"offset": 100})
class Offset:
    """A stateful actor component: counts its calls, adds an offset."""

    def __init__(self, offset: int = 0):
        self.offset = offset
        self.calls = 0
        self.pid = os.getpid()

    def __call__(self, x):
        self.calls += 1
        return {"value": x + self.offset, "pid": self.pid, "calls": self.calls}
