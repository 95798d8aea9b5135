"""The result cache in runs: an unchanged component is not computed again (in this run
or a later one, in any process sharing a tier), a change anywhere recomputes it and
everything downstream, a tampered entry is never used, and a Redis that dies mid-run
turns into misses while the run succeeds with the same outputs."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.fns import engine as fns
from tests.helpers import free_port
from tests.support.tiers import ThrowawayRedis


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "ledger"
    path.mkdir()
    return path


@pytest.fixture
def use_cache(service):
    """Point the service's cache at the given URLs for one test; back to the default after."""
    def use(urls: str) -> None:
        service.configure(cache=urls)
    yield use
    service.configure(cache="memory://")


def run(svc, wf, executor, **inputs):
    h = svc.submit(wf, inputs, executor=executor)
    value = h.result(timeout=120)
    return value, h.progress(), h


def test_an_unchanged_run_is_served_from_the_cache(service, use_cache, folder, executor):
    use_cache("memory://")
    first, counts, _ = run(service, fns.cached, executor, folder=str(folder))
    assert first == (0 + 10 + 20) * 2 and counts == {"SUCCEEDED": 7}
    again, counts, h = run(service, fns.cached, executor, folder=str(folder))
    assert again == first and counts == {"CACHED": 7}
    assert fns.ledger(folder) == {"load_0": 1, "load_1": 1, "load_2": 1, "scale_0": 1, "scale_10": 1,
                                  "scale_20": 1, "versioned": 1}
    summary = service.store.get_run(h.run_id).summary
    assert summary["cache"]["hits"] == 7 and summary["cache"]["misses"] == 0


def test_a_change_recomputes_it_and_everything_downstream(service, use_cache, folder):
    use_cache("memory://")
    run(service, fns.cached, "local", folder=str(folder), n=2)
    _, counts, _ = run(service, fns.cached, "local", folder=str(folder), n=2, factor=3)
    assert counts == {"CACHED": 2, "SUCCEEDED": 3}        # loads hit; every scale and the sum rerun
    _, counts, _ = run(service, fns.cached, "local", folder=str(folder), n=3, factor=3)
    assert counts == {"CACHED": 4, "SUCCEEDED": 3}        # load_2, scale_20 and the sum are new


def test_an_uncached_upstream_leaves_its_downstream_uncached(service, use_cache, folder):
    use_cache("memory://")
    run(service, fns.half_cached, "local", folder=str(folder))
    _, counts, _ = run(service, fns.half_cached, "local", folder=str(folder))
    assert counts == {"CACHED": 2, "SUCCEEDED": 2}        # plain, and after_plain that reads it, run again
    assert fns.ledger(folder)["after_plain"] == 2


def test_a_tampered_shared_entry_is_rejected_and_recomputed(service, use_cache, folder, redis_url):
    import redis

    prefix = f"rayflow:test:{uuid.uuid4().hex}:"
    use_cache(f"redis://{redis_url.split('://', 1)[1]}?prefix={prefix}")
    first, _, _ = run(service, fns.cached, "local", folder=str(folder), n=1)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = client.keys(prefix + "*")
        assert keys
        for key in keys:
            data = bytearray(client.get(key))
            data[-1] ^= 0xFF            # a flipped byte: the entry no longer decodes or verifies
            client.set(key, bytes(data))
        again, counts, _ = run(service, fns.cached, "local", folder=str(folder), n=1)
        assert again == first and counts == {"SUCCEEDED": 3}
        assert service.cache().stats()["tiers"]["redis"]["rejected"] >= 1
    finally:
        for key in client.keys(prefix + "*"):
            client.delete(key)


@pytest.mark.slow
def test_redis_dying_mid_run_turns_into_misses(service, use_cache, folder, ray_session, caplog):
    server = ThrowawayRedis(free_port())
    server.start()
    try:
        use_cache(server.url)
        expected, _, _ = run(service, fns.cached, "ray", folder=str(folder), n=4)   # the entries are in Redis
        service.configure(cache="memory://")
        use_cache(server.url)        # a fresh process-side cache: nothing held in memory
        h = service.submit(fns.cached, {"folder": str(folder), "n": 6, "factor": 5, "pause_s": 0.3},
                           executor="ray")
        server.kill()                # while the run's lookups and writes go on
        with caplog.at_level(logging.WARNING, logger="rayflow.cache"):
            assert h.result(timeout=120) == sum(i * 10 * 5 for i in range(6))
        assert h.status() == "SUCCEEDED"
        stats = service.cache().stats()["tiers"]["redis"]
        assert stats["breaker"] in ("open", "half_open") or stats["errors"] >= 1
        assert expected == (0 + 10 + 20 + 30) * 2
    finally:
        server.kill()


def test_a_large_output_reaches_the_shared_tiers_without_the_driver(service, use_cache, folder, ray_session,
                                                                    tmp_path):
    files = tmp_path / "shared-cache"
    use_cache(f"memory://,file://{files}")
    first, _, _ = run(service, fns.big, "ray", folder=str(folder))
    assert first == 50_000
    service.configure(cache="memory://")
    use_cache(f"memory://,file://{files}")      # a fresh process-side cache: only the files tier has entries
    again, counts, _ = run(service, fns.big, "ray", folder=str(folder))
    assert again == first and counts == {"CACHED": 2}
    assert fns.ledger(folder) == {"big_table": 1, "count_rows": 1}
    assert service.cache().stats()["tiers"]["files"]["hits"] >= 1
