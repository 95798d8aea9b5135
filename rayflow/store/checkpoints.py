"""Checkpoints: each completed component's output, kept where a resumed run can read it.

Owns the layout of a checkpoint location (a local directory by default, or any
``pyarrow.fs`` URL such as ``s3://bucket/prefix``) and reading it back:

    ROOT/RUN_ID/inline-<ns>-<rand>.arrow   small outputs, many per file (component_id, blob)
    ROOT/RUN_ID/one/<quoted id>.rfc        one larger output per file (a codec blob)

Blobs are ``rayflow.data.codec`` blobs: Arrow IPC, .npy, JSON or signed pickle, so
nothing read back is unpickled unless its signature verifies. Files appear whole: on
a local disk each is written to a temporary name and renamed; object stores publish
an object only once its upload completes. A component has a checkpoint when one of
these files names it; a later file wins over an earlier one.

Small outputs ride back to the driver with the call's metadata and are written in
batches by the store writer's thread; larger ones are written on the cluster by a
task that reads the output from the object store (see execute/ray/executor.py).
Neither is on the critical path.

``Checkpoint`` (the record an index hands out) lives in ``rayflow.core.records`` beside
the ``CheckpointSink`` protocol the execute port depends on, and is re-exported here.
``MemoryCheckpoints`` is the same location kept in memory (for tests): the same write,
index, load and delete semantics, checked by tests/contracts/test_checkpoint_sinks.py.
Must not import ray.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from rayflow.core import config
from rayflow.core.errors import ConfigError
from rayflow.core.paths import from_path_name, path_name
from rayflow.core.records import Checkpoint
from rayflow.data import codec

CHECKPOINTS_ENV_VAR = "RAYFLOW_CHECKPOINTS"
__all__ = ["CHECKPOINTS_ENV_VAR", "Checkpoint", "CheckpointStore", "MemoryCheckpoints", "checkpoint_url",
           "default_url"]

_INLINE_SCHEMA = pa.schema([("component_id", pa.string()), ("blob", pa.binary())])
OFF = ("off", "false", "0", "none")


def default_url() -> str:
    return str(codec.rayflow_home() / "checkpoints")


def checkpoint_url(configured: str | None) -> str | None:
    """The checkpoint location to use: the configured one, else $RAYFLOW_CHECKPOINTS, else
    ``~/.rayflow/checkpoints``; None when set to "off"."""
    url = configured if configured is not None else config.checkpoints_url()
    if url is None or not url.strip():
        return default_url()
    return None if url.strip().lower() in OFF else url.strip()


class CheckpointStore:
    """Reads and writes the checkpoints of runs under one location URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if "://" in url:
                self._fs, root = pafs.FileSystem.from_uri(url)
            else:
                self._fs, root = pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(url))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ConfigError(f"checkpoint location {url!r} cannot be opened: {exc}") from None
        self._root = root.rstrip("/")
        self._local = isinstance(self._fs, pafs.LocalFileSystem)

    def __reduce__(self):
        return (CheckpointStore, (self.url,))

    # -- writing -------------------------------------------------------------------------

    def write_inline(self, run_id: str, entries: dict[str, bytes]) -> None:
        """Many small outputs (component id -> blob) in one file."""
        if not entries:
            return
        table = pa.table([list(entries), list(entries.values())], schema=_INLINE_SCHEMA)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, _INLINE_SCHEMA) as writer:
            writer.write_table(table)
        name = f"inline-{time.time_ns():020d}-{secrets.token_hex(4)}.arrow"
        self._publish(f"{self._run_dir(run_id)}/{name}", sink.getvalue())

    def write_one(self, run_id: str, component_id: str, value: Any) -> None:
        """One output, encoded here, in its own file."""
        blob = codec.encode(value).blob()
        self._publish(f"{self._run_dir(run_id)}/one/{_quote(component_id)}.rfc", pa.py_buffer(blob))

    def _publish(self, path: str, data: pa.Buffer) -> None:
        self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        target = f"{path}.tmp-{secrets.token_hex(4)}" if self._local else path
        with self._fs.open_output_stream(target) as out:
            out.write(data)
        if self._local:
            self._fs.move(target, path)   # rename: readers never see a partial file

    # -- reading -------------------------------------------------------------------------

    def index(self, run_id: str) -> dict[str, Checkpoint]:
        """Every component of ``run_id`` with a checkpoint (a later file wins)."""
        selector = pafs.FileSelector(self._run_dir(run_id), recursive=True, allow_not_found=True)
        infos = [i for i in self._fs.get_file_info(selector) if i.type == pafs.FileType.File]
        found: dict[str, Checkpoint] = {}
        for info in sorted(infos, key=lambda i: (i.mtime_ns or 0, i.path)):
            name = info.base_name
            if name.startswith("inline-") and name.endswith(".arrow"):
                for cid, blob in self._read_inline(info.path):
                    found[cid] = Checkpoint(cid, blob=blob)
            elif name.endswith(".rfc"):   # (a write that never finished ends in .tmp-<hex>)
                cid = from_path_name(name[: -len(".rfc")])
                found[cid] = Checkpoint(cid, path=info.path)
        return found

    def load(self, checkpoint: Checkpoint) -> Any:
        """The saved value; ``codec.UntrustedData`` when a signature does not verify."""
        blob = checkpoint.blob
        if blob is None:
            with self._fs.open_input_file(checkpoint.path) as f:
                blob = f.read()
        return codec.unblob(blob)

    def delete_run(self, run_id: str) -> None:
        try:
            self._fs.delete_dir(self._run_dir(run_id))
        except FileNotFoundError:
            pass

    def _read_inline(self, path: str) -> list[tuple[str, bytes]]:
        try:
            with self._fs.open_input_file(path) as f:
                table = pa.ipc.open_file(f).read_all()
        except (pa.ArrowInvalid, OSError):
            return []   # unreadable: as if absent (the components run again)
        return list(zip(table.column("component_id").to_pylist(), table.column("blob").to_pylist(), strict=True))

    def _run_dir(self, run_id: str) -> str:
        return f"{self._root}/{_quote(run_id)}"


def _quote(name: str) -> str:
    return path_name(name)


class MemoryCheckpoints:
    """A checkpoint location in memory, with CheckpointStore's semantics: ``write_inline``
    indexes blobs (``Checkpoint.blob``), ``write_one`` encodes the value and indexes it by
    path (``Checkpoint.path``), a later write wins, ``delete_run`` forgets a run. For
    tests and single-process use; pickling copies it (the copy no longer shares writes)."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._runs: dict[str, dict[str, Checkpoint]] = {}
        self._files: dict[str, bytes] = {}

    def write_inline(self, run_id: str, entries: dict[str, bytes]) -> None:
        run = self._runs.setdefault(run_id, {})
        for cid, blob in entries.items():
            run.pop(cid, None)   # re-inserted: the latest write is the last one
            run[cid] = Checkpoint(cid, blob=bytes(blob))

    def write_one(self, run_id: str, component_id: str, value: Any) -> None:
        path = f"{self.url.rstrip('/')}/{_quote(run_id)}/one/{_quote(component_id)}.rfc"
        self._files[path] = codec.encode(value).blob()
        run = self._runs.setdefault(run_id, {})
        run.pop(component_id, None)
        run[component_id] = Checkpoint(component_id, path=path)

    def index(self, run_id: str) -> dict[str, Checkpoint]:
        return dict(self._runs.get(run_id, {}))

    def load(self, checkpoint: Checkpoint) -> Any:
        blob = checkpoint.blob
        if blob is None:
            try:
                blob = self._files[checkpoint.path or ""]
            except KeyError:
                raise FileNotFoundError(checkpoint.path) from None
        return codec.unblob(blob)

    def delete_run(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
        prefix = f"{self.url.rstrip('/')}/{_quote(run_id)}/"
        for path in [p for p in self._files if p.startswith(prefix)]:
            del self._files[path]
