"""The progress channel of streams on Ray: their coordinators report, the driver reads.

One small named actor per cluster (``progress`` in namespace ``rayflow``, detached, no
CPU) keeps the latest snapshot of every running stream (see rayflow/data/progress.py
for what one holds). A stream's coordinator sends it one fire-and-forget call at
most every ``REPORT_EVERY_S`` (never a blocking call per batch); the process driving
the run reads it without blocking: ``StreamWatch.latest()`` returns what the last read
brought and starts the next one. A finished stream's last snapshot comes back with its
timings (no race with the channel), and its entry is dropped from the actor.

``RAYFLOW_STREAM_PROGRESS=0`` turns the channel off (no actor, no reports). One of the
modules importing ray.
"""

from __future__ import annotations

import collections
import threading
import uuid
from typing import Any

import ray

from rayflow.core import config

NAME = "progress"
NAMESPACE = "rayflow"
KEEP = 1000                 # snapshots kept at most (streams whose driver never said they ended)
ENV_VAR = "RAYFLOW_STREAM_PROGRESS"
FINAL_KEY = "__progress__"   # the key of the last snapshot in a stream's timings dict


class ProgressBoard:
    """The latest snapshot per stream key."""

    def __init__(self) -> None:
        self._latest: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def report(self, key: str, snapshot: dict[str, Any]) -> None:
        self._latest[key] = snapshot
        self._latest.move_to_end(key)
        while len(self._latest) > KEEP:
            self._latest.popitem(last=False)

    def read(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {k: self._latest[k] for k in keys if k in self._latest}

    def forget(self, keys: list[str]) -> None:
        for k in keys:
            self._latest.pop(k, None)


_BOARD = ray.remote(ProgressBoard).options(name=NAME, namespace=NAMESPACE, lifetime="detached",
                                           get_if_exists=True, num_cpus=0)


def enabled() -> bool:
    return config.stream_progress()


def board() -> Any:
    """The cluster's board, created on first use."""
    return _BOARD.remote()


class Channel:
    """Where one stream's coordinator reports: the board and the stream's key (picklable)."""

    def __init__(self, board: Any, key: str) -> None:
        self.board = board
        self.key = key

    def send(self, snapshot: dict[str, Any]) -> None:
        """Fire and forget: the coordinator never waits on the board."""
        self.board.report.remote(self.key, snapshot)


class StreamWatch:
    """The driver's side: one per run (its executor's), keyed by each stream's last stage."""

    def __init__(self) -> None:
        self._board: Any = None
        self._keys: dict[str, str] = {}              # last stage -> key, while the stream runs
        self._latest: dict[str, dict[str, Any]] = {}   # last stage -> snapshot
        self._pending: tuple[Any, dict[str, str]] | None = None   # the read in flight, and for which keys
        self._lock = threading.Lock()

    def channel(self, stream: tuple[str, ...]) -> Channel | None:
        """The channel of a stream about to start; None when progress is turned off."""
        if not enabled():
            return None
        if self._board is None:
            self._board = board()
        key = f"{uuid.uuid4().hex}:{stream[-1]}"
        with self._lock:
            self._keys[stream[-1]] = key
        return Channel(self._board, key)

    def finished(self, stream: tuple[str, ...], timings: Any) -> None:
        """A stream ended: keep the last snapshot its coordinator returned, if any."""
        last = stream[-1]
        with self._lock:
            key = self._keys.pop(last, None)
            if isinstance(timings, dict) and isinstance(timings.get(FINAL_KEY), dict):
                self._latest[last] = timings[FINAL_KEY]
        if key is not None and self._board is not None:
            self._board.forget.remote([key])

    def latest(self) -> dict[str, dict[str, Any]]:
        """The snapshots known now, by last stage; takes the read in flight if it has
        arrived and starts the next (never waits)."""
        with self._lock:
            if self._pending is not None:
                ready, _ = ray.wait([self._pending[0]], timeout=0)
                if ready:
                    self._take(self._pending)
            if self._pending is None and self._keys:
                self._pending = (self._board.read.remote(list(self._keys.values())), dict(self._keys))
            return {k: dict(v) for k, v in self._latest.items()}

    def _take(self, pending: tuple[Any, dict[str, str]]) -> None:
        ref, keys = pending
        self._pending = None
        try:
            got = ray.get(ref)
        except Exception:  # noqa: BLE001 - progress is best effort; the run goes on
            return
        for last, key in keys.items():
            if key in got and self._keys.get(last) == key:   # a finished stream keeps its final snapshot
                self._latest[last] = got[key]
