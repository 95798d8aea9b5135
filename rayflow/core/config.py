"""Process configuration from the environment: the one reader of ``RAYFLOW_*`` variables.

Owns the names, defaults and parsing of every ``RAYFLOW_*`` environment variable that
rayflow reads; every other module calls a function here instead of ``os.environ``.
Each function reads the environment when called (never cached at import), so a
variable set later in the process, or by a test's ``monkeypatch``, takes effect.

It lives in ``rayflow.core``, the lowest layer, not in ``rayflow.service``: code that
runs in Ray workers (memory measuring, the signing key of pickled values) needs it
and may not import the service layer. Must not import anything of rayflow but
``rayflow.core``, and must not import ray. ``RAY_*`` variables of Ray itself
(``RAY_ADDRESS``, ...) are read where they are used, not here.

=========================  ====================================  ===============================================
Variable                   Default                               Meaning
=========================  ====================================  ===============================================
RAYFLOW_STORE              ``sqlite:///~/.rayflow/rayflow.db``   run-store URL (``memory://``, ``postgresql://..``)
RAYFLOW_CACHE              ``memory://``                         result-cache tiers, comma-separated; ``off``
RAYFLOW_CHECKPOINTS        ``$RAYFLOW_HOME/checkpoints``         where components' outputs are kept; ``off``
RAYFLOW_HOME               ``~/.rayflow``                        the default checkpoints, the signing key, the model
RAYFLOW_SIGNING_KEY        a random key in ``$RAYFLOW_HOME``     signs pickled checkpoints and cache entries
RAYFLOW_LEASE_S            30                                    a run's lease; its driver beats every third of it
RAYFLOW_TRACKER            unset (decided by the cluster)        0/1: force driving runs in the cluster's tracker
RAYFLOW_TRACKER_HOST       1                                     0: the first submitting process creates the tracker
                                                                 itself (no host process; see rayflow.server.tracker_host)
RAYFLOW_GC                 ``tune`` in processes rayflow owns,   ``tune``: pause the collector around bursts and
                           pauses only elsewhere (a user's       ``gc.freeze()`` at the first run; ``off``: neither
                           process)
RAYFLOW_GC_FREEZE          1                                     0: no ``gc.freeze()`` even where RAYFLOW_GC tunes
RAYFLOW_FAST_SUBMIT        1                                     0: always Ray's public ``.remote()``
RAYFLOW_STREAM_PROGRESS    1                                     0: streams report no batch progress
RAYFLOW_MEASURE_MEMORY     1                                     0: workers do not sample their peak memory
RAYFLOW_WARM_WORKERS       4 x the CPUs, at least 16             a local Ray that rayflow starts keeps this many idle
                                                                 workers (Ray: as many as CPUs) and starts as many at
                                                                 once; 0: Ray's defaults
RAYFLOW_SERVER             unset (the CLI tries                  a ``rayflow server`` URL: the CLI's commands go
                           ``http://127.0.0.1:8470``)            over HTTP to it (``--server``), and ``rf.Client()``;
                                                                 ``local``: run here, never try a server
RAYFLOW_TOKEN              unset                                 the bearer token sent to that server (``--token``)
RAYFLOW_LOGS               the checkpoint location               where attempts' logs are kept (any ``pyarrow.fs``
                           (``$RAYFLOW_HOME/checkpoints`` when   URL); ``off``: what components print is not captured
                           checkpoints are off)
RAYFLOW_LOG_MAX_BYTES      1048576 (1 MiB)                       the tail of each attempt's log that is kept
RAYFLOW_LOG_ECHO           0                                     1: what a component prints also goes where it would
                                                                 without capture (Ray forwards it to the driver)
RAYFLOW_RETENTION          ``7d``                                how long ``rayflow gc`` keeps a finished run's
                                                                 checkpoints (``30m``, ``12h``, ``7d``, ``2w``)
RAYFLOW_SECRETS_FILE       ``$RAYFLOW_HOME/secrets``             ``NAME=value`` lines read for ``{$secret: NAME}``
                                                                 where the environment lacks NAME (mode 600)
RAYFLOW_SQL_POOL_MAX       4                                     SQL connections per URL per worker process
RAYFLOW_SQL_POOL_IDLE_S    300                                   an idle pooled SQL connection is closed after this
RAYFLOW_HTTP_MAX_CONNECTIONS 20                                  connections of an HTTP component's client per host
RAYFLOW_HTTP_RETRY_AFTER_CAP_S 60                                the longest ``Retry-After`` an HTTP component waits
RAYFLOW_MAX_SPEC_BYTES     8388608 (8 MiB)                       the largest spec file or text rayflow reads
RAYFLOW_MAX_SPEC_DEPTH     64                                    how deep a spec's mappings and lists may nest
RAYFLOW_MAX_SPEC_NODES     1000000                               values in a spec, YAML aliases counted expanded
RAYFLOW_MAX_COMPONENTS     10000                                 components in one spec (also the server's limit)
RAYFLOW_MAX_CONCURRENCY    10000                                 a spec component's ``concurrency``
RAYFLOW_MAX_RETRIES        100                                   a spec component's ``max_retries``
RAYFLOW_MAX_NUM_OUTPUTS    1000                                  a spec component's ``num_outputs``
=========================  ====================================  ===============================================
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_VAR = "RAYFLOW_STORE"
CACHE_VAR = "RAYFLOW_CACHE"
CHECKPOINTS_VAR = "RAYFLOW_CHECKPOINTS"
HOME_VAR = "RAYFLOW_HOME"
SIGNING_KEY_VAR = "RAYFLOW_SIGNING_KEY"
LEASE_VAR = "RAYFLOW_LEASE_S"
TRACKER_VAR = "RAYFLOW_TRACKER"
TRACKER_HOST_VAR = "RAYFLOW_TRACKER_HOST"
GC_VAR = "RAYFLOW_GC"
GC_FREEZE_VAR = "RAYFLOW_GC_FREEZE"
FAST_SUBMIT_VAR = "RAYFLOW_FAST_SUBMIT"
STREAM_PROGRESS_VAR = "RAYFLOW_STREAM_PROGRESS"
MEASURE_MEMORY_VAR = "RAYFLOW_MEASURE_MEMORY"
WARM_WORKERS_VAR = "RAYFLOW_WARM_WORKERS"
SERVER_VAR = "RAYFLOW_SERVER"
TOKEN_VAR = "RAYFLOW_TOKEN"

DEFAULT_HOME = "~/.rayflow"
DEFAULT_LEASE_S = 30.0
MIN_LEASE_S = 0.3
GC_MODES = ("tune", "off")
DEFAULT_SERVER_URL = "http://127.0.0.1:8470"   # where ``rayflow server`` listens by default


def _get(name: str) -> str | None:
    return os.environ.get(name)


def _on(name: str) -> bool:
    """A switch that is on unless set to ``0``."""
    return os.environ.get(name, "1") != "0"


def store_url() -> str | None:
    """$RAYFLOW_STORE; None when unset or empty (the default SQLite file applies)."""
    return _get(STORE_VAR) or None


def cache_url() -> str | None:
    """$RAYFLOW_CACHE; None when unset or empty (in-process memory applies)."""
    return _get(CACHE_VAR) or None


def checkpoints_url() -> str | None:
    """$RAYFLOW_CHECKPOINTS as set (None when unset; the caller treats blank as the default)."""
    return _get(CHECKPOINTS_VAR)


def home() -> Path:
    """$RAYFLOW_HOME, else ``~/.rayflow``, with ``~`` expanded."""
    return Path(_get(HOME_VAR) or DEFAULT_HOME).expanduser()


def signing_key() -> str | None:
    """$RAYFLOW_SIGNING_KEY; None when unset or empty (the key file applies)."""
    return _get(SIGNING_KEY_VAR) or None


def lease_s() -> float:
    """$RAYFLOW_LEASE_S in seconds (at least 0.3); 30 when unset or not a number."""
    try:
        return max(MIN_LEASE_S, float(_get(LEASE_VAR) or DEFAULT_LEASE_S))
    except ValueError:
        return DEFAULT_LEASE_S


def tracker_forced() -> bool | None:
    """$RAYFLOW_TRACKER: True for ``1``, False for ``0``, None otherwise (rayflow decides)."""
    forced = _get(TRACKER_VAR)
    return forced == "1" if forced in ("0", "1") else None


def tracker_hosted() -> bool:
    """$RAYFLOW_TRACKER_HOST: False for ``0``; True otherwise (a host process creates the tracker)."""
    return _on(TRACKER_HOST_VAR)


def gc_mode() -> str | None:
    """$RAYFLOW_GC: ``"tune"`` or ``"off"`` (case-insensitive); None when unset or anything
    else (then the process's ownership decides: see ``rayflow.core.gcpause``)."""
    mode = (_get(GC_VAR) or "").strip().lower()
    return mode if mode in GC_MODES else None


def gc_freeze() -> bool:
    """$RAYFLOW_GC_FREEZE: False only for ``0``."""
    return _on(GC_FREEZE_VAR)


def fast_submit() -> bool:
    """$RAYFLOW_FAST_SUBMIT: False only for ``0``."""
    return _on(FAST_SUBMIT_VAR)


def stream_progress() -> bool:
    """$RAYFLOW_STREAM_PROGRESS: False only for ``0``."""
    return _on(STREAM_PROGRESS_VAR)


def warm_workers(cpus: float) -> int:
    """Idle worker processes a local Ray that rayflow starts keeps (0: Ray's own default,
    as many as CPUs). Fractional CPU requests run more tasks at once than there are CPUs,
    each in a worker process of its own: Ray starts the extras (about a second of a core
    each) and kills them a second after they fall idle, so each run pays again."""
    raw = (_get(WARM_WORKERS_VAR) or "").strip()
    if not raw:
        return max(16, 4 * int(cpus))
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        from rayflow.core.errors import ConfigError

        raise ConfigError(f"{WARM_WORKERS_VAR}: expected a whole number of workers (0: Ray's default), got {raw[:40]!r}")
    return value


def measure_memory() -> bool:
    """$RAYFLOW_MEASURE_MEMORY: False only for ``0``."""
    return _on(MEASURE_MEMORY_VAR)


SERVER_LOCAL = "local"


def server_url() -> str | None:
    """$RAYFLOW_SERVER without a trailing slash; None when unset, blank or ``local``."""
    url = (_get(SERVER_VAR) or "").strip()
    return None if url.lower() == SERVER_LOCAL else url.rstrip("/") or None


def run_page_url(server: str, run_id: str) -> str:
    """The web UI's page of ``run_id`` on the server at ``server`` (docs/ui.md)."""
    from urllib.parse import quote

    return f"{server.rstrip('/')}/#/run/{quote(run_id, safe='')}"


def server_probe() -> bool:
    """Whether the CLI may look for a server on this machine: $RAYFLOW_SERVER unset or blank
    (a URL names the server; ``local`` says run here)."""
    return not (_get(SERVER_VAR) or "").strip()


def token() -> str | None:
    """$RAYFLOW_TOKEN; None when unset or blank. A secret: never log or echo it."""
    return (_get(TOKEN_VAR) or "").strip() or None


# -- limits on what a spec may hold (docs/spec.md; read by rayflow.spec when it loads one) --

MAX_SPEC_BYTES_VAR = "RAYFLOW_MAX_SPEC_BYTES"
MAX_SPEC_DEPTH_VAR = "RAYFLOW_MAX_SPEC_DEPTH"
MAX_SPEC_NODES_VAR = "RAYFLOW_MAX_SPEC_NODES"
MAX_COMPONENTS_VAR = "RAYFLOW_MAX_COMPONENTS"
MAX_CONCURRENCY_VAR = "RAYFLOW_MAX_CONCURRENCY"
MAX_RETRIES_VAR = "RAYFLOW_MAX_RETRIES"
MAX_NUM_OUTPUTS_VAR = "RAYFLOW_MAX_NUM_OUTPUTS"

SPEC_LIMIT_DEFAULTS = {
    MAX_SPEC_BYTES_VAR: 8 * 1024 * 1024,
    MAX_SPEC_DEPTH_VAR: 64,
    MAX_SPEC_NODES_VAR: 1_000_000,
    MAX_COMPONENTS_VAR: 10_000,
    MAX_CONCURRENCY_VAR: 10_000,
    MAX_RETRIES_VAR: 100,
    MAX_NUM_OUTPUTS_VAR: 1_000,
}


def spec_limit(var: str) -> int:
    """The limit ``var`` (one of ``SPEC_LIMIT_DEFAULTS``) sets: a positive integer, its
    default when unset or blank; ConfigError naming the variable for anything else."""
    raw = (_get(var) or "").strip()
    if not raw:
        return SPEC_LIMIT_DEFAULTS[var]
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        from rayflow.core.errors import ConfigError

        raise ConfigError(f"{var}: expected a positive integer, got {raw[:40]!r}")
    return value


def max_spec_bytes() -> int:
    """$RAYFLOW_MAX_SPEC_BYTES: the largest spec file or text (default 8 MiB)."""
    return spec_limit(MAX_SPEC_BYTES_VAR)


def max_spec_depth() -> int:
    """$RAYFLOW_MAX_SPEC_DEPTH: how deep mappings and lists may nest in a spec (default 64)."""
    return spec_limit(MAX_SPEC_DEPTH_VAR)


def max_spec_nodes() -> int:
    """$RAYFLOW_MAX_SPEC_NODES: values in one spec, each YAML alias counted as a copy of its
    anchor (default 1,000,000)."""
    return spec_limit(MAX_SPEC_NODES_VAR)


def max_components() -> int:
    """$RAYFLOW_MAX_COMPONENTS: components in one spec (default 10,000)."""
    return spec_limit(MAX_COMPONENTS_VAR)


# -- retention (docs/operations.md; read by rayflow.service.retention) --

RETENTION_VAR = "RAYFLOW_RETENTION"
DEFAULT_RETENTION = "7d"


def retention() -> str:
    """$RAYFLOW_RETENTION as set, ``7d`` when unset or blank: the age past which ``rayflow gc``
    removes a finished run's checkpoints (parsed, and refused in one line, by the caller)."""
    return (_get(RETENTION_VAR) or "").strip() or DEFAULT_RETENTION


# -- per-attempt logs (docs/logs.md; read by rayflow.store.logs and the worker's capture) --

LOGS_VAR = "RAYFLOW_LOGS"
LOG_MAX_BYTES_VAR = "RAYFLOW_LOG_MAX_BYTES"
LOG_ECHO_VAR = "RAYFLOW_LOG_ECHO"
DEFAULT_LOG_MAX_BYTES = 1 << 20


def logs_url() -> str | None:
    """$RAYFLOW_LOGS as set (None when unset or blank: the checkpoint location applies)."""
    return (_get(LOGS_VAR) or "").strip() or None


def log_max_bytes() -> int:
    """$RAYFLOW_LOG_MAX_BYTES: the tail of one attempt's log that is kept (default 1 MiB,
    at least 1 KiB); ConfigError naming the variable when it is not a number."""
    raw = (_get(LOG_MAX_BYTES_VAR) or "").strip()
    if not raw:
        return DEFAULT_LOG_MAX_BYTES
    try:
        return max(int(raw), 1024)
    except ValueError:
        from rayflow.core.errors import ConfigError

        raise ConfigError(f"{LOG_MAX_BYTES_VAR}: expected a number of bytes, got {raw[:40]!r}") from None


def log_echo() -> bool:
    """$RAYFLOW_LOG_ECHO=1: captured output also goes to the stream it was written to."""
    return _get(LOG_ECHO_VAR) == "1"
