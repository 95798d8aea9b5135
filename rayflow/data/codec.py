"""Values to bytes and back, for anything rayflow keeps beyond a run (checkpoints, cache).

Owns the formats, the signing key, and the rule that bytes read back from a disk, a
database, Redis or the network are never unpickled unless their signature verifies:

- ``arrow``: a ``pa.Table`` or ``pa.RecordBatch``, as an Arrow IPC stream (read back
  zero-copy from the buffer it is given).
- ``npy``: a numpy array of a non-object dtype, in numpy's ``.npy`` format, read with
  ``allow_pickle=False``.
- ``json``: plain JSON values (``None``, bools, ints, finite floats, strings, lists and
  dicts with string keys) that read back equal and of the same types: a tuple is not
  one (it would come back a list), so it goes by pickle.
- ``pickle``: any other picklable value, as ``HMAC-SHA256(key, payload) + payload``.
  A signature that does not verify raises ``UntrustedData`` and the payload is not
  loaded.

``encode(value) -> Encoded`` and ``decode(fmt, data) -> value``; ``Encoded.blob()`` and
``unblob(blob)`` put the format and the data in one self-describing byte string.
``seal(value, *context)`` / ``unseal(fmt, sig, data, *context)`` sign every format, bound
to the caller's context (a cache entry: its key and header), with one HMAC over the
data (the pickle inside is not signed a second time). ``check_blob`` / ``check_file``
say whether a stored blob would verify and decode, without unpickling.

The key (``signing_key``): $RAYFLOW_SIGNING_KEY (at least 32 characters), else the key a
registered source hands out (``set_key_source``: the Ray adapter's cluster keyring on a
cluster of several nodes), else ``$RAYFLOW_HOME/signing.key``, made on first use (64 hex
characters, mode 0600, fsynced, in a folder made 0700) and refused when shorter than 32
bytes or readable or writable by group or others. Pure Python with pyarrow and numpy;
no ray.
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
import stat
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from rayflow.core import config
from rayflow.core.errors import ConfigError, RayflowError

FORMATS = ("arrow", "npy", "json", "pickle")
KEY_ENV_VAR = "RAYFLOW_SIGNING_KEY"
HOME_ENV_VAR = "RAYFLOW_HOME"
KEY_FILE = "signing.key"
MIN_KEY_BYTES = 32
NEW_KEY_HINT = "python -c 'import secrets; print(secrets.token_hex(32))'"
_SIG = hashlib.sha256().digest_size
_LEN = struct.Struct(">Q")
_JSON_SCALARS = (str, int, float, bool, type(None))
_JSON_MAX_DEPTH = 64
_CHUNK = 1 << 20


class UntrustedData(RayflowError):
    """Bytes that claim to be a signed pickle but whose signature does not verify (or
    that are malformed): they are refused, never loaded."""


class Encoded(NamedTuple):   # a named tuple: small outputs are encoded once per call
    fmt: str
    data: bytes

    def blob(self) -> bytes:
        """Format and data in one byte string (``unblob`` reads it)."""
        return self.fmt.encode() + b"\0" + self.data


class Sealed(NamedTuple):
    """A value encoded for ``seal``: its format, the signature, and the data (bytes, or a
    buffer such as an Arrow one: whoever stores it copies it once)."""

    fmt: str
    sig: bytes
    data: Any


def unblob(blob: bytes | memoryview) -> Any:
    fmt, data = _split_blob(blob)
    return decode(fmt, data)


def _split_blob(blob: bytes | memoryview) -> tuple[str, memoryview]:
    view = memoryview(blob)
    head = bytes(view[:16])
    sep = head.find(b"\0")
    if sep < 0:
        raise UntrustedData("stored value has no format header")
    return head[:sep].decode("ascii", "replace"), view[sep + 1:]


# -- the signing key ---------------------------------------------------------------------

_key_lock = threading.Lock()
_key: bytes | None = None
_key_source: Callable[[], bytes | None] | None = None


def rayflow_home() -> Path:
    return config.home()


def signing_key() -> bytes:
    """The key every pickle and cache entry is signed with: $RAYFLOW_SIGNING_KEY, else what
    the registered key source hands out (a cluster's shared key), else this machine's
    key file (``own_key``). Every process that reads what another wrote needs the same
    key. ConfigError (one line) for a key too short, or a key file others may read."""
    env = config.signing_key()
    if env:
        return _env_key(env)
    source = _key_source
    if source is not None:
        shared = source()
        if shared is not None:
            return shared
    return _file_key()


def own_key() -> bytes:
    """$RAYFLOW_SIGNING_KEY, else this machine's ``$RAYFLOW_HOME/signing.key``, never a key
    source's (what a cluster's keyring hands out)."""
    env = config.signing_key()
    return _env_key(env) if env else _file_key()


def set_key_source(source: Callable[[], bytes | None] | None) -> None:
    """Where ``signing_key`` asks first when $RAYFLOW_SIGNING_KEY is unset: a callable that
    returns the shared key, or None for this machine's own (asked on every call: it
    caches what it found)."""
    global _key_source
    _key_source = source


def check_key(key: bytes, where: str, fix: str = f"64 hex characters: {NEW_KEY_HINT}") -> bytes:
    """``key`` when it is long enough to sign with; ConfigError naming ``where`` otherwise."""
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{where} holds a signing key of {len(key)} bytes; at least {MIN_KEY_BYTES} are needed "
                          f"({fix})")
    return key


def _env_key(env: str) -> bytes:
    if len(env) < MIN_KEY_BYTES:
        raise ConfigError(f"{KEY_ENV_VAR} is {len(env)} characters long; it needs at least {MIN_KEY_BYTES} "
                          f"(set it to 64 hex characters, the same on every machine: {NEW_KEY_HINT})")
    return env.encode()


def _file_key() -> bytes:
    global _key
    key = _key
    if key is not None:
        return key
    with _key_lock:
        if _key is None:
            _key = _key_from_file(rayflow_home() / KEY_FILE)
        return _key


def _key_from_file(path: Path) -> bytes:
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
            f.flush()
            os.fsync(f.fileno())   # on disk before anything is signed with it
        try:
            os.link(tmp, path)   # the first process to create it wins; the others read its key
        except FileExistsError:
            pass
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)   # of the file opened: what is checked is what is read
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"signing key file {path} is not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise ConfigError(f"signing key file {path} has mode {stat.S_IMODE(info.st_mode):04o}: group or "
                              f"others can read or write it; run: chmod 600 {path}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(4096)
    finally:
        os.close(fd)
    return check_key(data.strip(), f"signing key file {path}",
                     f"delete it to have a new one made, or write 64 hex characters into it: {NEW_KEY_HINT}")


def private_dir(path: Path) -> Path:
    """``path`` as a folder, each component made here with mode 0700 (folders that exist
    are left as they are)."""
    missing = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return path


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass   # a file system that cannot sync a folder
    finally:
        os.close(fd)


def _reset_key_for_tests() -> None:
    global _key
    with _key_lock:
        _key = None


# -- encoding ----------------------------------------------------------------------------


def encode(value: Any) -> Encoded:
    """The value in the first format that keeps it exactly (see the module docstring);
    a pickle is signed."""
    fmt, data = _encoded(value)
    if fmt == "pickle":
        return Encoded(fmt, sign(data))
    return Encoded(fmt, data if type(data) is bytes else memoryview(data).tobytes())


def _encoded(value: Any) -> tuple[str, Any]:
    """(format, bytes-like data), a pickle unsigned.

    pyarrow and numpy are looked up, not imported: a value can only be one of their
    types when the process already imported them (workers stay light to start)."""
    if type(value) is int or value is None:   # the commonest small outputs, without json.dumps
        return "json", b"null" if value is None else str(value).encode()
    pa, np = sys.modules.get("pyarrow"), sys.modules.get("numpy")
    if pa is not None and isinstance(value, (pa.Table, pa.RecordBatch)):
        return "arrow", _arrow_buffer(value)
    if np is not None and isinstance(value, np.ndarray) and value.dtype != object:
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return "npy", buf.getbuffer()
    if _plain_json(value, 0):
        try:
            return "json", json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError):
            pass
    return "pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def inline_blob(value: Any, limit: int) -> bytes | None:
    """The value's blob when it is at most ``limit`` bytes, else None (without encoding a
    table or array whose size already says it is larger)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and nbytes > limit:
        return None
    blob = encode(value).blob()
    return blob if len(blob) <= limit else None


def decode(fmt: str, data: bytes | memoryview) -> Any:
    """The value ``data`` holds in ``fmt``; UntrustedData for a pickle whose signature does
    not verify (it is not loaded) or an unknown format."""
    if fmt == "pickle":
        return pickle.loads(verify(data))
    return _decoded(fmt, data)


def _decoded(fmt: str, data: Any) -> Any:
    """The value of a verified ``data`` (a pickle here is the bare payload)."""
    if fmt == "arrow":
        import pyarrow as pa

        reader = pa.ipc.open_stream(pa.py_buffer(data))
        return reader.read_all()
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "json":
        return json.loads(bytes(data))
    if fmt == "pickle":
        return pickle.loads(data)
    raise UntrustedData(f"unknown stored value format {fmt!r}; expected one of {', '.join(FORMATS)}")


def sign(payload: bytes) -> bytes:
    return hmac.new(signing_key(), payload, hashlib.sha256).digest() + payload


def verify(data: bytes | memoryview) -> memoryview:
    """The payload of signed ``data`` (a view of it, not a copy); UntrustedData unless the
    signature verifies."""
    view = memoryview(data)
    if view.nbytes < _SIG:
        raise UntrustedData("signed value is shorter than its signature")
    sig, payload = view[:_SIG], view[_SIG:]
    if not hmac.compare_digest(sig, hmac.new(signing_key(), payload, hashlib.sha256).digest()):
        raise UntrustedData("signature does not verify (written with another key, or tampered with)")
    return payload


# -- sealed values: every format signed, bound to a context -------------------------------


def mac(*parts: Any) -> bytes:
    """HMAC-SHA256 with the signing key over ``parts`` (bytes-like), each framed by its
    length, so no two different sequences of parts sign alike."""
    h = hmac.new(signing_key(), digestmod=hashlib.sha256)
    for part in parts:
        view = memoryview(part)
        h.update(_LEN.pack(view.nbytes))
        h.update(view)
    return h.digest()


def seal(value: Any, *context: Any) -> Sealed:
    """``value`` encoded (as ``encode`` would choose) and signed together with ``context``
    (bytes-like parts naming where it is stored): ``unseal`` with another context fails.
    Raises what pickling raises for an unpicklable value."""
    fmt, data = _encoded(value)
    return Sealed(fmt, mac(*context, fmt.encode(), data), data)


def unseal(fmt: str, sig: Any, data: Any, *context: Any) -> Any:
    """The value ``seal`` signed with this ``context``; UntrustedData (nothing is loaded)
    when the signature does not verify, or the data does not decode."""
    if fmt not in FORMATS:
        raise UntrustedData(f"unknown stored value format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not hmac.compare_digest(bytes(sig), mac(*context, fmt.encode(), data)):
        raise UntrustedData("signature does not verify (written with another key, for another entry, "
                            "or tampered with)")
    try:
        return _decoded(fmt, data)
    except Exception as exc:
        raise UntrustedData(f"signed {fmt} value does not decode: {type(exc).__name__}: {exc}") from None


# -- checking stored blobs without loading them ------------------------------------------


def check_blob(blob: bytes | memoryview) -> None:
    """UntrustedData unless ``blob`` (``Encoded.blob()``) verifies and decodes. A small
    blob: it is decoded (a pickle only once its signature verified)."""
    try:
        unblob(blob)
    except UntrustedData:
        raise
    except Exception as exc:
        raise UntrustedData(f"stored value does not decode: {type(exc).__name__}: {exc}") from None


def check_file(f: Any) -> None:
    """UntrustedData unless the blob in the seekable binary file ``f`` verifies and is
    well formed, read a chunk at a time: a pickle's signature is checked (it is not
    unpickled), an Arrow stream is read batch by batch, a .npy header must match the
    data's size, JSON is parsed."""
    head = f.read(16)
    sep = head.find(b"\0")
    if sep < 0:
        raise UntrustedData("stored value has no format header")
    fmt = head[:sep].decode("ascii", "replace")
    check = _CHECKS.get(fmt)
    if check is None:
        raise UntrustedData(f"unknown stored value format {fmt!r}; expected one of {', '.join(FORMATS)}")
    f.seek(sep + 1)
    try:
        check(f)
    except UntrustedData:
        raise
    except Exception as exc:
        raise UntrustedData(f"stored {fmt} value does not decode: {type(exc).__name__}: {exc}") from None


def _check_pickle(f: Any) -> None:
    sig = f.read(_SIG)
    if len(sig) < _SIG:
        raise UntrustedData("signed value is shorter than its signature")
    h = hmac.new(signing_key(), digestmod=hashlib.sha256)
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    if not hmac.compare_digest(sig, h.digest()):
        raise UntrustedData("signature does not verify (written with another key, or tampered with)")


def _check_arrow(f: Any) -> None:
    import pyarrow as pa

    for _ in pa.ipc.open_stream(f):
        pass


def _check_npy(f: Any) -> None:
    import numpy as np

    start = f.tell()
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        f.seek(start)
        np.load(f, allow_pickle=False)
        return
    shape, _, dtype = readers[version](f)
    if dtype.hasobject:
        raise UntrustedData("stored npy value holds Python objects")
    header_end = f.tell()
    size = f.seek(0, os.SEEK_END) - header_end
    expected = math.prod(shape) * dtype.itemsize
    if size != expected:
        raise UntrustedData(f"stored npy value holds {size} bytes of data; its header says {expected}")


def _check_json(f: Any) -> None:
    json.loads(f.read())


_CHECKS = {"pickle": _check_pickle, "arrow": _check_arrow, "npy": _check_npy, "json": _check_json}


def _arrow_buffer(value: Any) -> Any:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, value.schema) as writer:
        writer.write(value)
    return sink.getvalue()


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
