"""The lease keeper: renews the leases of the runs a process drives, on the store's clock.

A run is driven by whoever holds its lease (``store.port.Lease``: owner and fencing
epoch). The keeper renews every held lease each third of the lease time in one
background thread, so a lease stays live while the control loop blocks (settling, a
long final fetch). An owner that learns it lost its lease (someone claimed the run:
renewal refused), or that cannot reach the store for most of a lease time (so it
cannot know whether someone did), stops driving: the run's ``lease_lost`` is called.
Its later writes are refused by the store anyway (fenced by epoch); stopping keeps it
from starting components the new owner will run. Must not import rayflow.service,
rayflow.server or ray.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rayflow.store.port import Lease, RunStore

log = logging.getLogger("rayflow")

SELF_FENCE = 0.8   # an owner that has not renewed for this share of the lease stops driving


@dataclass
class _Held:
    lease: Lease
    on_lost: Callable[[str], None]
    renewed: float   # monotonic time of the last confirmed renewal
    ending: bool = False   # the run's last write (which ends the lease) is under way


class LeaseKeeper:
    """Renews held leases in one daemon thread; started on the first ``hold``."""

    def __init__(self, store: Callable[[], RunStore], lease_s: Callable[[], float]) -> None:
        self._store = store
        self._lease_s = lease_s
        self._held: dict[str, _Held] = {}
        self._gone: set[str] = set()   # runs whose lease this process held and lost
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False

    def hold(self, lease: Lease, on_lost: Callable[[str], None]) -> None:
        with self._cond:
            self._held[lease.run_id] = _Held(lease, on_lost, time.monotonic())
            self._gone.discard(lease.run_id)
            if self._thread is None or not self._thread.is_alive():
                self._stop = False
                self._thread = threading.Thread(target=self._loop, name="rayflow-leases", daemon=True)
                self._thread.start()

    def ending(self, run_id: str) -> None:
        """The run's last write, which ends its lease, is about to go: keep renewing until
        ``drop`` (the write may take a while), but a renewal refused from now on means the
        write landed, not a take-over."""
        with self._cond:
            entry = self._held.get(run_id)
            if entry is not None:
                entry.ending = True

    def drop(self, run_id: str) -> None:
        with self._cond:
            self._held.pop(run_id, None)
            self._gone.discard(run_id)

    def confirm(self, run_id: str) -> bool:
        """Whether this process may go on driving ``run_id``, asked before it starts more work.
        A lease renewed within SELF_FENCE of the lease time answers at once; an older one (the
        process was paused, or the keeper thread starved) is renewed here first, so a driver
        woken past its lease learns of a take-over before it submits anything. False (and the
        run's ``lease_lost`` called) when the lease is gone; True for a run not held here."""
        with self._cond:
            if run_id in self._gone:
                return False   # lost (the keeper thread may have learnt it a moment ago)
            entry = self._held.get(run_id)
        if entry is None or time.monotonic() - entry.renewed < SELF_FENCE * self._lease_s():
            return True
        self._renew(entry)
        with self._cond:
            return self._held.get(run_id) is entry

    def held(self) -> list[Lease]:
        with self._cond:
            return [h.lease for h in self._held.values()]

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
                self._cond.wait(self._lease_s() / 3)
                if self._stop:
                    return
                held = list(self._held.values())
            started = time.monotonic()
            for entry in held:
                self._renew(entry)
            took = time.monotonic() - started
            if took > self._lease_s() / 3:
                log.warning("renewing %d lease(s) took %.1f s, more than a third of the lease (%.0f s)",
                            len(held), took, self._lease_s())

    def _renew(self, entry: _Held) -> None:
        run_id = entry.lease.run_id
        try:
            ok = self._store().renew_lease(entry.lease)
        except Exception as exc:  # noqa: BLE001 - a store outage: keep driving for a while
            if time.monotonic() - entry.renewed < SELF_FENCE * self._lease_s():
                log.warning("run %s: could not renew its lease (%s); retrying", run_id, type(exc).__name__)
                return
            log.error("run %s: no lease renewal for %.0f s; it stops here so that another owner can take it",
                      run_id, time.monotonic() - entry.renewed)
            ok = False
        if ok:
            entry.renewed = time.monotonic()
            return
        with self._cond:
            if self._held.get(run_id) is not entry:
                return   # dropped meanwhile: the run ended
            self._held.pop(run_id, None)
            if entry.ending:
                return   # the run's own last write ended the lease
            self._gone.add(run_id)
        log.warning("run %s: its lease (epoch %d) was taken over; this process stops driving it",
                    run_id, entry.lease.epoch)
        entry.on_lost(run_id)
