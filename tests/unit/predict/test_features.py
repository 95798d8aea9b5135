"""Features: the stable layout, missing values, config extraction, records to samples."""

from __future__ import annotations

import math

import numpy as np

from rayflow.predict import Sample, numeric_config, sample_from_record, to_matrix
from rayflow.predict.features import feature_names, is_oom
from rayflow.store.port import ComponentRecord


def test_layout_sorts_config_keys_and_marks_missing_values():
    samples = [
        Sample("m:f", config={"zeta": 2.0, "alpha": 1.0}, input_bytes=999, input_rows=None, n_upstreams=2),
        Sample("m:f", config={"alpha": 5.0}, input_bytes=0, input_rows=10),
    ]
    X, names = to_matrix(samples)
    assert names == ["log_input_bytes", "log_input_rows", "input_rows_known", "n_upstreams",
                     "cfg:alpha", "has:alpha", "cfg:zeta", "has:zeta"]
    assert X.shape == (2, 8)
    np.testing.assert_allclose(X[0], [math.log1p(999), 0, 0, 2, 1.0, 1, 2.0, 1])
    np.testing.assert_allclose(X[1], [0, math.log1p(10), 1, 0, 5.0, 1, 0, 0])


def test_layout_is_stable_when_keys_are_given():
    keys = ("alpha", "zeta")
    X, names = to_matrix([Sample("m:f", config={"zeta": 1.0, "other": 9.0})], keys)
    assert names == feature_names(keys)
    assert X[0, 4:].tolist() == [0, 0, 1.0, 1]     # alpha missing, zeta present, other ignored


def test_empty_matrix_has_the_columns():
    X, names = to_matrix([])
    assert X.shape == (0, len(names))


def test_numeric_config_keeps_finite_numbers_only():
    args = {"n": 3, "rate": 0.5, "flag": True, "name": "x", "nan": float("nan"), "items": [1, 2],
            "np": np.int64(7)}
    assert numeric_config(args) == {"n": 3.0, "rate": 0.5, "flag": 1.0, "np": 7.0}


def test_cpu_util_is_clipped():
    assert Sample("m:f", duration_s=2.0, cpu_s=1.0).cpu_util == 0.5
    assert Sample("m:f", duration_s=1.0, cpu_s=500.0).cpu_util == 64.0
    assert Sample("m:f", duration_s=0.0, cpu_s=1.0).cpu_util is None


def test_record_to_sample():
    rec = ComponentRecord("r1", "clean", state="SUCCEEDED", duration_s=2.0, cpu_s=1.5, peak_rss_bytes=123,
                          node_id="n1", resources={"num_cpus": 2.0, "memory": 1 << 30}, upstream=["a", "b"])
    s = sample_from_record(rec, component="m:clean", fingerprint="fp", config={"k": 1.0}, input_bytes=10)
    assert s == Sample("m:clean", "fp", {"k": 1.0}, 10, None, 2, "n1", 2.0, 1.5, 123, False, 2.0, 1 << 30)


def test_records_that_teach_nothing_are_dropped_and_oom_kept():
    failed = ComponentRecord("r", "c", state="FAILED", error="ValueError: bad")
    cached = ComponentRecord("r", "c", state="SUCCEEDED", cached=True, duration_s=0.0)
    oom = ComponentRecord("r", "c", state="FAILED", resources={"num_cpus": 1, "memory": 512 << 20},
                          error="ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory")
    assert sample_from_record(failed, component="m:c") is None
    assert sample_from_record(cached, component="m:c") is None
    s = sample_from_record(oom, component="m:c")
    assert s is not None and s.oom_killed and s.memory_need == 512 << 20
    assert is_oom("worker OOM-killed by the kernel") and not is_oom(None)
