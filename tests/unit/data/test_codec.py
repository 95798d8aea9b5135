"""Values to bytes and back: each format keeps the value exactly; signed pickle refuses
bytes whose signature does not verify, without loading them; sealed values sign every
format bound to a context; the signing key must be strong and private (issue 15 item 4)."""

from __future__ import annotations

import io
import os
import pickle
import stat

import numpy as np
import pyarrow as pa
import pytest

from rayflow.core.errors import ConfigError
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
    monkeypatch.setenv(codec.KEY_ENV_VAR, "another key of at least 32 characters")
    with pytest.raises(UntrustedData):
        decode(enc.fmt, enc.data)


def test_the_key_file_is_made_once_and_private(tmp_path):
    key = codec.signing_key()
    path = tmp_path / "home" / "signing.key"
    assert path.read_bytes().strip() == key and len(key) == 64
    assert path.stat().st_mode & 0o077 == 0
    codec._reset_key_for_tests()
    assert codec.signing_key() == key
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, "RAYFLOW_HOME made readable by others"


# -- a strong, private key (issue 15 item 4) ----------------------------------------------


def _home(tmp_path):
    return tmp_path / "home"


@pytest.mark.parametrize("content", [b"", b"\n", b"short-key", b"k" * 31])
def test_an_empty_or_short_key_file_is_refused(tmp_path, content):
    home = _home(tmp_path)
    home.mkdir(mode=0o700)
    path = home / "signing.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as err:
        encode(Point(1))
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "at least 32" in message


@pytest.mark.parametrize("value", ["zq9", "zq9" * 10])
def test_a_short_env_key_is_refused_in_one_line_without_the_key(monkeypatch, value):
    monkeypatch.setenv(codec.KEY_ENV_VAR, value)
    with pytest.raises(ConfigError) as err:
        encode(Point(1))
    message = str(err.value)
    assert codec.KEY_ENV_VAR in message and "at least 32" in message and "\n" not in message
    assert value not in message.replace(codec.KEY_ENV_VAR, "")


def test_an_env_key_of_32_characters_signs(monkeypatch):
    monkeypatch.setenv(codec.KEY_ENV_VAR, "k" * 32)
    assert decode(*_parts(encode(Point(4)))) == Point(4)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602], ids=oct)
def test_a_key_file_others_may_read_or_write_is_refused(tmp_path, mode):
    codec.signing_key()   # made, 0600
    codec._reset_key_for_tests()
    path = _home(tmp_path) / "signing.key"
    path.chmod(mode)
    with pytest.raises(ConfigError) as err:
        codec.signing_key()
    message = str(err.value)
    assert str(path) in message and f"{mode:04o}" in message and f"chmod 600 {path}" in message
    assert "\n" not in message
    path.chmod(0o600)
    assert len(codec.signing_key()) == 64


def test_rayflow_folders_are_made_private_whatever_the_umask(tmp_path, monkeypatch):
    deep = tmp_path / "a" / "b" / "home"
    monkeypatch.setenv(codec.HOME_ENV_VAR, str(deep))
    old = os.umask(0o022)
    try:
        codec.signing_key()
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", deep):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((deep / "signing.key").stat().st_mode) == 0o600
    assert not [p for p in deep.iterdir() if p.name != "signing.key"], "a temporary key file was left behind"


def test_a_key_source_is_asked_first_and_own_key_never_asks_it(monkeypatch):
    shared = b"s" * 64
    monkeypatch.setattr(codec, "_key_source", None)
    own = codec.signing_key()
    codec.set_key_source(lambda: shared)
    assert codec.signing_key() == shared and codec.own_key() == own
    codec.set_key_source(lambda: None)     # no shared key: this machine's own
    assert codec.signing_key() == own
    monkeypatch.setenv(codec.KEY_ENV_VAR, "e" * 40)    # the variable wins over everything
    assert codec.signing_key() == b"e" * 40


# -- sealed values: every format signed, bound to its context (issue 15 item 5) -----------


SEALED_VALUES = [pa.table({"a": [1, 2, 3]}), np.arange(6, dtype=np.int32), {"k": [1, "x"]}, Point(2)]


@pytest.mark.parametrize("value", SEALED_VALUES, ids=["arrow", "npy", "json", "pickle"])
def test_sealed_values_refuse_another_context_or_tampered_data(value):
    fmt, sig, data = codec.seal(value, b"key-1", b"header")
    data = bytes(data)
    back = codec.unseal(fmt, sig, data, b"key-1", b"header")
    assert back.equals(value) if hasattr(back, "equals") else (np.array_equal(back, value) if fmt == "npy"
                                                               else back == value)
    with pytest.raises(UntrustedData):
        codec.unseal(fmt, sig, data, b"key-2", b"header")
    with pytest.raises(UntrustedData):
        codec.unseal(fmt, sig, data, b"key-1", b"header2")
    with pytest.raises(UntrustedData):
        codec.unseal(fmt, sig, data, b"key-1header")       # parts are framed: no shifting between them
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 1
    with pytest.raises(UntrustedData):
        codec.unseal(fmt, sig, bytes(tampered), b"key-1", b"header")
    other = "json" if fmt != "json" else "pickle"
    with pytest.raises(UntrustedData):
        codec.unseal(other, sig, data, b"key-1", b"header")


def test_a_sealed_pickle_is_never_loaded_under_a_forged_signature(tmp_path):
    evil = pickle.dumps(Boom())
    with pytest.raises(UntrustedData):
        codec.unseal("pickle", b"\0" * 32, evil, b"ctx")


# -- checking stored blobs without loading them -------------------------------------------


@pytest.mark.parametrize("value", SEALED_VALUES + [np.zeros((2, 3), dtype=np.float64)],
                         ids=["arrow", "npy", "json", "pickle", "npy2d"])
def test_check_file_passes_good_blobs_and_refuses_damaged_ones(value):
    blob = encode(value).blob()
    codec.check_file(io.BytesIO(blob))
    codec.check_blob(blob)
    cut = blob[: len(blob) - 3]
    with pytest.raises(UntrustedData):
        codec.check_file(io.BytesIO(cut))
    with pytest.raises(UntrustedData):
        codec.check_blob(cut)


def test_check_file_refuses_a_pickle_signed_with_another_key_without_loading_it(monkeypatch):
    blob = b"pickle\0" + b"\1" * 32 + pickle.dumps(Boom())
    with pytest.raises(UntrustedData, match="signature does not verify"):
        codec.check_file(io.BytesIO(blob))
    with pytest.raises(UntrustedData, match="no format header"):
        codec.check_file(io.BytesIO(b"x" * 40))
    with pytest.raises(UntrustedData, match="unknown stored value format"):
        codec.check_file(io.BytesIO(b"marshal\0data"))
