"""The service's settings: what ``rf.init`` and the CLI options set, and the tunables.

Owns ``Settings`` (each field None means: the ``RAYFLOW_*`` variable, read through
``rayflow.core.config``, else the default) and the service's fixed intervals. Plain
data: must not open anything, import an adapter, or read the environment itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from rayflow.core import config

EXECUTORS = ("ray", "local")
CLUSTER_TTL_S = 5.0
REFIT_EVERY_RUNS = 20      # the resource model is retrained in the background after this many runs ...
YOUNG_MODEL_SAMPLES = 200  # ... and after every run while it learned from fewer samples than this
WRITE_INTERVAL_S = 1.0   # how stale another process's view of a live run may be


@dataclass
class Settings:
    address: str | None = None
    store_url: str | None = None      # None: RAYFLOW_STORE or the default SQLite file
    cache_url: str | None = None      # None: RAYFLOW_CACHE or in-process memory; "off"
    num_cpus: int | None = None
    checkpoints_url: str | None = None   # None: RAYFLOW_CHECKPOINTS or ~/.rayflow/checkpoints; "off"
    logs_url: str | None = None          # None: RAYFLOW_LOGS or the checkpoint location; "off": no capture
    predicted_order: bool = True      # order ready components by the model's durations when it knows them
    lease_s: float | None = None      # None: RAYFLOW_LEASE_S or 30 s (how long a silent owner keeps a run)

    def configured_lease_s(self) -> float:
        return max(config.MIN_LEASE_S, float(self.lease_s)) if self.lease_s is not None else config.lease_s()

    def configured_store_url(self) -> str | None:
        """The store URL as configured (password included): the setting, else RAYFLOW_STORE."""
        return self.store_url or config.store_url()

    def configured_cache_url(self) -> str | None:
        """The cache tiers as configured (passwords included): the setting, else RAYFLOW_CACHE
        (None: the default)."""
        return self.cache_url or config.cache_url()
