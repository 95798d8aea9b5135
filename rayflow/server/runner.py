"""The server's runner: claims runs from the store's queue and drives them here.

One thread per server. Each turn it claims (``RunStore.claim_next``, safe under
concurrency: several servers on one PostgreSQL store split the runs) as many runs as
it has room for (``max_runs`` driven at once), and drives each through the service
under the claim's lease (fenced writes, kept live by the service's lease keeper). A
queued run is one recorded with no owner (``POST /v1/runs``, ``rayflow submit``,
``rf.submit`` on a cluster with a server); an orphan is one whose owner stopped
renewing its lease (a server or a script that died): both are claimed the same way,
and an orphan continues from its checkpoints, so nothing completed runs again.

The runner also beats the server's own record (``servers``), so clients and other
servers see it live. ``stop(hand_back=True)`` stops claiming and hands every run back
(leases released) for another server to resume. Must not import FastAPI.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from rayflow.core.errors import RayflowError, RunBusy
from rayflow.store.port import EventRecord, Lease, ServerRecord

log = logging.getLogger("rayflow.server")

CLAIM_BATCH = 32     # runs claimed per store round trip at most
IDLE_POLL_S = 1.0    # how often an idle runner looks for orphans and work queued by other servers


class Runner:
    """Claims and drives runs for one server (see the module docstring)."""

    def __init__(self, service: Any, *, server_id: str, url: str, executor: str = "ray",
                 max_runs: int = 64, lease_s: Callable[[], float]) -> None:
        self.service = service
        self.server_id = server_id
        self.url = url
        self.executor = executor
        self.max_runs = max_runs
        self._lease_s = lease_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = time.time()
        self._driving: dict[str, Any] = {}   # run_id -> RunHandle
        self._lock = threading.Lock()

    @property
    def owner(self) -> str:
        return f"server:{self.server_id}"

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="rayflow-runner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New work was queued here: claim now, not at the next poll."""
        self._wake.set()

    def driving(self) -> int:
        with self._lock:
            return len(self._driving)

    def stop(self, *, hand_back: bool = True, wait_s: float = 10.0) -> int:
        """Stop claiming; hand the runs driven here back (or let them finish when not);
        remove this server's record. How many runs were handed back."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait_s)
        handed = self.service.hand_back(wait_s=wait_s) if hand_back else 0
        try:
            self.service.store.remove_server(self.server_id)
        except Exception:  # noqa: BLE001 - it lapses by itself
            log.warning("could not remove server %s from the store", self.server_id)
        return handed

    def beat(self) -> None:
        record = ServerRecord(server_id=self.server_id, url=self.url, host=socket.gethostname(), pid=os.getpid(),
                              started_at=self._started_at,
                              info={"driving": self.driving(), "max_runs": self.max_runs, "owner": self.owner})
        self.service.store.beat_server(record)

    # -- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        next_beat = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                if now >= next_beat:
                    self.beat()
                    next_beat = now + self._lease_s() / 3
                claimed = self._claim_some()
            except Exception:  # noqa: BLE001 - a store outage: try again at the next turn
                log.exception("the runner could not reach the run store")
                claimed = 0
            if claimed and self.driving() < self.max_runs:
                continue   # more may be queued: claim again at once
            self._wake.wait(IDLE_POLL_S)
            self._wake.clear()

    def _claim_some(self) -> int:
        room = self.max_runs - self.driving()
        if room <= 0:
            return 0
        leases = self.service.store.claim_next(self.owner, self._lease_s(), min(room, CLAIM_BATCH))
        for lease in leases:
            self._drive(lease)
        return len(leases)

    def _drive(self, lease: Lease) -> None:
        # kept live from the claim on: planning may take longer than the lease
        self.service.leases.hold(lease, lambda run_id: None)
        try:
            handle = self.service.drive_claimed(lease, executor=self.executor, background=True)
        except RunBusy:   # driven here already under an older claim (fenced now): let it go
            self.service.leases.drop(lease.run_id)
            self.service.store.release_lease(lease)
            return
        except Exception as exc:  # noqa: BLE001 - the run cannot be planned here: say why, in the run
            self.service.leases.drop(lease.run_id)
            self._fail(lease, exc)
            return
        with self._lock:
            self._driving[lease.run_id] = handle

    def finished(self, run_id: str) -> None:
        """Called when a run driven here ended (the service's finished hook)."""
        with self._lock:
            self._driving.pop(run_id, None)
        self._wake.set()   # room for one more

    def adopt(self, lease: Lease) -> None:
        """Drive a run claimed outside the loop (a resume asked for over HTTP)."""
        self._drive(lease)

    def lease_s(self) -> float:
        return self._lease_s()

    def _fail(self, lease: Lease, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, RayflowError) else f"{type(exc).__name__}: {exc}"
        message = f"server {self.server_id} could not plan the run: {reason}"
        log.warning("run %s: %s", lease.run_id, message)
        self.end_unstarted(lease, "FAILED", message)

    def end_unstarted(self, lease: Lease, status: str, message: str) -> None:
        """Give a claimed run that will not be driven its final ``status`` (fenced by the
        claim), with a run_state event, and end the lease."""
        store = self.service.store
        last = store.get_events(lease.run_id, after_seq=0, limit=10_000_000)
        seq = last[-1].seq if last else 0
        now = time.time()
        store.write_batch([], [EventRecord(lease.run_id, seq + 1, now, "run_state", None,
                                           {"state": status, "error": message})],
                          {lease.run_id: {"status": status, "error": message, "ended_at": now,
                                          "heartbeat_at": None, "owner": ""}},
                          {lease.run_id: lease.epoch})
