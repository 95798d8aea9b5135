"""Cache keys: content-addressed, Merkle-style fingerprints of code, inputs and upstreams.

Owns how a component's result is named in the cache. Pure: hashes only, no I/O except
reading the files a ``pathlib.Path`` input names, no tier, no Ray. Every fingerprint is
a sha256 hex string, the same in every process and on every machine for the same
inputs (``PYTHONHASHSEED`` does not matter).

- ``code_fingerprint(fn, version=None)``: the explicit ``version`` string when given;
  else the function's (or class's) module, qualified name and source, as parsed
  (comments, formatting and its own decorators, such as ``@rf.component(num_cpus=2)``,
  do not count; docstrings do); without source (built-ins, code made by ``exec``) its
  module, qualified name and bytecode.
  It covers the function's own text only, not helpers it calls nor globals it reads:
  bump ``version=`` when those change. Memoized per function object.
- ``value_fingerprint(value)``: ``None``, bools, ints, floats, strings and bytes by
  type and value; lists, tuples, dicts, sets canonically (a tuple is not a list, dict
  and set order does not matter); Arrow tables and record batches by their IPC stream
  bytes (one copy; the same rows chunked differently hash differently, which costs a
  miss, never a wrong hit); numpy arrays and scalars by dtype, shape and bytes; a
  ``pathlib.Path`` by the path as given plus, for a file of at most ``FILE_HASH_LIMIT``
  bytes, its content, for a larger one its (size, mtime_ns), for a directory every
  file below it (sorted, by the same rule), for a missing path the word "missing";
  anything else by the bytes of ``pickle.dumps(value, protocol=5)``. Pickle is not
  always canonical (two equal dicts built in another order, objects whose state holds
  ids or timestamps): such values can miss where they could have hit, never the
  reverse. A value that cannot be pickled raises TypeError naming its type.
- ``component_key(code_fp, config, arg_fps, upstream_keys)``: the Merkle node hashing
  the above with the keys of the upstream components. A code change, a config change,
  a changed argument or a changed upstream key changes this key, hence every key
  downstream of it.
- ``call_key(fn, version=, config=, args=, upstream=)``: all of the above in one call.
- ``entry_key(component, digest)``: the name a tier stores under,
  ``"<percent-encoded component id>:<digest>"``; ``component_prefix`` is its head, which
  ``clear(component=...)`` uses.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import os
import pickle
import textwrap
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa

from rayflow.data.codec import encode

SCHEMA = b"rayflow-cache-key/1"
FILE_HASH_LIMIT = 64 * 1024 * 1024   # files up to this size are hashed by content
_CHUNK = 1024 * 1024
_PICKLE_PROTOCOL = 5

_memo: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_memo_lock = threading.Lock()


# -- names in a tier ---------------------------------------------------------------------


def component_prefix(component: str) -> str:
    """The head of every entry key of ``component``: its id percent-encoded, then ``:``."""
    return quote(component, safe="") + ":"


def entry_key(component: str, digest: str) -> str:
    """The key a tier stores ``component``'s result under."""
    return component_prefix(component) + digest


# -- the Merkle node ---------------------------------------------------------------------


def component_key(code_fp: str, config: Any, arg_fps: Sequence[str] | Mapping[str, str],
                  upstream_keys: Sequence[str] | Mapping[str, str]) -> str:
    """The cache digest of one component call (hex). ``arg_fps``: fingerprints of the
    literal arguments (positional, or by parameter name); ``upstream_keys``: the digests
    of the components feeding it (positional, or by port)."""
    h = hashlib.sha256(SCHEMA)
    for part in (code_fp, value_fingerprint(config), value_fingerprint(_plain(arg_fps)),
                 value_fingerprint(_plain(upstream_keys))):
        _frame(h, b"k", part.encode())
    return h.hexdigest()


def call_key(fn: Callable[..., Any] | type, *, version: str | None = None, config: Any = None,
             args: Sequence[Any] | Mapping[str, Any] = (),
             upstream: Sequence[str] | Mapping[str, str] = ()) -> str:
    """``component_key`` of calling ``fn`` with literal ``args`` (fingerprinted here) after
    the upstream components whose digests are ``upstream``. TypeError when an argument
    cannot be fingerprinted: run that call uncached."""
    if isinstance(args, Mapping):
        fps: list[str] | dict[str, str] = {k: value_fingerprint(v) for k, v in args.items()}
    else:
        fps = [value_fingerprint(v) for v in args]
    return component_key(code_fingerprint(fn, version), config, fps, upstream)


def _plain(parts: Sequence[str] | Mapping[str, str]) -> list[str] | dict[str, str]:
    return dict(parts) if isinstance(parts, Mapping) else list(parts)


# -- code --------------------------------------------------------------------------------


def code_fingerprint(fn: Callable[..., Any] | type, version: str | None = None) -> str:
    """sha256 of ``version`` when given, else of the code of ``fn`` (see the module doc)."""
    if version is not None:
        return _digest(b"version", str(version).encode())
    fn = inspect.unwrap(fn)        # functools.wraps decorators, lru_cache, ...
    if isinstance(fn, functools.partial):
        return _digest(b"partial", code_fingerprint(fn.func).encode(),
                       value_fingerprint([list(fn.args), dict(fn.keywords)]).encode())
    if inspect.ismethod(fn):
        return _digest(b"method", code_fingerprint(fn.__func__).encode(), value_fingerprint(fn.__self__).encode())
    if not (inspect.isfunction(fn) or inspect.isclass(fn) or inspect.isbuiltin(fn)):
        return _digest(b"callable", code_fingerprint(type(fn)).encode(), value_fingerprint(fn).encode())
    return _memoized(fn)


def _memoized(fn: Any) -> str:
    try:
        with _memo_lock:
            return _memo[fn]
    except (KeyError, TypeError):
        pass
    fp = _code_digest(fn)
    try:
        with _memo_lock:
            _memo[fn] = fp
    except TypeError:      # not weak-referenceable: recomputed each time
        pass
    return fp


def _code_digest(fn: Any) -> str:
    name = f"{getattr(fn, '__module__', None)}:{getattr(fn, '__qualname__', repr(fn))}".encode()
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return _digest(b"bytecode", name, _bytecode(fn))
    return _digest(b"source", name, _normalized(source).encode())


def _normalized(source: str) -> str:
    """The source re-printed from its syntax tree, without the decorators of the function
    or class itself: comments, formatting and options given in a decorator do not count.
    Source that does not parse alone (a lambda inside an expression) is kept as it is."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return source
    if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        tree.body[0].decorator_list = []
    return ast.unparse(tree)


def _bytecode(fn: Any) -> bytes:
    if inspect.isclass(fn):
        members = sorted(vars(fn).items())
        return b"".join(k.encode() + _bytecode(v) for k, v in members if inspect.isfunction(v))
    code = getattr(fn, "__code__", None)
    return _code_bytes(code) if code is not None else b""


def _code_bytes(code: Any) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        parts.append(_code_bytes(const) if inspect.iscode(const) else repr(const).encode())
    return b"\0".join(parts)


# -- values ------------------------------------------------------------------------------


def value_fingerprint(value: Any, *, file_limit: int = FILE_HASH_LIMIT) -> str:
    """A stable sha256 hex of an input value (see the module docstring for the rules)."""
    h = hashlib.sha256()
    _feed(h, value, file_limit)
    return h.hexdigest()


def _feed(h: Any, value: Any, limit: int) -> None:
    kind = type(value)
    if value is None or kind in (bool, int, float):
        _frame(h, b"s" + kind.__name__.encode(), repr(value).encode())
    elif kind is str:
        _frame(h, b"str", value.encode("utf-8", "surrogatepass"))
    elif kind in (bytes, bytearray, memoryview):
        _frame(h, b"bytes", bytes(value))
    elif kind in (list, tuple):
        _frame(h, b"list" if kind is list else b"tuple", str(len(value)).encode())
        for item in value:
            _feed(h, item, limit)
    elif kind is dict:
        pairs = sorted((value_fingerprint(k, file_limit=limit), value_fingerprint(v, file_limit=limit))
                       for k, v in value.items())
        _frame(h, b"dict", "".join(k + v for k, v in pairs).encode())
    elif kind in (set, frozenset):
        _frame(h, b"set", "".join(sorted(value_fingerprint(v, file_limit=limit) for v in value)).encode())
    elif isinstance(value, (pa.Table, pa.RecordBatch)):
        _frame(h, b"arrow", encode(value).data)
    elif isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype != object:
        _feed_array(h, np.asarray(value))
    elif isinstance(value, PurePath):
        _frame(h, b"path", os.fspath(value).encode("utf-8", "surrogatepass"))
        _frame(h, b"content", _path_digest(os.fspath(value), limit).encode())
    else:
        _frame(h, b"pickle", _pickled(value))


def _feed_array(h: Any, array: np.ndarray) -> None:
    descr = repr(np.lib.format.dtype_to_descr(array.dtype)) + repr(array.shape)
    _frame(h, b"ndarray", descr.encode())
    h.update(memoryview(np.ascontiguousarray(array)).cast("B"))


def _pickled(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"cannot fingerprint a {type(value).__module__}.{type(value).__qualname__} for the cache "
            f"key: it cannot be pickled ({type(exc).__name__}: {exc}); pass a picklable value or "
            "turn the component's cache off"
        ) from None


def _path_digest(path: str, limit: int) -> str:
    if os.path.isdir(path):
        entries = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                entries.append(os.path.relpath(full, path) + "=" + _file_digest(full, limit))
        return _digest(b"dir", "\n".join(entries).encode())
    if not os.path.exists(path):
        return _digest(b"missing")
    return _file_digest(path, limit)


def _file_digest(path: str, limit: int) -> str:
    st = os.stat(path)
    if st.st_size > limit:
        return _digest(b"stat", f"{st.st_size}:{st.st_mtime_ns}".encode())
    h = hashlib.sha256(b"file")
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _frame(h: Any, tag: bytes, payload: bytes) -> None:
    """Tag, length, payload: no two different sequences of frames hash the same."""
    h.update(tag + b"\0" + len(payload).to_bytes(8, "big"))
    h.update(payload)


def _digest(tag: bytes, *parts: bytes) -> str:
    h = hashlib.sha256()
    _frame(h, tag, b"")
    for part in parts:
        _frame(h, b"p", part)
    return h.hexdigest()
