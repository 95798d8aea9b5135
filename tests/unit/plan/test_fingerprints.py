"""Cache keys: what changes a key, what does not, and that processes agree."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rayflow.plan import fingerprints as K
from rayflow.plan.fingerprints import code_fingerprint, component_key, entry_key, value_fingerprint
from tests.fns.keys import sample_keys
from tests.helpers import REPO

ROOT = REPO
UP = "1" * 64


def load_module(path: Path, source: str, name: str):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_code_change_changes_the_code_fingerprint(tmp_path: Path) -> None:
    v1 = load_module(tmp_path / "m1.py", "def step(x):\n    return x + 1\n", "m")
    v2 = load_module(tmp_path / "m2.py", "def step(x):\n    return x + 2\n", "m")
    again = load_module(tmp_path / "m3.py", "def step(x):\n    return x + 1\n", "m")
    assert code_fingerprint(v1.step) != code_fingerprint(v2.step)
    assert code_fingerprint(v1.step) == code_fingerprint(again.step)


def test_comments_formatting_and_decorators_do_not_count(tmp_path: Path) -> None:
    plain = load_module(tmp_path / "p1.py", "def step(x):\n    return x + 1\n", "m")
    dressed = load_module(tmp_path / "p2.py", (
        "import functools\n\n"
        "@functools.lru_cache(maxsize=8)   # options of the decorator\n"
        "def step(x):\n"
        "    # a comment\n"
        "    return (x +\n"
        "            1)\n"), "m")
    assert code_fingerprint(dressed.step) == code_fingerprint(plain.step)


def test_an_explicit_version_wins_over_the_source(tmp_path: Path) -> None:
    v1 = load_module(tmp_path / "m1.py", "def step(x):\n    return x + 1\n", "m")
    v2 = load_module(tmp_path / "m2.py", "def step(x):\n    return x + 2\n", "m")
    assert code_fingerprint(v1.step, version="7") == code_fingerprint(v2.step, version="7")
    assert code_fingerprint(v1.step, version="7") != code_fingerprint(v1.step, version="8")


def test_functions_without_source_fall_back_to_bytecode() -> None:
    def made(body: str):
        namespace: dict = {}
        exec(f"def f(x):\n    return {body}\n", namespace)
        return namespace["f"]

    assert code_fingerprint(made("x + 1")) == code_fingerprint(made("x + 1"))
    assert code_fingerprint(made("x + 1")) != code_fingerprint(made("x + 2"))
    assert code_fingerprint(len) == code_fingerprint(len)


def test_code_fingerprints_are_memoized_per_function_object() -> None:
    from tests.fns.keys import transform

    first = code_fingerprint(transform)
    assert K._memo[transform] == first
    assert code_fingerprint(transform) == first


def test_wrappers_partials_methods_and_classes_are_fingerprinted() -> None:
    import functools

    from tests.fns.keys import Model, transform

    @functools.wraps(transform)
    def wrapper(*a, **k):
        return transform(*a, **k)

    assert code_fingerprint(wrapper) == code_fingerprint(transform)
    assert code_fingerprint(functools.partial(transform, factor=2)) != code_fingerprint(functools.partial(transform, factor=3))
    assert code_fingerprint(Model().predict) == code_fingerprint(Model().predict)
    assert code_fingerprint(Model) != code_fingerprint(transform)


def test_config_argument_and_upstream_changes_change_the_key() -> None:
    code = code_fingerprint(sample_keys)
    base = component_key(code, {"n": 1}, ["a" * 64], [UP])
    assert component_key(code, {"n": 1}, ["a" * 64], [UP]) == base
    assert component_key(code, {"n": 2}, ["a" * 64], [UP]) != base
    assert component_key(code, {"n": 1}, ["b" * 64], [UP]) != base
    assert component_key(code, {"n": 1}, ["a" * 64], ["2" * 64]) != base
    assert component_key(code_fingerprint(sample_keys, version="2"), {"n": 1}, ["a" * 64], [UP]) != base
    # an upstream moved to another port is another call
    assert component_key(code, {}, [], {"left": UP, "right": "2" * 64}) != \
        component_key(code, {}, [], {"left": "2" * 64, "right": UP})


def test_a_change_upstream_changes_every_key_downstream() -> None:
    def chain(load_version: str) -> list[str]:
        load = component_key(code_fingerprint(sample_keys, version=load_version), {"n": 10}, [], [])
        clean = component_key(code_fingerprint(sample_keys, version="c"), {}, [], [load])
        total = component_key(code_fingerprint(sample_keys, version="t"), {}, [], [clean])
        return [load, clean, total]

    before, after = chain("1"), chain("2")
    assert all(b != a for b, a in zip(before, after, strict=True))


def test_value_fingerprints_are_canonical_but_type_exact() -> None:
    assert value_fingerprint({"a": 1, "b": 2}) == value_fingerprint({"b": 2, "a": 1})
    assert value_fingerprint({3, 1, 2}) == value_fingerprint({2, 3, 1})
    assert value_fingerprint([1, 2]) != value_fingerprint((1, 2))
    assert value_fingerprint(1) != value_fingerprint(1.0) != value_fingerprint(True)
    assert value_fingerprint("1") != value_fingerprint(1)
    assert value_fingerprint(0.0) != value_fingerprint(-0.0)
    assert value_fingerprint(["ab", "c"]) != value_fingerprint(["a", "bc"])
    assert value_fingerprint(None) != value_fingerprint("None")


def test_arrays_and_tables_hash_by_content_dtype_and_shape() -> None:
    a = np.arange(6, dtype=np.int64)
    assert value_fingerprint(a) == value_fingerprint(np.arange(6, dtype=np.int64))
    assert value_fingerprint(a) != value_fingerprint(a.astype(np.int32))
    assert value_fingerprint(a) != value_fingerprint(a.reshape(2, 3))
    assert value_fingerprint(a.reshape(2, 3).T) == value_fingerprint(np.ascontiguousarray(a.reshape(2, 3).T))
    assert value_fingerprint(np.float64(1.5)) != value_fingerprint(1.5)
    t = pa.table({"x": [1, 2, 3]})
    assert value_fingerprint(t) == value_fingerprint(pa.table({"x": [1, 2, 3]}))
    assert value_fingerprint(t) != value_fingerprint(pa.table({"x": [1, 2, 4]}))
    assert value_fingerprint(t) != value_fingerprint(pa.table({"y": [1, 2, 3]}))


def test_paths_hash_small_files_by_content_and_big_ones_by_size_and_mtime(tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    small.write_text("a,b\n1,2\n")
    fp = value_fingerprint(small)
    os.utime(small, ns=(1, 1))
    assert value_fingerprint(small) == fp              # content unchanged: same key
    small.write_text("a,b\n1,3\n")
    assert value_fingerprint(small) != fp

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 100)
    fp_big = value_fingerprint(big, file_limit=10)
    big.write_bytes(b"y" * 100)
    os.utime(big, ns=(5, 5))
    fp_touched = value_fingerprint(big, file_limit=10)
    assert fp_touched != fp_big
    os.utime(big, ns=(5, 5))
    assert value_fingerprint(big, file_limit=10) == fp_touched


def test_directories_hash_every_file_below_them(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("1")
    (tmp_path / "d" / "sub" / "b.txt").write_text("2")
    fp = value_fingerprint(tmp_path / "d")
    (tmp_path / "d" / "sub" / "b.txt").write_text("3")
    assert value_fingerprint(tmp_path / "d") != fp
    assert value_fingerprint(tmp_path / "missing") != value_fingerprint(tmp_path / "missing2")


def test_an_unpicklable_value_is_a_type_error_naming_its_type() -> None:
    import threading

    with pytest.raises(TypeError, match="_thread.lock"):
        value_fingerprint(threading.Lock())


def test_entry_keys_percent_encode_the_component() -> None:
    assert entry_key("load", "ab") == "load:ab"
    assert entry_key("a:b/c d", "ab") == "a%3Ab%2Fc%20d:ab"


@pytest.mark.slow
def test_the_same_inputs_give_the_same_keys_in_another_process() -> None:
    code = "import json; from tests.fns.keys import sample_keys; print(json.dumps(sample_keys()))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout) == sample_keys()


def test_call_key_is_component_key_over_fingerprinted_arguments() -> None:
    from tests.fns.keys import transform

    table = pa.table({"x": [1]})
    expected = component_key(code_fingerprint(transform), {"f": 2}, [value_fingerprint(table)], [UP])
    assert K.call_key(transform, config={"f": 2}, args=[table], upstream=[UP]) == expected
    assert K.call_key(transform, args={"t": table}) != K.call_key(transform, args=[table])
    assert K.call_key(transform, version="2") != K.call_key(transform)
