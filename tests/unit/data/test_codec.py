"""Values to bytes and back: each format keeps the value exactly; signed pickle refuses
bytes whose signature does not verify, without loading them."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

from rayflow.data import codec
from rayflow.data.codec import UntrustedData, decode, encode, unblob


@pytest.fixture(autouse=True)
def own_key(monkeypatch, tmp_path):
    monkeypatch.delenv(codec.KEY_ENV_VAR, raising=False)
    monkeypatch.setenv(codec.HOME_ENV_VAR, str(tmp_path / "home"))
    codec._reset_key_for_tests()
    yield
    codec._reset_key_for_tests()


class Point:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return isinstance(other, Point) and other.x == self.x


@pytest.mark.parametrize(("value", "fmt"), [
    (None, "json"), (3, "json"), (2.5, "json"), ("s", "json"), (True, "json"),
    ({"a": [1, 2, {"b": None}]}, "json"),
    ((1, 2), "pickle"),                  # a tuple would come back a list from JSON
    ({1: "a"}, "pickle"),                # a non-string key would come back a string
    (float("nan"), "pickle"),
    (Point(3), "pickle"),
    (b"raw", "pickle"),
])
def test_plain_values_keep_their_types(value, fmt):
    enc = encode(value)
    assert enc.fmt == fmt
    back = decode(enc.fmt, enc.data)
    assert type(back) is type(value)
    assert back == value or (value != value and back != back)


def test_tables_batches_and_arrays():
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    enc = encode(table)
    assert enc.fmt == "arrow" and decode(enc.fmt, enc.data).equals(table)
    batch = table.to_batches()[0]
    assert decode(*_parts(encode(batch))).equals(table)
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    enc = encode(arr)
    assert enc.fmt == "npy"
    back = decode(enc.fmt, enc.data)
    assert back.dtype == arr.dtype and (back == arr).all()
    assert encode(np.array([Point(1)], dtype=object)).fmt == "pickle"


def _parts(enc):
    return enc.fmt, enc.data


def test_blob_round_trip():
    assert unblob(encode({"k": [1]}).blob()) == {"k": [1]}
    assert unblob(encode(Point(2)).blob()) == Point(2)


class Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled untrusted bytes')",))


def test_a_tampered_or_unsigned_pickle_is_refused_without_loading():
    enc = encode(Point(1))
    tampered = bytearray(enc.data)
    tampered[-1] ^= 1
    with pytest.raises(UntrustedData, match="signature does not verify"):
        decode("pickle", bytes(tampered))
    evil = pickle.dumps(Boom())
    with pytest.raises(UntrustedData):
        decode("pickle", b"\0" * 32 + evil)      # a made-up signature
    with pytest.raises(UntrustedData):
        decode("pickle", b"short")
    with pytest.raises(UntrustedData, match="unknown stored value format"):
        decode("marshal", b"")
    with pytest.raises(UntrustedData, match="no format header"):
        unblob(b"pickle-without-header")


def test_another_key_does_not_verify(monkeypatch):
    enc = encode(Point(1))
    monkeypatch.setenv(codec.KEY_ENV_VAR, "another key")
    with pytest.raises(UntrustedData):
        decode(enc.fmt, enc.data)


def test_the_key_file_is_made_once_and_private(tmp_path):
    key = codec.signing_key()
    path = tmp_path / "home" / "signing.key"
    assert path.read_bytes().strip() == key and len(key) == 64
    assert path.stat().st_mode & 0o077 == 0
    codec._reset_key_for_tests()
    assert codec.signing_key() == key
