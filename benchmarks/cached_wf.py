"""The cached workflow cache.py and cache_restart.py run: 20 cached components (a fan-out
of 17 into two reducers and a final one). Imports no ray: a driver whose run the cache
serves whole never loads it."""

from __future__ import annotations

import time

import rayflow as rf


@rf.component(cache=True)
def step(name: str, seed: int, pause_s: float) -> int:
    time.sleep(pause_s)
    return sum(ord(c) for c in name) * 31 + seed


@rf.component(cache=True)
def combine(parts: list[int], pause_s: float) -> int:
    time.sleep(pause_s)
    return sum(parts)


@rf.workflow(name="bench_warm")
def warm_wf(pause_s: float = 0.1, seed: int = 0):
    parts = [step(f"part{i}", seed, pause_s) for i in range(17)]
    return combine([combine(parts[:9], pause_s), combine(parts[9:], pause_s)], 0.0)
