"""rayflow.core.options: parsing and checking component options (no Ray)."""

from __future__ import annotations

import math

import pytest

from rayflow.core.errors import ResourceError, SpecError
from rayflow.core.options import ComponentOptions, normalize, parse_amount, parse_memory

MiB, GiB = 1024**2, 1024**3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512MiB", 512 * MiB),
        ("2GiB", 2 * GiB),
        ("1GB", 1000**3),
        ("1.5GiB", int(1.5 * GiB)),
        ("512 MiB", 512 * MiB),
        ("2gib", 2 * GiB),
        ("100", 100),
        ("100b", 100),
        ("4k", 4000),
        ("1e3", 1000),
        (1024, 1024),
        (0, 0),
        (1.5e9, 1_500_000_000),
        (None, None),
    ],
)
def test_parse_memory(value, expected):
    assert parse_memory(value, component="load") == expected


@pytest.mark.parametrize(
    "value",
    ["lots", "12XB", "", "MiB", "-1GiB", "1..5GiB", -1, -0.5, float("nan"), float("inf"),
     float("-inf"), True, False, [512], {"a": 1}],
)
def test_parse_memory_rejects(value):
    with pytest.raises(ResourceError) as info:
        parse_memory(value, component="load")
    err = info.value
    assert isinstance(err, SpecError)
    assert err.component == "load"
    message = str(err)
    assert "'load'" in message and "'memory'" in message
    assert "\n" not in message


def test_parse_memory_names_the_given_field():
    with pytest.raises(ResourceError, match="'object_store'"):
        parse_memory("x", component="c", field_name="object_store")


def test_parse_memory_without_component_names_field_only():
    with pytest.raises(ResourceError) as info:
        parse_memory("bad")
    assert info.value.component is None
    assert str(info.value).startswith("field 'memory'")


@pytest.mark.parametrize(("value", "expected"), [(2, 2.0), (0.5, 0.5), ("1.5", 1.5), (0, 0.0), (None, None)])
def test_parse_amount(value, expected):
    assert parse_amount(value, component="c", field_name="num_cpus") == expected


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "nan", "x", True, [1]])
def test_parse_amount_rejects(value):
    with pytest.raises(ResourceError, match="component 'c' field 'num_cpus'"):
        parse_amount(value, component="c", field_name="num_cpus")


# -- ComponentOptions -----------------------------------------------------------------------


def test_defaults_follow_ray():
    opts = normalize(ComponentOptions(), component="c")
    assert opts.num_cpus == 1.0 and opts.num_gpus == 0.0 and opts.memory is None
    assert opts.max_retries == 0 and opts.retry_exceptions is False
    assert opts.kind == "task" and opts.concurrency == 1 and opts.timeout_s is None
    assert opts.ray_resources() == {"CPU": 1.0}
    assert opts.describe() == {"num_cpus": 1.0}


def test_merged_parses_and_returns_a_copy():
    base = ComponentOptions()
    opts = base.merged({"num_cpus": 0.5, "memory": "512MiB", "num_gpus": 1, "resources": {"node_b": 1},
                        "max_retries": 2, "timeout_s": 30}, component="sq")
    assert base.num_cpus == 1.0 and base.memory is None  # unchanged
    assert opts.num_cpus == 0.5 and opts.memory == 512 * MiB and opts.num_gpus == 1.0
    assert opts.resources == {"node_b": 1.0}
    assert opts.max_retries == 2 and opts.timeout_s == 30.0
    assert opts.ray_resources() == {"CPU": 0.5, "GPU": 1.0, "memory": float(512 * MiB), "node_b": 1.0}
    assert opts.describe() == {"num_cpus": 0.5, "num_gpus": 1.0, "memory": 512 * MiB, "resources": {"node_b": 1.0}}


def test_merged_unknown_option_lists_the_known_ones():
    with pytest.raises(SpecError) as info:
        ComponentOptions().merged({"num_cpu": 2, "retries": 1}, component="load")
    message = str(info.value)
    assert info.value.component == "load"
    assert "'load'" in message
    assert "num_cpu" in message and "retries" in message
    for known in ("num_cpus", "num_gpus", "memory", "max_retries", "timeout_s", "kind"):
        assert known in message


def test_merged_names_the_id_override_when_no_component_given():
    with pytest.raises(ResourceError) as info:
        ComponentOptions().merged({"id": "mine", "num_cpus": -1})
    assert info.value.component == "mine"


@pytest.mark.parametrize("value", [-1, float("nan"), "lots"])
def test_num_cpus_rejected(value):
    with pytest.raises(ResourceError) as info:
        ComponentOptions().merged({"num_cpus": value}, component="c")
    assert "'num_cpus'" in str(info.value) and "'c'" in str(info.value)


def test_num_gpus_negative_rejected():
    with pytest.raises(ResourceError, match="'num_gpus'"):
        ComponentOptions().merged({"num_gpus": -2}, component="c")


@pytest.mark.parametrize("name", ["CPU", "GPU", "memory"])
def test_custom_resources_naming_builtin_resources_rejected(name):
    with pytest.raises(ResourceError) as info:
        ComponentOptions().merged({"resources": {name: 1}}, component="c")
    assert repr(name) in str(info.value)
    assert "custom" in str(info.value)


def test_custom_resources_checked():
    with pytest.raises(ResourceError, match="resources.node_b"):
        ComponentOptions().merged({"resources": {"node_b": -1}}, component="c")
    with pytest.raises(ResourceError, match="'resources'"):
        ComponentOptions().merged({"resources": ["node_b"]}, component="c")
    assert ComponentOptions().merged({"resources": None}, component="c").resources == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (ValueError, (ValueError,)),
        ([ValueError, KeyError], (ValueError, KeyError)),
        ((OSError,), (OSError,)),
    ],
)
def test_retry_exceptions_forms(value, expected):
    assert ComponentOptions().merged({"retry_exceptions": value}, component="c").retry_exceptions == expected


@pytest.mark.parametrize("value", ["ValueError", [ValueError, "KeyError"], 1, [int], None])
def test_retry_exceptions_rejected(value):
    with pytest.raises(SpecError, match="'retry_exceptions'"):
        ComponentOptions().merged({"retry_exceptions": value}, component="c")


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_concurrency_must_be_an_integer_at_least_one(value):
    with pytest.raises(SpecError, match="'concurrency'") as info:
        ComponentOptions().merged({"concurrency": value}, component="pool")
    assert info.value.component == "pool"


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_max_retries_rejected(value):
    with pytest.raises(SpecError, match="'max_retries'"):
        ComponentOptions().merged({"max_retries": value}, component="c")


@pytest.mark.parametrize("kind", ["thread", "", "Task", None])
def test_kind_invalid(kind):
    with pytest.raises(SpecError) as info:
        ComponentOptions().merged({"kind": kind}, component="c")
    assert "'kind'" in str(info.value)
    assert "task, actor, batch" in str(info.value)


@pytest.mark.parametrize("kind", ["task", "actor", "batch"])
def test_kind_valid(kind):
    assert ComponentOptions().merged({"kind": kind}, component="c").kind == kind


def test_timeout_zero_rejected():
    with pytest.raises(SpecError, match="'timeout_s'") as info:
        ComponentOptions().merged({"timeout_s": 0}, component="slow")
    assert info.value.component == "slow"


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf")])
def test_timeout_invalid(value):
    with pytest.raises(SpecError, match="'timeout_s'"):
        ComponentOptions().merged({"timeout_s": value}, component="c")


def test_timeout_positive_kept():
    assert math.isclose(ComponentOptions().merged({"timeout_s": 0.25}, component="c").timeout_s, 0.25)


def test_zero_cpus_allowed_and_left_out_of_nothing():
    opts = ComponentOptions().merged({"num_cpus": 0}, component="c")
    assert opts.num_cpus == 0.0
    assert opts.ray_resources() == {"CPU": 0.0}
