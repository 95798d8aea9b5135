"""The workflow of ``benchmarks/server_handoff.py``: overhead.py's ``small_wf`` shape,
a -> (b, c, d) -> e, five no-op components, each its own Ray task (``fuse=False``).

A module of its own, not the benchmark's ``__main__``, so the run records the target
``handoff_wf:small_wf`` and a ``rayflow server`` (started with ``benchmarks/`` on its
PYTHONPATH) can import it and plan the run again when it claims it from the queue.
"""

from __future__ import annotations

import rayflow as rf


def _leaf(i: int) -> int:
    return i


def _step(x: int) -> int:
    return x + 1


def _join(parts: list[int]) -> int:
    return len(parts)


leaf = rf.component(_leaf, fuse=False)
step = rf.component(_step, fuse=False)
join = rf.component(_join, fuse=False)

COMPONENTS = 5   # per run: leaf, three steps, join
RESULT = 3       # what every run returns: join of the three steps


@rf.workflow(name="bench_handoff")
def small_wf(i: int):
    a = leaf(i)
    return join([step(a) for _ in range(3)])
