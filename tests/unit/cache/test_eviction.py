"""The memory tier's bounds and eviction policies: the right victims, the byte bound held."""

from __future__ import annotations

import random

import pytest

from rayflow.cache.eviction import GDSF, LFU, LRU, make_policy
from rayflow.cache.memory import MemoryTier
from rayflow.core.errors import ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def filled(policy: str, sizes: dict[str, int], max_bytes: int, costs: dict[str, float] | None = None) -> MemoryTier:
    tier = MemoryTier(max_bytes, policy)
    for key, size in sizes.items():
        tier.put(key, b"x" * size, cost_s=(costs or {}).get(key, 0.0))
    return tier


def held(tier: MemoryTier) -> set[str]:
    return {k for k in ("a", "b", "c", "d", "e") if tier.lookup(k) is not None}


def test_lru_evicts_the_least_recently_used() -> None:
    tier = filled("lru", {"a": 100, "b": 100, "c": 100}, 300)
    tier.get("a")                       # b is now the least recently used
    tier.put("d", b"x" * 100)
    assert held(tier) == {"a", "c", "d"}
    assert tier.stats()["evictions"] == 1


def test_lfu_evicts_the_least_frequently_used() -> None:
    tier = filled("lfu", {"a": 100, "b": 100, "c": 100}, 300)
    for key, hits in (("a", 4), ("c", 3), ("b", 1)):
        for _ in range(hits):
            tier.get(key)                # b: the most recent, but the least used
    tier.put("d", b"x" * 100)
    assert held(tier) == {"a", "c", "d"}


def test_lfu_breaks_ties_by_recency() -> None:
    tier = filled("lfu", {"a": 100, "b": 100, "c": 100}, 300)
    tier.put("d", b"x" * 100)            # all used once: the oldest, a, leaves
    assert held(tier) == {"b", "c", "d"}


def test_adaptive_keeps_small_expensive_entries_over_big_cheap_ones() -> None:
    # b is 4x bigger than a and c and far cheaper to recompute: it leaves first,
    # although LRU would have evicted a
    tier = filled("adaptive", {"a": 100, "b": 400, "c": 100}, 600, costs={"a": 5.0, "b": 0.5, "c": 5.0})
    tier.put("d", b"x" * 100, cost_s=5.0)
    assert held(tier) == {"a", "c", "d"}


def test_adaptive_weighs_frequency() -> None:
    tier = filled("adaptive", {"a": 100, "b": 100, "c": 100}, 300, costs=dict.fromkeys("abc", 1.0))
    for _ in range(3):
        tier.get("a")
    tier.get("c")
    tier.put("d", b"x" * 100, cost_s=1.0)   # b: same size and cost, used least
    assert held(tier) == {"a", "c", "d"}


def test_adaptive_ages_out_what_was_hot_long_ago() -> None:
    policy = GDSF()
    policy.admit("old", size=1, cost_s=1.0)
    for _ in range(5):
        policy.touch("old")                  # priority 6
    for i in range(40):                      # a stream of new entries, each used twice
        policy.admit(f"n{i}", size=1, cost_s=1.0)
        policy.touch(f"n{i}")
        victim = policy.pop_victim()
        if victim == "old":
            break
    else:
        pytest.fail("an entry hot long ago was never evicted: GDSF's clock did not age it")
    assert policy.clock >= 6


def test_policies_evict_in_order_and_forget_removed_keys() -> None:
    for policy in (LRU(), LFU(), GDSF()):
        for key in ("a", "b", "c"):
            policy.admit(key, size=10, cost_s=1.0)
        policy.remove("a")
        assert [policy.pop_victim(), policy.pop_victim()] == ["b", "c"], policy.name
        with pytest.raises(KeyError):
            policy.pop_victim()


@pytest.mark.parametrize("policy", ["lru", "lfu", "adaptive"])
def test_the_byte_bound_holds_under_random_load(policy: str) -> None:
    rng = random.Random(7)
    tier = MemoryTier(10_000, policy)
    for _ in range(3000):
        key = f"k{rng.randrange(200)}"
        if rng.random() < 0.5:
            tier.get(key)
        elif rng.random() < 0.9:
            tier.put(key, b"x" * rng.randrange(1, 2000), cost_s=rng.random())
        else:
            tier.delete(key)
        usage = tier.usage()
        assert usage["bytes"] <= 10_000
    stats = tier.stats()
    assert stats["evictions"] > 0
    assert stats["bytes"] == sum(len(tier.lookup(k).item) for k in tier._entries)


def test_an_entry_bigger_than_the_bound_is_not_kept_and_replaces_nothing_stale() -> None:
    tier = MemoryTier(100, "lru")
    tier.put("a", b"x" * 50)
    tier.put("a", b"x" * 101)
    assert tier.get("a") is None
    assert tier.stats()["too_large"] == 1
    assert tier.usage() == {"entries": 0, "bytes": 0}


def test_expiry_uses_the_tiers_clock_and_counts() -> None:
    clock = FakeClock()
    tier = MemoryTier(1000, "adaptive", clock=clock)
    tier.put("a", b"1", ttl_s=10)
    tier.put("b", b"2", ttl_s=20)
    clock.now += 15
    assert tier.get("a") is None
    assert tier.get("b") == b"2"
    assert tier.stats()["expired"] == 1
    clock.now += 10
    assert tier.usage() == {"entries": 1, "bytes": 1} and tier.get("b") is None
    assert tier.usage() == {"entries": 0, "bytes": 0}


def test_replaced_entries_do_not_pile_up_in_the_expiry_heap() -> None:
    tier = MemoryTier(1000, "lru", clock=FakeClock())
    for _ in range(1000):
        tier.put("a", b"1", ttl_s=60)
    assert len(tier._expiries) < 200


def test_put_value_holds_the_object_itself() -> None:
    tier = MemoryTier(1000)
    obj = object()
    tier.put_value("r", obj, size_bytes=400)
    found, value = tier.get_value("r")
    assert found and value is obj
    assert tier.get("r") is None           # a held object is not bytes
    assert tier.usage()["bytes"] == 400
    tier.put_value("s", object(), size_bytes=700)   # evicts r to make room
    assert tier.get_value("r") == (False, None)


def test_bad_settings_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="policy 'mru'"):
        MemoryTier(100, "mru")
    with pytest.raises(ConfigError, match="max_bytes"):
        MemoryTier(0)
    with pytest.raises(ValueError, match="lru, lfu, adaptive"):
        make_policy("fifo")
