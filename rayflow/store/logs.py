"""Attempts' logs: what each attempt of a component printed and logged, kept per run.

Owns the layout of a log location (the checkpoint location by default; any ``pyarrow.fs``
URL, see ``log_url``) and reading it back:

    ROOT/RUN_ID/logs/batch-<ns>-<rand>.arrow     small logs, many per file (component_id, attempt, text)
    ROOT/RUN_ID/logs/<quoted id>/<attempt>.log   one attempt's log (large, followed while it ran, or failed)

Small logs ride back to the driver with the call's metadata and are written in batches by
the store writer's thread; the others are written by the worker that ran the attempt
(rayflow/execute/worker/capture.py), so a large log never passes through the driver.
Attempts count from 1. For one attempt, a file written later replaces an earlier one (a
log followed while the attempt ran is replaced by its final text). Logs live in the run's
folder beside its checkpoints, so ``rayflow gc`` removes them with the run's folder.
A log is text as the component wrote it (never unpickled or executed). Must not import ray.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from rayflow.core import config
from rayflow.core.errors import RayflowError
from rayflow.core.paths import from_path_name, path_name
from rayflow.store.checkpoints import OFF, checkpoint_url, default_url
from rayflow.store.location import TEMP_MARK, Location

_BATCH_SCHEMA = pa.schema([("component_id", pa.string()), ("attempt", pa.int32()), ("text", pa.large_string())])
LOGS_DIR = "logs"


class LogWriteError(RayflowError):
    """A log could not be written (a full disk, a lost mount); no partial file is left."""


@dataclass(frozen=True, slots=True)
class AttemptLog:
    """One attempt's log: ``attempt`` counts from 1."""

    component_id: str
    attempt: int
    text: str


def log_url(configured: str | None = None, checkpoints: str | None = None) -> str | None:
    """Where attempts' logs are kept: ``configured``, else $RAYFLOW_LOGS, else the checkpoint
    location (``checkpoints`` as configured), else ``~/.rayflow/checkpoints``; None when
    set to "off" (nothing is captured)."""
    url = configured or config.logs_url()
    if url is not None:
        return None if url.strip().lower() in OFF else url.strip()
    return checkpoint_url(checkpoints) or default_url()


class LogStore(Location):
    """Reads and writes attempts' logs under one location URL."""

    what = "log location"

    def write_batch(self, run_id: str, logs: list[AttemptLog]) -> None:
        """Many small logs in one file."""
        if not logs:
            return
        table = pa.table([[x.component_id for x in logs], [x.attempt for x in logs], [x.text for x in logs]],
                         schema=_BATCH_SCHEMA)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, _BATCH_SCHEMA) as writer:
            writer.write_table(table)
        name = f"batch-{time.time_ns():020d}-{secrets.token_hex(4)}.arrow"
        self._publish(f"{self._logs_dir(run_id)}/{name}", sink.getvalue(),
                      f"the logs of {len(logs)} attempt(s) of run {run_id}", LogWriteError)

    def write_attempt(self, run_id: str, log: AttemptLog) -> None:
        """One attempt's log in its own file (replacing an earlier one of the same attempt)."""
        path = f"{self._logs_dir(run_id)}/{path_name(log.component_id)}/{int(log.attempt)}.log"
        self._publish(path, log.text.encode("utf-8", "replace"),
                      f"the log of attempt {log.attempt} of component {log.component_id!r} of run {run_id}",
                      LogWriteError)

    def attempts(self, run_id: str, component_id: str) -> dict[int, str]:
        """Every kept attempt of ``component_id``: attempt -> text (a later file wins)."""
        return self._read(run_id, component_id).get(component_id, {})

    def read(self, run_id: str, component_id: str, attempt: int | None = None) -> str | None:
        """The log of ``attempt`` (the last kept one by default); None when none is kept."""
        kept = self.attempts(run_id, component_id)
        if not kept:
            return None
        return kept.get(attempt if attempt is not None else max(kept))

    def all(self, run_id: str) -> dict[str, dict[int, str]]:
        """Every kept log of the run: component id -> attempt -> text (an id longer than
        ``path_name`` keeps comes back as its hashed folder name when its log has its own file)."""
        return self._read(run_id, None)

    def _read(self, run_id: str, component_id: str | None) -> dict[str, dict[int, str]]:
        folder = self._logs_dir(run_id)
        if component_id is None:
            infos = self._files(folder)
        else:   # the batches, and this component's own folder
            infos = self._files(folder, recursive=False) + self._files(f"{folder}/{path_name(component_id)}")
        found: dict[str, dict[int, str]] = {}
        for info in sorted(infos, key=lambda i: (i.mtime_ns or 0, i.path)):
            name = info.base_name
            if TEMP_MARK in name:
                continue   # a write that never finished
            if name.startswith("batch-") and name.endswith(".arrow"):
                for cid, attempt, text in self._read_batch(info.path, component_id):
                    found.setdefault(cid, {})[attempt] = text
            elif name.endswith(".log") and name[:-4].isdigit():
                folder_name = info.path.rsplit("/", 2)[-2]
                # the folder of the component asked for is its (a long id's name is a hash, one way)
                cid = component_id if component_id is not None else from_path_name(folder_name)
                try:
                    with self._fs.open_input_file(info.path) as f:
                        found.setdefault(cid, {})[int(name[:-4])] = f.read().decode("utf-8", "replace")
                except OSError:
                    continue   # removed meanwhile
        return found

    def _read_batch(self, path: str, component_id: str | None) -> list[tuple[str, int, str]]:
        try:
            with self._fs.open_input_file(path) as f:
                table = pa.ipc.open_file(f).read_all()
        except (pa.ArrowInvalid, OSError):
            return []   # unreadable: as if absent
        if component_id is not None:
            table = table.filter(pc.equal(table.column("component_id"), component_id))
        return list(zip(table.column("component_id").to_pylist(), table.column("attempt").to_pylist(),
                        table.column("text").to_pylist(), strict=True))

    def _logs_dir(self, run_id: str) -> str:
        return f"{self._run_dir(run_id)}/{LOGS_DIR}"
