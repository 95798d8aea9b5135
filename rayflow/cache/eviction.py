"""Eviction policies of the in-process tier: which entry leaves when bytes run out.

Owns the victim order only; the memory tier owns the entries, their bytes and TTLs,
and calls ``admit`` (a new or replaced entry), ``touch`` (a hit), ``remove`` (a delete
or an expiry) and ``pop_victim`` (make room). Pure, single-threaded: the tier holds
the lock. Must not know about bytes, the codec or any I/O.

- ``lru``: least recently used first.
- ``lfu``: least frequently used first (hits since admission), ties by recency. No
  aging: a key that was hot long ago stays until it is the least used.
- ``adaptive``: GreedyDual-Size-Frequency (Cherkasova 1998). Each entry's priority is
  ``clock + frequency * cost / size``; the lowest leaves and the clock rises to its
  priority, so entries not touched since age out. It keeps what is small, often used
  and expensive to recompute. ``cost`` is the recompute time (``cost_s``) given at put;
  an entry put without one (``cost_s=0``) counts as ``DEFAULT_COST_S``, which makes the
  policy GDS-Frequency by size.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from typing import Any, Protocol

POLICIES = ("lru", "lfu", "adaptive")
DEFAULT_COST_S = 1.0


class EvictionPolicy(Protocol):
    name: str

    def admit(self, key: str, *, size: int, cost_s: float) -> None: ...

    def touch(self, key: str) -> None: ...

    def remove(self, key: str) -> None: ...

    def pop_victim(self) -> str:
        """The key to evict now, forgotten by the policy (KeyError when empty)."""
        ...


class LRU:
    name = "lru"

    def __init__(self) -> None:
        self._order: OrderedDict[str, None] = OrderedDict()

    def admit(self, key: str, *, size: int, cost_s: float) -> None:
        self._order[key] = None
        self._order.move_to_end(key)

    def touch(self, key: str) -> None:
        self._order.move_to_end(key)

    def remove(self, key: str) -> None:
        self._order.pop(key, None)

    def pop_victim(self) -> str:
        if not self._order:
            raise KeyError("no entry to evict")
        return self._order.popitem(last=False)[0]


class _HeapPolicy:
    """A min-heap of (priority, tick, key) with lazy deletion: ``_live`` holds each key's
    current heap item; stale items are skipped when popped and compacted when too many.
    ``_meta`` holds what a subclass knows of each key (forgotten with the key)."""

    name = "heap"

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, tuple[float, int, str]] = {}
        self._meta: dict[str, Any] = {}
        self._ticks = itertools.count()

    def _push(self, key: str, priority: float) -> None:
        item = (priority, next(self._ticks), key)
        self._live[key] = item
        heapq.heappush(self._heap, item)
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = list(self._live.values())
            heapq.heapify(self._heap)

    def remove(self, key: str) -> None:
        self._live.pop(key, None)
        self._meta.pop(key, None)

    def pop_victim(self) -> str:
        while self._heap:
            priority, _, key = item = heapq.heappop(self._heap)
            if self._live.get(key) is item:
                self.remove(key)
                self._evicted(priority)
                return key
        raise KeyError("no entry to evict")

    def _evicted(self, priority: float) -> None:
        """Hook: the priority of the entry just evicted."""


class LFU(_HeapPolicy):
    name = "lfu"

    def admit(self, key: str, *, size: int, cost_s: float) -> None:
        self._meta[key] = 1
        self._push(key, 1)

    def touch(self, key: str) -> None:
        self._meta[key] += 1
        self._push(key, self._meta[key])


class GDSF(_HeapPolicy):
    """GreedyDual-Size-Frequency: the ``adaptive`` policy. ``_meta``: key -> (frequency,
    cost_s, size)."""

    name = "adaptive"

    def __init__(self) -> None:
        super().__init__()
        self.clock = 0.0

    def admit(self, key: str, *, size: int, cost_s: float) -> None:
        self._meta[key] = (1, cost_s if cost_s > 0 else DEFAULT_COST_S, max(size, 1))
        self._reprioritize(key)

    def touch(self, key: str) -> None:
        freq, cost, size = self._meta[key]
        self._meta[key] = (freq + 1, cost, size)
        self._reprioritize(key)

    def _evicted(self, priority: float) -> None:
        self.clock = max(self.clock, priority)

    def _reprioritize(self, key: str) -> None:
        freq, cost, size = self._meta[key]
        self._push(key, self.clock + freq * cost / size)


def make_policy(name: str) -> EvictionPolicy:
    """A fresh policy by name (one of ``POLICIES``); ValueError naming the choices."""
    factories = {"lru": LRU, "lfu": LFU, "adaptive": GDSF}
    try:
        return factories[name]()
    except KeyError:
        raise ValueError(f"unknown eviction policy {name!r}; expected one of {', '.join(POLICIES)}") from None
