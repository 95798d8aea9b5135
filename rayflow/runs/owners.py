"""Who drives a run: this process's owner id, and whether another owner is known to be gone.

An owner id is ``host:pid:token``, the token random per process, so two containers that
share a hostname (and may reuse pids) never share an id. Each process holds an exclusive
``flock`` on ``$RAYFLOW_HOME/owners/<token>.lock`` for as long as it lives; the kernel drops
the lock when the process dies, however it dies. ``owner_gone`` answers True only when
that lock file is in this machine's ``RAYFLOW_HOME`` and can be locked: a process that
shares neither the folder nor the kernel is never declared gone, and its run waits for its
lease to lapse on the database's clock instead. Owner ids without a token (written by
earlier versions) are never declared gone either.

Asking never removes the lock file, so every process that asks gets the same answer (``rayflow
runs --status RESUMABLE`` and then ``rayflow resume`` both see the owner gone). A process
sweeps the files of dead owners older than ``STALE_S`` when it takes its own lock; by then
any lease those owners held has lapsed, so a run of theirs is resumable on its lease alone.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import threading
import time
from pathlib import Path

from rayflow.core import config

STALE_S = 86400.0   # a dead owner's lock file older than this is swept
_lock = threading.Lock()
_mine: tuple[int, str, int | None] | None = None   # (pid, owner id, fd holding the lock)


def owner_id() -> str:
    """This process's owner id (made, and its lock taken, on first use after a fork)."""
    global _mine
    with _lock:
        if _mine is None or _mine[0] != os.getpid():
            token = secrets.token_hex(6)
            _mine = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{token}", _hold(token))
        return _mine[1]


def owner_gone(owner: str) -> bool:
    """True when ``owner``'s process is known to have ended (see the module docstring)."""
    host, pid, token = (owner.split(":") + ["", "", ""])[:3] if owner.count(":") == 2 else ("", "", "")
    if not token or host != socket.gethostname() or not token.isalnum():
        return False
    return _unheld(_folder() / f"{token}.lock")


def _unheld(path: Path) -> bool:
    """True when the lock file at ``path`` exists and no process holds its lock."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False   # held: the owner lives
    finally:
        os.close(fd)   # (closing drops the lock we may have taken)
    return True


def _sweep(folder: Path, now: float) -> None:
    """Remove dead owners' lock files older than STALE_S (best effort)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.name.endswith(".lock") and now - entry.stat().st_mtime > STALE_S and _unheld(Path(entry.path)):
                os.unlink(entry.path)
        except OSError:
            continue


def _hold(token: str) -> int | None:
    try:
        folder = _folder()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder / f"{token}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _sweep(folder, time.time())
        return fd
    except OSError:
        return None   # a read-only home: this owner is never declared gone (leases still apply)


def _folder() -> Path:
    return config.home() / "owners"
