"""The file tier (L3): one file per entry in a directory or any pyarrow.fs location.

Owns the on-disk layout and entry header, and the only import of ``pyarrow.fs`` in the
cache. ``FileTier.from_uri`` accepts a plain path, ``file:///abs/path``,
``file:///~/rel`` (under the home directory) or any URI ``pyarrow.fs.FileSystem.from_uri``
understands (``s3://bucket/prefix?region=...``, ``gs://...``, ``hdfs://...``).

Layout: ``ROOT/<component>/<digest>`` for a key ``"<component>:<digest>"`` (each part
percent-encoded again, so any key maps to safe names and back; a part longer than 200
characters is stored under its sha256, which only a full ``clear()`` or its component's
``clear`` reaches). A file is ``MAGIC`` + the expiry as big-endian float64 UNIX seconds
(0: none) + the stored bytes. An expired entry is a miss and is deleted when read; a
file without the header is a miss and is deleted too.

Writes are atomic on a local disk: a temporary file in the same directory, then a
rename over the final name, so a reader sees the old entry or the new one, never half
of one. On object stores (S3, GCS) rename is a copy, so the entry is written directly
under its final name: a finished PUT is atomic there (readers see the whole object or
none), and a write that fails leaves no object. Must not decode what it stores.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from rayflow.cache.port import TierCounters, check_ttl
from rayflow.core.errors import CacheUnavailable, ConfigError
from rayflow.core.paths import from_path_name, path_name

MAGIC = b"RFC1"
_HEADER = struct.Struct(">d")
_NO_SEP_DIR = "%3A"          # keys without ':' (quote() of a component never yields it)
_TMP = ".tmp-"


class FileTier:
    """L3 under ``root`` on ``filesystem`` (the local disk when ``None``)."""

    def __init__(self, root: str, *, filesystem: pafs.FileSystem | None = None, name: str = "files") -> None:
        self.name = name
        self.fs = filesystem or pafs.LocalFileSystem()
        self.local = self.fs.type_name == "local"
        self.root = os.path.abspath(os.path.expanduser(root)) if filesystem is None else root.rstrip("/")
        self.counters = TierCounters()

    @classmethod
    def from_uri(cls, uri: str, *, name: str = "files") -> FileTier:
        parts = urlsplit(uri)
        if parts.scheme in ("", "file"):
            if parts.query:
                raise ConfigError(f"file cache URL {uri!r}: unknown parameter(s) {parts.query!r}")
            path = parts.path if parts.scheme else uri
            if parts.netloc == "~" or path.startswith("/~"):
                path = "~" + path.removeprefix("/~")
            return cls(path, name=name)
        try:
            fs, root = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, ValueError, OSError) as exc:
            raise ConfigError(f"cache tier URL {uri!r}: {exc}") from None
        return cls(root, filesystem=fs, name=name)

    # -- the port ----------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            with self.fs.open_input_stream(path) as f:
                header = f.read(len(MAGIC) + _HEADER.size)
                blob = f.readall() if self._live(path, header) else None
        except FileNotFoundError:
            self.counters.add(misses=1)
            return None
        except OSError:
            self.counters.add(misses=1, errors=1)
            return None
        if blob is not None:
            self.counters.add(hits=1, bytes_out=len(blob))
        return blob

    def put(self, key: str, blob: bytes, ttl_s: float | None = None, *, cost_s: float = 0.0) -> None:
        ttl = check_ttl(ttl_s, where=f"cache tier {self.name!r}, key {key!r}")
        if ttl == 0:
            self.delete(key)
            return
        header = MAGIC + _HEADER.pack(0.0 if ttl is None else time.time() + ttl)
        try:
            self._write(self._path(key), header, blob)
        except OSError:
            self.counters.add(errors=1)
            return
        self.counters.add(puts=1, bytes_in=len(blob))

    def delete(self, key: str) -> None:
        if self._remove(self._path(key)):
            self.counters.add(deletes=1)

    def clear(self, prefix: str | None = None) -> int:
        """Deletes entry files only (two levels below the root), never anything else that
        may share the directory; a component prefix lists that component's folder only."""
        component = prefix is not None and prefix.endswith(":") and ":" not in prefix[:-1]
        base = self._dir(prefix[:-1]) if component else self.root
        try:
            doomed = [p for p in self._files(base)
                      if component or _is_entry(self.root, p, prefix)]
        except OSError as exc:
            raise CacheUnavailable(f"cache tier {self.name!r} ({self.root}) could not be listed: {exc}") from None
        dropped = sum(self._remove(p) for p in doomed)
        self.counters.add(deletes=dropped)
        return dropped

    def stats(self) -> dict[str, Any]:
        return {**self.counters.snapshot(), "tier": "files", "root": self.root, "filesystem": self.fs.type_name}

    def usage(self) -> dict[str, Any]:
        try:
            infos = [i for i in self._infos(self.root) if _is_entry(self.root, i.path, None)]
        except OSError:
            return {"entries": None, "bytes": None}
        return {"entries": len(infos), "bytes": sum(i.size or 0 for i in infos)}

    def close(self) -> None:
        pass

    # -- internals ---------------------------------------------------------------------

    def _live(self, path: str, header: bytes) -> bool:
        """Whether the entry whose header was just read is live; when it has expired or
        has no header it is counted as a miss and its file deleted."""
        if len(header) < len(MAGIC) + _HEADER.size or header[:len(MAGIC)] != MAGIC:
            self._remove(path)
            self.counters.add(misses=1, rejected=1)
            return False
        (expires_at,) = _HEADER.unpack_from(header, len(MAGIC))
        if expires_at and expires_at <= time.time():
            self._remove(path)
            self.counters.add(misses=1, expired=1)
            return False
        return True

    def _write(self, path: str, header: bytes, blob: bytes) -> None:
        self.fs.create_dir(os.path.dirname(path), recursive=True)
        target = path if not self.local else f"{os.path.dirname(path)}/{_TMP}{uuid.uuid4().hex}"
        try:
            with self.fs.open_output_stream(target) as f:
                f.write(header)
                f.write(blob)
            if target != path:
                self.fs.move(target, path)      # a rename: atomic on a local disk
        except BaseException:
            if target != path:
                self._remove(target)
            raise

    def _remove(self, path: str) -> bool:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            return False
        except OSError:
            self.counters.add(errors=1)
            return False
        return True

    def _infos(self, base: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        return [i for i in self.fs.get_file_info(selector)
                if i.type == pafs.FileType.File and not i.base_name.startswith(_TMP)]

    def _files(self, base: str) -> list[str]:
        return [i.path for i in self._infos(base)]

    def _dir(self, head: str) -> str:
        return f"{self.root}/{_name(head)}"

    def _path(self, key: str) -> str:
        head, sep, tail = key.partition(":")
        return f"{self.root}/{_NO_SEP_DIR}/{_name(key)}" if not sep else f"{self._dir(head)}/{_name(tail)}"


def _name(part: str) -> str:
    """A file or directory name for one key part (``core.paths.path_name``): never ``..``
    or a separator, so every entry stays under the root."""
    return path_name(part)


def _is_entry(root: str, path: str, prefix: str | None) -> bool:
    """Whether ``path`` is an entry file (two levels below ``root``) whose key starts with
    ``prefix`` (any entry when None; a hashed name matches only None)."""
    parts = path[len(root):].strip("/").split("/")
    if len(parts) != 2:
        return False
    if prefix is None:
        return True
    head, name = parts
    if head.startswith("%~") or name.startswith("%~"):
        return False
    key = _unname(name) if head == _NO_SEP_DIR else f"{_unname(head)}:{_unname(name)}"
    return key.startswith(prefix)


def _unname(part: str) -> str:
    return from_path_name(part)
