"""Retention: what ``rayflow gc`` removes from a checkpoint location (and, with rows, a store).

Owns the rules, over one run store and the checkpoint location its runs write to:

- the checkpoints of a finished run (SUCCEEDED, FAILED, CANCELLED) that ended before the
  cutoff (``older_than_s`` ago; $RAYFLOW_RETENTION, ``7d`` by default) -- and with ``rows``
  its rows in the store, where the store can delete runs;
- temporary files (``*.tmp-<hex>``) no one has written for an hour: writes that died;
- the folder of a run the store does not know, once nothing in it changed for as long as
  the cutoff (a location shared by several stores keeps the others' live runs);
- never anything of an unfinished run (PENDING, RUNNING): it may be resumed. Each run is
  read again just before its checkpoints go, so one resumed meanwhile is kept.

Every path comes from ``CheckpointStore`` (built with ``rayflow.core.paths.path_name``).
``collect`` returns what it removed (or, ``dry_run``, would remove): a ``Collected``.
Must not import ray; the CLI (``rayflow.cli.admin``) only parses and formats.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from rayflow.core import config
from rayflow.core.errors import ConfigError
from rayflow.core.states import TERMINAL_RUN_STATES
from rayflow.store.checkpoints import CheckpointStore, RunFolder
from rayflow.store.port import RunRecord, RunStore

TEMP_AGE_S = 3600.0      # a temporary file untouched this long belongs to a write that died
PAGE = 500               # runs read from the store at a time
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
KINDS = ("checkpoints", "temporary", "orphan", "rows")


def parse_age(text: str, *, field_name: str) -> float:
    """Seconds in an age such as ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (a bare number is
    seconds); ConfigError naming ``field_name`` otherwise."""
    found = _AGE.match(text or "")
    if found is None:
        raise ConfigError(f"{field_name}: expected an age such as 30m, 12h, 7d or 2w, got {text[:40]!r}")
    return float(found.group(1)) * UNITS[(found.group(2) or "s").lower()]


def retention_s(older_than: str | None) -> float:
    """The cutoff age: ``older_than`` (``--older-than``) when given, else $RAYFLOW_RETENTION."""
    if older_than is not None:
        return parse_age(older_than, field_name="--older-than")
    return parse_age(config.retention(), field_name=config.RETENTION_VAR)


@dataclass(frozen=True)
class Removed:
    """One thing removed: ``kind`` is one of KINDS; ``what`` a path, or a run id for rows."""

    kind: str
    what: str
    bytes: int = 0
    run_id: str | None = None


@dataclass
class Collected:
    """What one collection removed (``dry_run``: would remove), and what it left alone."""

    dry_run: bool
    cutoff: float
    removed: list[Removed] = field(default_factory=list)
    kept_unfinished: int = 0       # finished-looking folders whose run is PENDING or RUNNING
    not_rayflow: list[str] = field(default_factory=list)   # folders no run id names (left alone)

    def totals(self) -> dict[str, tuple[int, int]]:
        """kind -> (how many, bytes)."""
        out = {kind: (0, 0) for kind in KINDS}
        for item in self.removed:
            n, size = out[item.kind]
            out[item.kind] = (n + 1, size + item.bytes)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "cutoff": self.cutoff,
                "totals": {k: {"count": n, "bytes": b} for k, (n, b) in self.totals().items()},
                "removed": [item.__dict__ for item in self.removed], "kept_unfinished": self.kept_unfinished,
                "not_rayflow": self.not_rayflow}


def collect(store: RunStore, checkpoints: CheckpointStore | None, *, older_than_s: float, rows: bool = False,
            dry_run: bool = False, now: float | None = None) -> Collected:
    """Remove what retention says may go (see the module docstring); ``dry_run``: only list it."""
    now = time.time() if now is None else now
    delete_runs = _row_deleter(store) if rows else None
    out = Collected(dry_run=dry_run, cutoff=now - older_than_s)
    expired = _expired_runs(store, out.cutoff)
    if checkpoints is not None:
        _sweep_checkpoints(store, checkpoints, expired, out, now=now)
    if delete_runs is not None:
        ids = [rid for rid in expired if _still_expired(store, rid, out.cutoff)]
        if ids and not dry_run:
            delete_runs(ids)
        out.removed += [Removed("rows", rid, run_id=rid) for rid in ids]
    return out


def _row_deleter(store: RunStore) -> Any:
    """The store's ``delete_runs(run_ids)``; ConfigError before anything is removed when it has none."""
    delete_runs = getattr(store, "delete_runs", None)
    if delete_runs is None:
        raise ConfigError(f"--rows: the run store {store.url} cannot delete runs (its RunStore has no "
                          "delete_runs); run gc without --rows to remove checkpoints only")
    return delete_runs


def _expired_runs(store: RunStore, cutoff: float) -> dict[str, RunRecord]:
    """Every finished run that ended before ``cutoff``, by id (read a page at a time)."""
    out: dict[str, RunRecord] = {}
    for status in sorted(TERMINAL_RUN_STATES):
        before = None
        while True:
            page = store.list_runs_page(status=status, limit=PAGE, before=before)
            out.update((r.run_id, r) for r in page if _ended(r) < cutoff)
            if len(page) < PAGE:
                break
            before = (page[-1].created_at, page[-1].run_id)
    return out


def _ended(run: RunRecord) -> float:
    return run.ended_at if run.ended_at is not None else (run.started_at or run.created_at)


def _still_expired(store: RunStore, run_id: str, cutoff: float) -> bool:
    """Read again just before removing: a run resumed meanwhile is RUNNING now, and kept."""
    run = store.get_run(run_id)
    return run is not None and run.status in TERMINAL_RUN_STATES and _ended(run) < cutoff


def _sweep_checkpoints(store: RunStore, checkpoints: CheckpointStore, expired: dict[str, RunRecord],
                       out: Collected, *, now: float) -> None:
    for folder in checkpoints.folders():
        if folder.run_id is None:
            out.not_rayflow.append(folder.path)
        elif folder.run_id in expired:
            if _still_expired(store, folder.run_id, out.cutoff):
                _remove(checkpoints, out, Removed("checkpoints", folder.path, folder.bytes, folder.run_id))
                continue
            out.kept_unfinished += 1
        else:
            run = store.get_run(folder.run_id)
            if run is None and folder.newest < out.cutoff:
                _remove(checkpoints, out, Removed("orphan", folder.path, folder.bytes, folder.run_id))
                continue
            if run is not None and run.status not in TERMINAL_RUN_STATES:
                out.kept_unfinished += 1
        _sweep_temporary(checkpoints, folder, out, now=now)


def _sweep_temporary(checkpoints: CheckpointStore, folder: RunFolder, out: Collected, *, now: float) -> None:
    """Leftover temporary files of a folder that stays: only those untouched for TEMP_AGE_S."""
    for temp in folder.temporary:
        if temp.mtime < now - TEMP_AGE_S:
            _remove(checkpoints, out, Removed("temporary", temp.path, temp.bytes, folder.run_id))


def _remove(checkpoints: CheckpointStore, out: Collected, item: Removed) -> None:
    if not out.dry_run:
        checkpoints.remove(item.what)
    out.removed.append(item)


def gc(service: Any, *, older_than: str | None = None, checkpoints_url: str | None = None, rows: bool = False,
       dry_run: bool = False) -> Collected:
    """``rayflow gc`` over a configured service: its store, and ``checkpoints_url`` (default
    the service's checkpoint location; ``off``: none, so only rows can go)."""
    older_than_s = retention_s(older_than)
    if checkpoints_url is not None:
        service.configure(checkpoints=checkpoints_url)
    service.flush()
    return collect(service.store, service.checkpoint_store(), older_than_s=older_than_s, rows=rows,
                   dry_run=dry_run)
