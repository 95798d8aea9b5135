"""Values to bytes and back, for anything rayflow keeps beyond a run (checkpoints, cache).

Owns the formats and the rule that bytes read back from a disk, a database, Redis or
the network are never unpickled unless their signature verifies:

- ``arrow``: a ``pa.Table`` or ``pa.RecordBatch``, as an Arrow IPC stream (read back
  zero-copy from the buffer it is given).
- ``npy``: a numpy array of a non-object dtype, in numpy's ``.npy`` format, read with
  ``allow_pickle=False``.
- ``json``: plain JSON values (``None``, bools, ints, finite floats, strings, lists and
  dicts with string keys) that read back equal and of the same types: a tuple is not
  one (it would come back a list), so it goes by pickle.
- ``pickle``: any other picklable value, as ``HMAC-SHA256(key, payload) + payload``.
  A signature that does not verify raises ``UntrustedData`` and the payload is not
  loaded. The key comes from ``signing_key()``.

``encode(value) -> Encoded`` and ``decode(fmt, data) -> value``; ``Encoded.blob()`` and
``unblob(blob)`` put the format and the data in one self-describing byte string. Pure
Python with pyarrow and numpy; no ray.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import pickle
import secrets
import sys
import threading
from pathlib import Path
from typing import Any, NamedTuple

from rayflow.core import config
from rayflow.core.errors import RayflowError

FORMATS = ("arrow", "npy", "json", "pickle")
KEY_ENV_VAR = "RAYFLOW_SIGNING_KEY"
HOME_ENV_VAR = "RAYFLOW_HOME"
_SIG = hashlib.sha256().digest_size
_JSON_SCALARS = (str, int, float, bool, type(None))
_JSON_MAX_DEPTH = 64


class UntrustedData(RayflowError):
    """Bytes that claim to be a signed pickle but whose signature does not verify (or
    that are malformed): they are refused, never loaded."""


class Encoded(NamedTuple):   # a named tuple: small outputs are encoded once per call
    fmt: str
    data: bytes

    def blob(self) -> bytes:
        """Format and data in one byte string (``unblob`` reads it)."""
        return self.fmt.encode() + b"\0" + self.data


def unblob(blob: bytes) -> Any:
    fmt, sep, data = bytes(blob).partition(b"\0")
    if not sep:
        raise UntrustedData("stored value has no format header")
    return decode(fmt.decode("ascii", "replace"), data)


# -- the signing key ---------------------------------------------------------------------

_key_lock = threading.Lock()
_key: bytes | None = None


def rayflow_home() -> Path:
    return config.home()


def signing_key() -> bytes:
    """$RAYFLOW_SIGNING_KEY, else a random key kept in ``~/.rayflow/signing.key`` (created
    on first use, readable by its owner only). Every process that reads what another
    wrote needs the same key: on a cluster of several machines, set the variable."""
    global _key
    env = config.signing_key()
    if env:
        return env.encode()
    with _key_lock:
        if _key is None:
            _key = _key_from_file(rayflow_home() / "signing.key")
        return _key


def _key_from_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
    try:
        os.link(tmp, path)   # the first process to create it wins; the others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


def _reset_key_for_tests() -> None:
    global _key
    with _key_lock:
        _key = None


# -- encoding ----------------------------------------------------------------------------


def encode(value: Any) -> Encoded:
    """The value in the first format that keeps it exactly (see the module docstring).

    pyarrow and numpy are looked up, not imported: a value can only be one of their
    types when the process already imported them (workers stay light to start)."""
    if type(value) is int or value is None:   # the commonest small outputs, without json.dumps
        return Encoded("json", b"null" if value is None else str(value).encode())
    pa, np = sys.modules.get("pyarrow"), sys.modules.get("numpy")
    if pa is not None and isinstance(value, (pa.Table, pa.RecordBatch)):
        return Encoded("arrow", _arrow_bytes(value))
    if np is not None and isinstance(value, np.ndarray) and value.dtype != object:
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return Encoded("npy", buf.getvalue())
    if _plain_json(value, 0):
        try:
            return Encoded("json", json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
        except (TypeError, ValueError):
            pass
    return Encoded("pickle", sign(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))


def inline_blob(value: Any, limit: int) -> bytes | None:
    """The value's blob when it is at most ``limit`` bytes, else None (without encoding a
    table or array whose size already says it is larger)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and nbytes > limit:
        return None
    blob = encode(value).blob()
    return blob if len(blob) <= limit else None


def decode(fmt: str, data: bytes | memoryview) -> Any:
    if fmt == "arrow":
        import pyarrow as pa

        reader = pa.ipc.open_stream(pa.py_buffer(data))
        return reader.read_all()
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    if fmt == "json":
        return json.loads(bytes(data))
    if fmt == "pickle":
        return pickle.loads(verify(data))
    raise UntrustedData(f"unknown stored value format {fmt!r}; expected one of {', '.join(FORMATS)}")


def sign(payload: bytes) -> bytes:
    return hmac.new(signing_key(), payload, hashlib.sha256).digest() + payload


def verify(data: bytes | memoryview) -> bytes:
    """The payload of signed ``data``; UntrustedData unless the signature verifies."""
    data = bytes(data)
    if len(data) < _SIG:
        raise UntrustedData("signed value is shorter than its signature")
    sig, payload = data[:_SIG], data[_SIG:]
    if not hmac.compare_digest(sig, hmac.new(signing_key(), payload, hashlib.sha256).digest()):
        raise UntrustedData("signature does not verify (written with another key, or tampered with)")
    return payload


def _arrow_bytes(value: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, value.schema) as writer:
        writer.write(value)
    return sink.getvalue().to_pybytes()


def _plain_json(value: Any, depth: int) -> bool:
    """True when ``value`` reads back from JSON equal and of the same types."""
    kind = type(value)
    if kind in (str, int, bool, type(None)):
        return True
    if kind is float:
        return math.isfinite(value)
    if depth > _JSON_MAX_DEPTH:
        return False
    if kind is list:
        return all(_plain_json(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _plain_json(v, depth + 1) for k, v in value.items())
    return False
