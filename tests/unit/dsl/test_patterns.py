"""Parallel patterns built while tracing: argument checks and the partition/gather parts."""

from __future__ import annotations

import pyarrow as pa
import pytest

import rayflow as rf
from rayflow.core.errors import SpecError
from rayflow.dsl.patterns import gather, partition


@rf.component
def ident(x):
    return x


@rf.component
def combine(parts: list):
    return sum(parts)


@pytest.mark.parametrize("fan_in", [1, 0, True, 2.5])
def test_map_reduce_needs_a_fan_in_of_at_least_two(fan_in):
    @rf.workflow
    def wf():
        return rf.map_reduce(ident, combine, [1, 2, 3], fan_in=fan_in)

    with pytest.raises(SpecError, match="fan_in"):
        wf.build()


def test_map_reduce_of_nothing_is_refused_and_of_one_item_still_reduces():
    @rf.workflow
    def empty():
        return rf.map_reduce(ident, combine, [])

    @rf.workflow
    def single():
        return rf.map_reduce(ident, combine, [7])

    with pytest.raises(SpecError, match="no items"):
        empty.build()
    assert list(single.build().calls) == ["ident", "combine"]


@pytest.mark.parametrize("kwargs, field", [({"parts": 0}, "parts"), ({"parts": 2, "mode": "random"}, "mode")])
def test_scatter_gather_checks_its_arguments(kwargs, field):
    @rf.workflow
    def wf():
        return rf.scatter_gather(pa.table({"k": [1]}), ident, **kwargs)

    with pytest.raises(SpecError, match=field):
        wf.build()


def test_partition_by_position_slices_in_order_without_copying():
    table = pa.table({"x": list(range(10))})
    parts = partition(table, 3)
    assert [p.column("x").to_pylist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert gather(list(parts)).column("x").to_pylist() == list(range(10))


def test_partition_by_hash_and_by_range():
    table = pa.table({"k": ["b", "a", "c", "a", "b", "d"], "x": list(range(6))})
    hashed = partition(table, 2, by="k")
    homes = {}
    for i, part in enumerate(hashed):
        for key in part.column("k").to_pylist():
            homes.setdefault(key, set()).add(i)
    assert all(len(h) == 1 for h in homes.values()) and sum(p.num_rows for p in hashed) == 6
    ranged = partition(table, 3, by="k", mode="range")
    assert gather(list(ranged)).column("k").to_pylist() == ["a", "a", "b", "b", "c", "d"]
    with pytest.raises(KeyError, match="no column 'z'"):
        partition(table, 2, by="z")
