"""The port for handing a run to a long-lived host, and the registry of that host.

A run submitted to a cluster started elsewhere is driven by a host that outlives the
submitting process (the cluster's tracker actor, ``rayflow.server.tracker``): the
service plans and records the run, hands it over with ``RunHost.hand_over``, and gets
a ``RunView`` of it back for the ``RunHandle``. The service defines this port; the
server implements it; the composition root (``rayflow.api``, loaded by the package
``rayflow`` on first use of any of its public names, and by every local CLI command)
registers the host. A ``rayflow server`` registers none: it drives what it claims itself.
Must not import rayflow.server (it is above) nor ray.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rayflow.core.redact import redact
from rayflow.plan import Plan
from rayflow.runs.views import RunView
from rayflow.store.port import RunRecord


@dataclass(frozen=True)
class HandOver:
    """Where the host finds what the run needs: the store (URL with its password), the
    checkpoint location (None: none kept) and the cache tiers (None: the host's default).

    Its URLs hold passwords: its repr shows them redacted, and it refuses to be pickled
    (a host passes them on its own way, never as plain arguments of another process)."""

    store_url: str
    checkpoints_url: str | None
    cache_url: str | None
    lease_s: float | None = None   # the submitter's lease length, which the host's claims use

    def __repr__(self) -> str:
        shown = (redact(u) if u is not None else None for u in (self.store_url, self.checkpoints_url, self.cache_url))
        return "HandOver(store_url={!r}, checkpoints_url={!r}, cache_url={!r}, lease_s={!r})".format(*shown,
                                                                                                    self.lease_s)

    def __reduce__(self) -> Any:
        raise TypeError("a HandOver holds the run's URLs with their passwords and is not pickled; "
                        "the run host hands them over sealed (rayflow.server.tracker)")


class RunHost(Protocol):
    """Drives runs outside this process, so they outlive it."""

    def hand_over(self, plan: Plan, run: RunRecord, where: HandOver, fallback: RunView) -> RunView:
        """Start ``run`` (already recorded PENDING) in the host; return a view of it that
        reads ``fallback`` once the host no longer holds the run."""
        ...


_lock = threading.Lock()
_factory: Callable[[], RunHost] | None = None
_host: RunHost | None = None


def register_run_host(factory: Callable[[], RunHost] | None) -> None:
    """Use ``factory()`` (called once, on the first hand-over) as the process's run host;
    None removes it (runs are then driven in this process)."""
    global _factory, _host
    with _lock:
        _factory, _host = factory, None


def run_host() -> RunHost | None:
    """The registered run host, made on first use; None when none is registered."""
    global _host
    with _lock:
        if _host is None and _factory is not None:
            _host = _factory()
        return _host
