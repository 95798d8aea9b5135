"""Fused members, dynamic-map items and stream stages each keep their own log."""

from __future__ import annotations

import pytest

import rayflow as rf
from tests.fns import logs as fns


@pytest.fixture(params=["local", "ray"])
def executor(request, service):
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param


def test_each_fused_member_keeps_its_own_lines(executor, service):
    plan = rf.explain(fns.fused_chain, n=4)
    if executor == "ray":
        assert plan.fused and set(plan.fused[0]) == {"t0", "t1", "t2", "t3"}   # one call for the four
    h = rf.submit(fns.fused_chain, executor=executor, n=4)
    assert h.result(timeout=120) == 4
    assert [h.logs(f"t{i}") for i in range(4)] == [f"t{i} got {i}\n" for i in range(4)]


def test_each_map_item_keeps_its_own_lines(executor, service):
    h = rf.submit(fns.mapped, executor=executor, n=3)
    assert h.result(timeout=120) == [0, 10, 20]
    cid = next(c for c in h.metrics()["components"] if c not in ("items",))
    assert [h.logs(f"{cid}[{i}]") for i in range(3)] == [f"item {i}\n" for i in range(3)]


def test_each_stream_stage_keeps_its_lines_of_every_batch(executor, service):
    h = rf.submit(fns.streamed, executor=executor, n=30)
    assert h.result(timeout=120).num_rows == 30
    if executor == "ray":
        assert rf.explain(fns.streamed).streams == (("stage_a", "stage_b"),)
    for stage in ("a", "b"):
        lines = h.logs(f"stage_{stage}").splitlines()
        assert sorted(lines) == sorted(f"{stage} saw 10 rows from {k}" for k in (0, 10, 20))
