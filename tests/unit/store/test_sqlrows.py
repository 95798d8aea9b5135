"""The SQLite codec's JSON: values encoded once per content stay exactly what encoding
each one gives (the memo never mixes up values that compare equal)."""

from __future__ import annotations

import json

from rayflow.store import sqlrows


def test_flat_dicts_of_equal_but_different_values_keep_their_own_json():
    ints, bools, nones = {"a": 1, "b": "x"}, {"a": True, "b": "x"}, {"a": None, "b": "x"}
    assert sqlrows._json_any(ints) == '{"a": 1, "b": "x"}'
    assert sqlrows._json_any(bools) == '{"a": true, "b": "x"}'   # True == 1, yet not the same JSON
    assert sqlrows._json_any(nones) == '{"a": null, "b": "x"}'
    assert sqlrows._json_any({"b": "x", "a": 1}) == '{"a": 1, "b": "x"}'   # sorted keys, whatever the order
    assert sqlrows._json_any({"a": 1.0, "b": "x"}) == '{"a": 1.0, "b": "x"}'
    assert sqlrows._json_any({"a": -0.0}) == '{"a": -0.0}' and sqlrows._json_any({"a": 0.0}) == '{"a": 0.0}'


def test_nested_and_unencodable_text_values_are_encoded_each_time():
    nested = {"config": {"n": 2}, "fn": "m:f"}
    assert json.loads(sqlrows._json_any(nested)) == nested
    nested["config"]["n"] = 3   # not memoized by content: a changed inner value shows
    assert json.loads(sqlrows._json_any(nested))["config"]["n"] == 3
    surrogate = {"s": "bad \udc80 text"}
    text = sqlrows._json_any(surrogate)
    assert text.encode("utf-8") and sqlrows._json_any(dict(surrogate)) == text
