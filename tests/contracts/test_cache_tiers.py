"""The CacheTier contract, run against every tier: memory, Redis (the shared server, a
namespace per test) and files (under tmp_path)."""

from __future__ import annotations

import json
import os
import time

import pytest

from rayflow.cache.port import CacheTier
from rayflow.core.errors import ConfigError
from rayflow.plan.fingerprints import component_prefix, entry_key
from tests.support.tiers import make_tier

DIGEST = "ab" * 32


def test_a_missing_key_is_a_miss(tier: CacheTier) -> None:
    assert tier.get(entry_key("c", DIGEST)) is None


def test_put_then_get_returns_the_same_bytes(tier: CacheTier) -> None:
    blob = bytes(range(256)) * 4 + b"\0tail"
    tier.put(entry_key("c", DIGEST), blob)
    assert tier.get(entry_key("c", DIGEST)) == blob


def test_a_large_entry_round_trips(tier: CacheTier) -> None:
    blob = os.urandom(2 * 1024 * 1024)
    tier.put("big:" + DIGEST, blob)
    assert tier.get("big:" + DIGEST) == blob


def test_put_replaces_the_previous_entry(tier: CacheTier) -> None:
    tier.put("c:1", b"old")
    tier.put("c:1", b"new")
    assert tier.get("c:1") == b"new"


def test_delete_drops_one_key_and_ignores_a_missing_one(tier: CacheTier) -> None:
    tier.put("c:1", b"one")
    tier.put("c:2", b"two")
    tier.delete("c:1")
    tier.delete("c:never")
    assert tier.get("c:1") is None
    assert tier.get("c:2") == b"two"


def test_clear_by_component_prefix_leaves_other_components(tier: CacheTier) -> None:
    # "a" must not clear "a:b" (ids are percent-encoded), nor "ab"
    for component in ("a", "a:b", "ab", "dir/x y"):
        tier.put(entry_key(component, DIGEST), component.encode())
    assert tier.clear(component_prefix("a")) == 1
    assert tier.get(entry_key("a", DIGEST)) is None
    for component in ("a:b", "ab", "dir/x y"):
        assert tier.get(entry_key(component, DIGEST)) == component.encode()
    assert tier.clear(component_prefix("dir/x y")) == 1
    assert tier.get(entry_key("dir/x y", DIGEST)) is None


def test_clear_by_any_prefix_and_clear_all(tier: CacheTier) -> None:
    for key in ("k1:x", "k1:y", "k2:x", "plain"):
        tier.put(key, b"v")
    assert tier.clear("k1:x") == 1
    assert tier.get("k1:y") == b"v"
    assert tier.clear() == 3
    assert all(tier.get(k) is None for k in ("k1:y", "k2:x", "plain"))


def test_an_entry_expires_after_its_ttl(tier: CacheTier) -> None:
    tier.put("t:short", b"v", ttl_s=0.3)
    tier.put("t:forever", b"v", ttl_s=None)
    tier.put("t:long", b"v", ttl_s=60)
    assert tier.get("t:short") == b"v"
    time.sleep(0.6)
    assert tier.get("t:short") is None
    assert tier.get("t:forever") == b"v"
    assert tier.get("t:long") == b"v"


def test_a_zero_ttl_stores_nothing_and_drops_the_old_entry(tier: CacheTier) -> None:
    tier.put("t:x", b"old")
    tier.put("t:x", b"new", ttl_s=0)
    assert tier.get("t:x") is None


def test_a_negative_or_nan_ttl_is_a_config_error(tier: CacheTier) -> None:
    for bad in (-1, float("nan")):
        with pytest.raises(ConfigError, match="ttl_s"):
            tier.put("t:x", b"v", ttl_s=bad)


def test_stats_count_hits_misses_and_puts(tier: CacheTier) -> None:
    tier.put("s:1", b"12345")
    tier.get("s:1")
    tier.get("s:1")
    tier.get("s:missing")
    stats = tier.stats()
    assert (stats["hits"], stats["misses"], stats["puts"]) == (2, 1, 1)
    assert stats["hit_ratio"] == pytest.approx(2 / 3)
    assert stats["bytes_in"] == 5 and stats["bytes_out"] == 10
    assert stats["errors"] == 0
    json.dumps(stats)


def test_usage_counts_what_is_held(tier: CacheTier) -> None:
    assert tier.usage()["entries"] == 0
    tier.put("u:1", b"x" * 100)
    tier.put("u:2", b"y" * 50)
    usage = tier.usage()
    assert usage["entries"] == 2
    assert usage["bytes"] >= 150


def test_close_is_idempotent_and_later_reads_miss(tier: CacheTier, request, tmp_path) -> None:
    other = make_tier(request.node.callspec.params["tier"], request, tmp_path / "other")
    other.close()
    other.close()
    assert other.get("c:never") is None
