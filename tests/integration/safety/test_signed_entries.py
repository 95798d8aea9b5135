"""Every cache entry is signed and bound to its key (issue 15 item 5).

Whoever can write to Redis, the cache folder or the store's ``cache_entries`` table can
move an entry to another key, change its header (creation time, TTL) or swap its
Arrow, JSON or .npy payload: each is a miss (deleted, counted as rejected), never a
hit with someone else's value. Real tiers: Redis, files, the SQLite store.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rayflow.cache import entry
from rayflow.cache.memory import MemoryTier
from rayflow.cache.port import CacheTier
from rayflow.cache.tiers import MultiLevelCache
from rayflow.plan.fingerprints import entry_key
from tests.support.tiers import make_tier

KEY = entry_key("prices", "ab" * 32)
OTHER = entry_key("prices", "cd" * 32)
MARK = 0x1122334455667788          # a distinctive value, found and changed in the stored bytes
FORGED = 0x0102030405060708
TTL_AT = len(entry.MAGIC) + 8      # the header: MAGIC, created, ttl_s, cost_s (big-endian doubles)


@pytest.fixture(params=["redis", "files", "sqlite"])
def lower(request: pytest.FixtureRequest, tmp_path: Path):
    tier = make_tier(request.param, request, tmp_path)
    yield tier
    tier.clear()
    tier.close()


@pytest.fixture
def cache(lower: CacheTier) -> MultiLevelCache:
    return MultiLevelCache([lower])


def _rejected(cache: MultiLevelCache, lower: CacheTier, key: str) -> None:
    assert cache.get(key) == (False, None, None)
    assert lower.get(key) is None, "the refused entry was not deleted"


def test_an_entry_moved_to_another_key_is_a_miss(cache: MultiLevelCache, lower: CacheTier) -> None:
    cache.put(KEY, {"price": 3}, ttl_s=600)
    lower.put(OTHER, lower.get(KEY))
    _rejected(cache, lower, OTHER)
    assert cache.stats()["tiers"][lower.name]["rejected"] == 1
    assert cache.get(KEY) == (True, {"price": 3}, lower.name)       # where it was written, it still reads


@pytest.mark.parametrize("field_at, value", [(TTL_AT, 1e9), (TTL_AT, -1.0), (len(entry.MAGIC), time.time() + 1e6)],
                         ids=["longer-ttl", "no-ttl", "newer"])
def test_a_changed_header_is_a_miss(cache: MultiLevelCache, lower: CacheTier, field_at: int, value: float) -> None:
    cache.put(KEY, {"price": 3}, ttl_s=600)
    data = bytearray(lower.get(KEY))
    struct.pack_into(">d", data, field_at, value)
    lower.put(KEY, bytes(data))
    _rejected(cache, lower, KEY)


def test_an_entry_past_its_signed_ttl_is_a_miss_whatever_the_tier_says(cache: MultiLevelCache,
                                                                       lower: CacheTier) -> None:
    stale = entry.pack({"price": 3}, entry.EntryMeta(time.time() - 100, 10.0, 1.0), key=KEY)
    lower.put(KEY, stale, None)       # the tier's own expiry rewritten to "never"
    _rejected(cache, lower, KEY)
    fresh = entry.pack({"price": 4}, entry.EntryMeta(time.time() - 5, 10.0, 1.0), key=KEY)
    lower.put(KEY, fresh, None)
    assert cache.get(KEY) == (True, {"price": 4}, lower.name)


def _swap(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, "the marked value is not in the stored bytes once"
    return data.replace(old, new)


PAYLOADS = {
    "arrow": (pa.table({"x": pa.array([1, MARK, 3], pa.int64())}), MARK.to_bytes(8, "little"),
              FORGED.to_bytes(8, "little")),
    "npy": (np.array([1, MARK, 3], dtype=np.int64), MARK.to_bytes(8, "little"), FORGED.to_bytes(8, "little")),
    "json": ({"account": "alice", "limit": 10}, b'"alice"', b'"mallo"'),
}


@pytest.mark.parametrize("fmt", PAYLOADS)
def test_a_swapped_payload_is_a_miss(cache: MultiLevelCache, lower: CacheTier, fmt: str) -> None:
    value, old, new = PAYLOADS[fmt]
    cache.put(KEY, value, ttl_s=600)
    lower.put(KEY, _swap(lower.get(KEY), old, new))
    _rejected(cache, lower, KEY)


def test_a_hit_reads_arrow_from_the_stored_bytes_and_a_memory_tier_promotes_it(lower: CacheTier) -> None:
    cache = MultiLevelCache([MemoryTier(1 << 20), lower])
    table = pa.table({"x": pa.array(range(1000), pa.int64())})
    cache.put(KEY, table, ttl_s=600)
    cache.tiers[0].clear()
    hit = cache.get(KEY)
    assert hit.hit and hit.tier == lower.name and hit.value.equals(table)
    assert cache.get(KEY).tier == "memory"     # the promoted copy verifies under the same key
