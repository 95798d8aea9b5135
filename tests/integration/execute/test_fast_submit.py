"""The learned core-worker submission path (rayflow.execute.ray.submit)."""

from __future__ import annotations

import ray

import rayflow as rf
from rayflow.execute.ray import compat
from rayflow.execute.ray import submit as ray_submit
from rayflow.execute.ray.submit import Configured
from tests.fns import execute as fns


def _pair(blob: bytes, *deps: int) -> tuple:
    return blob, sum(deps)


_PAIR = ray.remote(_pair)


def test_the_installed_ray_makes_the_call_this_path_was_written_against():
    assert compat.matches_ray()


def test_learned_calls_give_the_same_results_as_remote(ray_session):
    remote = Configured(_PAIR, {"num_returns": 2, "num_cpus": 0.5, "max_retries": 1, "retry_exceptions": False})
    first = remote.remote(b"a", 1, 2)          # the public path, then learns the call
    assert remote._call is not None
    deps = [ray.put(3), ray.put(4)]
    again = remote.remote(b"b", *deps)         # the learned call, refs as arguments
    assert ray.get(list(first)) == [b"a", 3]
    assert ray.get(list(again)) == [b"b", 7]
    # what it learned is what .remote() derives: resources and retries
    tail = remote._call[1]
    assert tail[1] == 2 and tail[2] == {"CPU": 0.5} and tail[3] == 1 and tail[4] is False


def test_a_retry_allowlist_is_kept(ray_session):
    remote = Configured(_PAIR, {"num_returns": 2, "max_retries": 2, "retry_exceptions": [ValueError]})
    ray.get(list(remote.remote(b"c")))
    assert remote._call[1][4:6] == (True, (ValueError,))


def test_options_it_does_not_handle_keep_the_public_path(ray_session):
    remote = Configured(_PAIR, {"num_returns": 2, "name": "named"})
    assert ray.get(list(remote.remote(b"d", 1))) == [b"d", 1]
    assert remote._call is None and remote._worker is not None   # decided once for this core worker
    learn_calls = []
    original = Configured._learn
    Configured._learn = lambda self: learn_calls.append(self) or original(self)
    try:
        assert ray.get(list(remote.remote(b"e", 2))) == [b"e", 2]
    finally:
        Configured._learn = original
    assert learn_calls == []   # not worked out again on every call


def test_turned_off_by_the_environment(ray_session, monkeypatch):
    monkeypatch.setenv(ray_submit.ENV_VAR, "0")
    remote = Configured(_PAIR, {"num_returns": 2})
    assert ray.get(list(remote.remote(b"f", 1))) == [b"f", 1]
    assert remote._call is None


def test_another_ray_keeps_the_public_path(ray_session, monkeypatch):
    monkeypatch.setattr(compat, "EXPECTED_CALL", "something else")
    compat.matches_ray.cache_clear()
    try:
        remote = Configured(_PAIR, {"num_returns": 2})
        assert ray.get(list(remote.remote(b"g", 1))) == [b"g", 1]
        assert remote._call is None
    finally:
        compat.matches_ray.cache_clear()


def test_a_run_submits_through_the_learned_call(ray_session):
    from rayflow.execute.ray import tasks as ray_tasks

    @rf.workflow(name="fast_submit_fan")
    def fan(n: int):
        return fns.total([fns.inc(i) for i in range(n)])

    assert rf.run(fan, n=30) == sum(i + 1 for i in range(30))
    functions = {fns.inc.fn, fns.total.fn}
    used = [configured for fn, configured in ray_tasks._CONFIGURED.values() if fn in functions]
    assert len(used) == 2 and all(c._call is not None for c in used)
