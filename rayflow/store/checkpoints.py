"""Checkpoints: each completed component's output, kept where a resumed run can read it.

Owns the layout of a checkpoint location (a local directory by default, or any
``pyarrow.fs`` URL such as ``s3://bucket/prefix``) and reading it back:

    ROOT/RUN_ID/inline-<ns>-<rand>.arrow   small outputs, many per file (component_id, blob)
    ROOT/RUN_ID/one/<quoted id>.rfc        one larger output per file (a codec blob)

Blobs are ``rayflow.data.codec`` blobs: Arrow IPC, .npy, JSON or signed pickle, so
nothing read back is unpickled unless its signature verifies. Files appear whole: on
a local disk each is written to a temporary name and renamed; object stores publish
an object only once its upload completes. A component has a checkpoint when one of
these files names it; a later file wins over an earlier one. A write that fails (a full
disk) removes its temporary file and raises ``CheckpointWriteError``: one line naming
the component(s), the run and the path; its callers log it and the run goes on (a lost
checkpoint costs a rerun on resume, not the run).

``folders`` and ``remove`` are what retention (``rayflow gc``, rayflow/service/retention.py)
needs: each run folder with its size, age and leftover temporary files.

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

import secrets
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from rayflow.core import config
from rayflow.core.errors import ConfigError, RayflowError, SpecError
from rayflow.core.paths import check_run_id, from_path_name, path_name
from rayflow.core.records import Checkpoint
from rayflow.data import codec
from rayflow.store.location import TEMP_MARK, Location

CHECKPOINTS_ENV_VAR = "RAYFLOW_CHECKPOINTS"
__all__ = ["CHECKPOINTS_ENV_VAR", "Checkpoint", "CheckpointStore", "CheckpointWriteError", "MemoryCheckpoints",
           "RunFolder", "TempFile", "checkpoint_url", "default_url"]

_INLINE_SCHEMA = pa.schema([("component_id", pa.string()), ("blob", pa.binary())])
OFF = ("off", "false", "0", "none")
SHOWN_IDS = 3         # component ids an error names before "and N more"


class CheckpointWriteError(RayflowError):
    """A checkpoint could not be written (a full disk, a lost mount); no partial file is left."""


@dataclass(frozen=True)
class TempFile:
    """A file a write never finished (``*.tmp-<hex>``): its path, size and last change (UNIX s)."""

    path: str
    bytes: int
    mtime: float


@dataclass(frozen=True)
class RunFolder:
    """One folder at the top of a checkpoint location: ``run_id`` is the run it holds, or
    None when its name is not one ``path_name`` makes of a valid run id (not rayflow's)."""

    name: str
    path: str
    run_id: str | None
    files: int
    bytes: int
    newest: float                      # last change of its newest file (the folder's own when empty)
    temporary: tuple[TempFile, ...] = ()


def default_url() -> str:
    return str(codec.rayflow_home() / "checkpoints")


def checkpoint_url(configured: str | None) -> str | None:
    """The checkpoint location to use: the configured one, else $RAYFLOW_CHECKPOINTS, else
    ``~/.rayflow/checkpoints``; None when set to "off"."""
    url = configured if configured is not None else config.checkpoints_url()
    if url is None or not url.strip():
        return default_url()
    return None if url.strip().lower() in OFF else url.strip()


class CheckpointStore(Location):
    """Reads and writes the checkpoints of runs under one location URL."""

    what = "checkpoint location"

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
        self._publish(f"{self._run_dir(run_id)}/{name}", sink.getvalue(), f"checkpoint of {_what(list(entries), run_id)}",
                      CheckpointWriteError)

    def write_one(self, run_id: str, component_id: str, value: Any) -> None:
        """One output, encoded here, in its own file."""
        blob = codec.encode(value).blob()
        self._publish(f"{self._run_dir(run_id)}/one/{_quote(component_id)}.rfc", pa.py_buffer(blob),
                      f"checkpoint of {_what([component_id], run_id)}", CheckpointWriteError)

    # -- reading -------------------------------------------------------------------------

    def index(self, run_id: str) -> dict[str, Checkpoint]:
        """Every component of ``run_id`` with a checkpoint (a later file wins)."""
        infos = self._files(self._run_dir(run_id))
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

    def check(self, checkpoint: Checkpoint) -> None:
        """``codec.UntrustedData`` unless the saved value would verify and decode (a file is
        read a chunk at a time; a pickle is never loaded); OSError when it cannot be read."""
        if checkpoint.blob is not None:
            codec.check_blob(checkpoint.blob)
            return
        with self._fs.open_input_file(checkpoint.path) as f:
            codec.check_file(f)

    def delete_run(self, run_id: str) -> None:
        try:
            self._fs.delete_dir(self._run_dir(run_id))
        except FileNotFoundError:
            pass

    def sweep_temporary(self, run_id: str) -> int:
        """Remove every unfinished write (``*.tmp-<hex>``) in ``run_id``'s folder; how many.
        Only for the run's owner at a moment none of its own writes is in flight (its run
        has settled): a write that died (its worker was killed) left them, and a write still
        going would be a former owner's, whose result is not wanted."""
        selector = pafs.FileSelector(self._run_dir(run_id), recursive=True, allow_not_found=True)
        removed = 0
        for info in self._fs.get_file_info(selector):
            if info.type == pafs.FileType.File and TEMP_MARK in info.base_name:
                try:
                    self._fs.delete_file(info.path)
                    removed += 1
                except (FileNotFoundError, OSError):
                    continue   # renamed or removed meanwhile
        return removed

    # -- retention -----------------------------------------------------------------------

    def folders(self) -> list[RunFolder]:
        """Every folder at the top of the location (one per run), with its size, its newest
        change and its leftover temporary files; files at the top are not listed."""
        selector = pafs.FileSelector(self._root, recursive=True, allow_not_found=True)
        tops: dict[str, Any] = {}
        files: dict[str, list[Any]] = {}
        for info in self._fs.get_file_info(selector):
            rel = info.path[len(self._root) + 1:] if info.path.startswith(self._root + "/") else ""
            top, sep, _ = rel.partition("/")
            if not top:
                continue
            if not sep:
                if info.type == pafs.FileType.Directory:
                    tops[top] = info
            elif info.type == pafs.FileType.File:
                files.setdefault(top, []).append(info)
        return [self._folder(name, tops[name], files.get(name, [])) for name in sorted(tops)]

    def remove(self, path: str) -> None:
        """Delete a file or folder that ``folders`` listed (refused outside the location)."""
        if not path.startswith(self._root + "/") or "/../" in f"{path}/":
            raise ConfigError(f"{path!r} is not inside the checkpoint location {self._root!r}")
        info = self._fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            self._fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            self._fs.delete_file(path)

    def _folder(self, name: str, info: Any, files: list[Any]) -> RunFolder:
        temporary = tuple(TempFile(f.path, f.size or 0, _mtime(f)) for f in files if TEMP_MARK in f.base_name)
        return RunFolder(name, info.path, _run_id_of(name), len(files), sum(f.size or 0 for f in files),
                         max((_mtime(f) for f in files), default=_mtime(info)), temporary)

    def _read_inline(self, path: str) -> list[tuple[str, bytes]]:
        try:
            with self._fs.open_input_file(path) as f:
                table = pa.ipc.open_file(f).read_all()
        except (pa.ArrowInvalid, OSError):
            return []   # unreadable: as if absent (the components run again)
        return list(zip(table.column("component_id").to_pylist(), table.column("blob").to_pylist(), strict=True))



def _quote(name: str) -> str:
    return path_name(name)


def _run_id_of(folder: str) -> str | None:
    """The run id a folder name was made from; None when it is not one ``path_name`` makes
    of a valid run id."""
    run_id = from_path_name(folder)
    try:
        check_run_id(run_id)
    except SpecError:
        return None
    return run_id if path_name(run_id) == folder else None


def _mtime(info: Any) -> float:
    ns = getattr(info, "mtime_ns", None)
    return ns / 1e9 if ns else 0.0


def _what(component_ids: list[str], run_id: str) -> str:
    """"component 'a' of run R", or "components 'a', 'b', 'c' and 4 more of run R"."""
    shown = ", ".join(repr(c) for c in component_ids[:SHOWN_IDS])
    more = f" and {len(component_ids) - SHOWN_IDS} more" if len(component_ids) > SHOWN_IDS else ""
    return f"component{'s' if len(component_ids) > 1 else ''} {shown}{more} of run {run_id}"


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

    def check(self, checkpoint: Checkpoint) -> None:
        codec.check_blob(checkpoint.blob if checkpoint.blob is not None else self._files[checkpoint.path or ""])

    def sweep_temporary(self, run_id: str) -> int:
        return 0   # writes here are whole or absent

    def delete_run(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
        prefix = f"{self.url.rstrip('/')}/{_quote(run_id)}/"
        for path in [p for p in self._files if p.startswith(prefix)]:
            del self._files[path]
