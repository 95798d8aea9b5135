"""The executor of a run the cache serves whole: it hands back what was placed and
refuses, by name, anything that would run."""

from __future__ import annotations

import pytest

from rayflow.execute.cached import CachedExecutor


class _Opts:
    def __init__(self, num_outputs=None):
        self.num_outputs = num_outputs


class _Task:
    def __init__(self, cid, num_outputs=None):
        self.id, self.options = cid, _Opts(num_outputs)


def test_placed_values_come_back_as_they_were_placed() -> None:
    ex = CachedExecutor("ray")
    one = ex.place(_Task("a"), {"x": 1})
    two = ex.place(_Task("b", num_outputs=2), (3, 4))
    assert ex.output(two, 1) == 4
    assert ex.fetch({"a": one, "b": two}) == {"a": {"x": 1}, "b": (3, 4)}
    assert ex.name == "ray" and ex.eager and ex.wait(1.0) == [] and ex.settle() == []


@pytest.mark.parametrize("call", ["submit", "restore", "save"])
def test_anything_that_would_run_is_refused_naming_the_component(call) -> None:
    ex = CachedExecutor()
    with pytest.raises(RuntimeError, match="component 'c1'"):
        getattr(ex, call)(_Task("c1"), [])
