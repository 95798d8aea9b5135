"""The cache of finished runs' answers: kept for its TTL, forgotten on demand, bounded."""

from __future__ import annotations

import time

from rayflow.server.http.cache import FinalRuns


def test_an_answer_is_kept_for_its_ttl_then_asked_again():
    cache = FinalRuns(ttl_s=0.2)
    cache.put("r1", b"{}")
    assert cache.get("r1") == b"{}"
    time.sleep(0.25)
    assert cache.get("r1") is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_forget_drops_an_answer_at_once():
    cache = FinalRuns(ttl_s=60)
    cache.put("r1", b"a")
    cache.put("r1", b"s", "summary")
    assert cache.get("r1") == b"a" and cache.get("r1", "summary") == b"s"   # each variant apart
    cache.forget("r1")
    assert cache.get("r1") is None and cache.get("r1", "summary") is None


def test_the_oldest_answers_go_first_beyond_the_bound():
    cache = FinalRuns(ttl_s=60, max_entries=2)
    for rid in ("a", "b", "c"):
        cache.put(rid, rid.encode())
    assert cache.get("a") is None and cache.get("b") == b"b" and cache.get("c") == b"c"
