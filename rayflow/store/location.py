"""A location of files kept per run: a local folder, or any ``pyarrow.fs`` URL.

Owns opening a location URL, the folder of one run in it (``ROOT/<quoted run id>``) and
writing a file whole or not at all: on a local disk each file is written to a temporary
name (``<name>.tmp-<hex>``) and renamed; an object store publishes an object only once its
upload completes. Checkpoints (rayflow/store/checkpoints.py) and attempts' logs
(rayflow/store/logs.py) are kept in locations. Must not import ray.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from rayflow.core.errors import ConfigError, RayflowError
from rayflow.core.paths import path_name
from rayflow.core.redact import redact, scrub

TEMP_MARK = ".tmp-"   # a file being written: ``<final name>.tmp-<hex>``, renamed when whole


class Location:
    """Files under one location URL; ``what`` names the location in errors."""

    what = "location"

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if "://" in url:
                self._fs, root = pafs.FileSystem.from_uri(url)
            else:
                self._fs, root = pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(url))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ConfigError(f"{self.what} {redact(url)!r} cannot be opened: {scrub(str(exc), url)}") from None
        self._root = root.rstrip("/")
        self._local = isinstance(self._fs, pafs.LocalFileSystem)

    @property
    def local(self) -> bool:
        """Whether the location is a folder on this machine's disk (not shared by the
        machines of a cluster)."""
        return self._local

    def __reduce__(self):
        return (type(self), (self.url,))

    def _run_dir(self, run_id: str) -> str:
        return f"{self._root}/{path_name(run_id)}"

    def _publish(self, path: str, data: Any, what: str, error: type[RayflowError]) -> None:
        """Write ``data`` (bytes or a pyarrow Buffer) to ``path`` whole or not at all;
        ``error`` (one line naming ``what`` and ``path``) when it cannot, with no temporary
        file left behind."""
        target = f"{path}{TEMP_MARK}{secrets.token_hex(4)}" if self._local else path
        try:
            self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with self._fs.open_output_stream(target) as out:
                out.write(data)
            if self._local:
                self._fs.move(target, path)   # rename: readers never see a partial file
        except BaseException as exc:   # KeyboardInterrupt too: never leave a partial file
            if self._local:
                self._discard(target)
            if isinstance(exc, (OSError, pa.ArrowException)):
                raise error(f"{what} could not be written to {path}: {reason(exc)}") from None
            raise

    def _discard(self, path: str) -> None:
        try:
            self._fs.delete_file(path)
        except (OSError, pa.ArrowException):
            pass   # never created, or already gone

    def _files(self, folder: str, *, recursive: bool = True) -> list[Any]:
        """The whole files under ``folder`` (none when it does not exist)."""
        selector = pafs.FileSelector(folder, recursive=recursive, allow_not_found=True)
        return [i for i in self._fs.get_file_info(selector) if i.type == pafs.FileType.File]


def reason(exc: BaseException) -> str:
    """The OS's words for an I/O error ("No space left on device"), else its one-line message."""
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)
    return " ".join(str(exc).split()) or type(exc).__name__
