"""MultiLevelCache: promotion, TTL scaling, refusing tampered entries, held values, URLs."""

from __future__ import annotations

import hashlib
import hmac
import pickle
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rayflow.cache import entry
from rayflow.cache.files import FileTier
from rayflow.cache.memory import MemoryTier
from rayflow.cache.port import CacheTier
from rayflow.cache.tiers import MultiLevelCache
from rayflow.cache.urls import CACHE_ENV_VAR, open_cache
from rayflow.core.errors import ConfigError
from rayflow.plan.fingerprints import entry_key
from tests.support.tiers import make_tier

KEY = entry_key("clean", "cd" * 32)


@pytest.fixture(params=["files", "redis"])
def lower(request: pytest.FixtureRequest, tmp_path: Path):
    """An L2 of each kind under a fresh memory L1."""
    tier = make_tier(request.param, request, tmp_path)
    yield tier
    tier.clear()
    tier.close()


@pytest.fixture
def cache(lower: CacheTier) -> MultiLevelCache:
    return MultiLevelCache([MemoryTier(1 << 20), lower])


class Boom:
    """Unpickling this creates the file ``path``: a visible side effect."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def forged(payload: bytes, key: bytes) -> bytes:
    """A stored entry holding the pickle ``payload``, signed with ``key`` (not the reader's)."""
    head = entry.MAGIC + entry._META.pack(time.time(), -1.0, 1.0)
    parts = (b"rayflow cache entry", KEY.encode(), head, b"pickle", payload)
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return head + bytes([6]) + b"pickle" + h.digest() + payload


def test_a_hit_in_a_lower_tier_is_promoted(cache: MultiLevelCache, lower: CacheTier) -> None:
    cache.put(KEY, {"rows": (1, 2, 3)}, ttl_s=600, cost_s=2.0)
    cache.tiers[0].clear()
    assert cache.get(KEY) == (True, {"rows": (1, 2, 3)}, lower.name)
    assert cache.get(KEY) == (True, {"rows": (1, 2, 3)}, "memory")
    stats = cache.stats()
    assert stats["hits"] == 2 and stats["tiers"][lower.name]["served"] == 1
    assert stats["tiers"]["memory"]["served"] == 1


def test_a_miss_everywhere(cache: MultiLevelCache) -> None:
    assert cache.get(KEY) == (False, None, None)
    assert cache.stats()["misses"] == 1


@pytest.mark.parametrize("signing_key", [b"\0" * 32, b"someone else's key"])
def test_a_tampered_entry_is_rejected_deleted_and_never_unpickled(
        cache: MultiLevelCache, lower: CacheTier, tmp_path: Path, signing_key: bytes) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Boom(marker))
    lower.put(KEY, forged(payload, signing_key))
    assert cache.get(KEY) == (False, None, None)
    assert not marker.exists(), "the forged pickle was loaded"
    assert lower.get(KEY) is None, "the forged entry was not deleted"
    assert cache.stats()["tiers"][lower.name]["rejected"] == 1
    # the same bytes signed with the reader's own key would have run: the check is real
    from rayflow.data.codec import signing_key as own_key

    lower.put(KEY, forged(payload, own_key()))
    cache.get(KEY)
    assert marker.exists()


def test_garbage_and_foreign_entries_are_misses_and_deleted(cache: MultiLevelCache, lower: CacheTier) -> None:
    for junk in (b"", b"not an entry", entry.MAGIC + b"short", entry.pack(1, entry.EntryMeta(0, None, 0), key=KEY)[:-1] + b"\xff"):
        lower.put(KEY, junk)
        assert cache.get(KEY).hit is False
        assert lower.get(KEY) is None


def test_a_rejected_memory_entry_is_deleted_too() -> None:
    memory = MemoryTier(1000)
    cache = MultiLevelCache([memory])
    memory.put(KEY, b"junk")
    assert cache.get(KEY).hit is False
    assert memory.lookup(KEY) is None


def test_tier_ttls_scale_and_promoted_copies_never_outlive_their_source(tmp_path: Path) -> None:
    memory, files = MemoryTier(1 << 20), FileTier(str(tmp_path))
    cache = MultiLevelCache([memory, files])
    assert cache.ttl_scales == [0.1, 1.0]
    cache.put(KEY, "v", ttl_s=100)
    assert memory._entries[KEY].expires_at - time.monotonic() == pytest.approx(10, abs=1)
    # computed 99.5 s ago with ttl_s=100: the files copy has 0.5 s left, so the promoted
    # copy gets 0.5 s, not 100 * 0.1
    old = entry.pack("v", entry.EntryMeta(time.time() - 99.5, 100.0, 3.0), key=KEY)
    memory.clear()
    files.put(KEY, old, 0.5)
    assert cache.get(KEY) == (True, "v", "files")
    assert memory._entries[KEY].expires_at - time.monotonic() == pytest.approx(0.5, abs=0.2)
    assert memory._policy._meta[KEY][1] == 3.0          # the recompute cost came along


def test_no_ttl_means_no_expiry_anywhere(tmp_path: Path) -> None:
    memory = MemoryTier(1 << 20)
    cache = MultiLevelCache([memory, FileTier(str(tmp_path))], ttl_scales=[None, 1.0])
    cache.put(KEY, "v", ttl_s=50)
    assert memory._entries[KEY].expires_at is None


def test_immutable_values_are_held_without_a_copy_mutable_ones_as_bytes() -> None:
    cache = MultiLevelCache([MemoryTier(1 << 20)])
    table = pa.table({"x": [1, 2]})
    cache.put("t:1", table)
    assert cache.get("t:1").value is table
    array = np.arange(4)
    cache.put("a:1", array)
    got = cache.get("a:1").value
    assert np.shares_memory(got, array) and not got.flags.writeable and array.flags.writeable
    rows = {"x": [1, 2]}
    cache.put("d:1", rows)
    first = cache.get("d:1").value
    first["x"].append(3)
    assert cache.get("d:1").value == {"x": [1, 2]}


def test_an_array_from_a_lower_tier_comes_back_read_only(cache: MultiLevelCache) -> None:
    cache.put(KEY, np.arange(5))
    cache.tiers[0].clear()
    got = cache.get(KEY).value
    assert not got.flags.writeable
    with pytest.raises(ValueError):
        got[0] = 99
    assert cache.get(KEY).value[0] == 0


def test_hold_keeps_another_object_in_memory_and_the_value_below(cache: MultiLevelCache, lower: CacheTier) -> None:
    ref = object()                                  # stands for a Ray ObjectRef
    cache.put(KEY, [1, 2, 3], hold=ref)
    assert cache.get(KEY).value is ref
    cache.tiers[0].clear()
    assert cache.get(KEY) == (True, [1, 2, 3], lower.name)


def test_put_value_reaches_memory_tiers_only(cache: MultiLevelCache, lower: CacheTier) -> None:
    ref = object()
    cache.put_value(KEY, ref, size_bytes=10)
    assert cache.get(KEY).value is ref
    assert lower.get(KEY) is None


def test_a_value_that_cannot_be_encoded_is_not_stored_and_does_not_raise(cache: MultiLevelCache) -> None:
    cache.put(KEY, lambda: 1)
    assert cache.get(KEY).hit is False
    assert cache.stats()["unencodable"] == 1


def test_clear_by_component_across_tiers(cache: MultiLevelCache, lower: CacheTier) -> None:
    keep, drop = entry_key("keep", "1" * 64), entry_key("drop", "1" * 64)
    cache.put(keep, "k")
    cache.put(drop, "d")
    assert cache.clear(component="drop") == {"memory": 1, lower.name: 1}
    assert cache.get(drop).hit is False and cache.get(keep).hit is True


def test_the_cache_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError, match="open one per process"):
        pickle.dumps(MultiLevelCache([MemoryTier(100)]))


# -- URLs ---------------------------------------------------------------------------------


def test_default_is_memory_only_and_env_var_is_read(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    cache = open_cache()
    assert [t.name for t in cache.tiers] == ["memory"] and cache.ttl_scales == [1.0]
    monkeypatch.setenv(CACHE_ENV_VAR, f"memory://?max_bytes=1MiB&policy=lfu, file://{tmp_path}?ttl_scale=10")
    cache = open_cache()
    assert [t.name for t in cache.tiers] == ["memory", "files"]
    assert cache.tiers[0].max_bytes == 1024 * 1024 and cache.stats()["tiers"]["memory"]["policy"] == "lfu"
    assert cache.ttl_scales == [0.1, 10.0]
    assert open_cache("off").tiers == []


def test_url_forms(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for url in ("file:///~/c1", "~/c2", f"{tmp_path}/c3", f"file://{tmp_path}/c4"):
        (tier,) = open_cache(url).tiers
        assert tier.root.startswith(str(tmp_path)), url
    cache = open_cache(["memory://", "memory://?ttl_scale=none"])
    assert [t.name for t in cache.tiers] == ["memory", "memory2"] and cache.ttl_scales == [0.1, None]


@pytest.mark.parametrize("url, culprit", [
    ("memcached://localhost", "scheme 'memcached'"),
    ("memory://?max_bytes=lots", "'lots'"),
    ("memory://?policy=mru", "'mru'"),
    ("memory://?size=1", "unknown parameter 'size'"),
    ("memory://host", "no host or path"),
    ("memory://?ttl_scale=-1", "ttl_scale='-1'"),
    ("redis://127.0.0.1:6379/0?timeout=0", "timeout='0'"),
    ("redis://127.0.0.1:6379/0?failures=x", "failures='x'"),
    ("redis://127.0.0.1:6379/0?bogus=1", "unknown parameter 'bogus'"),
    ("memory://?policy=lru&policy=lfu", "'policy' given more than once"),
    ("file:///tmp/x?colour=red", "colour"),
    ("s3://bucket/x?colour=red", "colour"),
    ("memory://,,memory://", "empty entry"),
    ("redis://127.0.0.1:abc/0", "port must be a number"),
    ("redis://127.0.0.1:6379/zero", "DB a number"),
    ("redis://127.0.0.1:6379/0?prefix=", "prefix must not be empty"),
])
def test_bad_urls_are_one_line_config_errors_naming_the_part(url: str, culprit: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_cache(url)
    message = str(info.value)
    assert culprit in message and "\n" not in message
