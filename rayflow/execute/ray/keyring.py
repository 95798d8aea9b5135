"""One signing key for a whole Ray cluster of several nodes: the keyring actor.

Every process that reads what another signed (a checkpoint, a cache entry, a small
output coming back with its metadata) needs the signer's key. On one machine they all
read the same ``$RAYFLOW_HOME/signing.key``; on a cluster of several machines each
node would make its own, and the driver would refuse what workers elsewhere signed.
So, when the cluster has more than one alive node, the driver starts (or finds)
``keyring`` in namespace ``rayflow``: a detached actor with no CPU, pinned to the
driver's node (``NodeAffinitySchedulingStrategy(soft=False)``), that reads that node's
key in its constructor (from its own environment or key file: the key is never a Ray
argument) and hands it out. Every rayflow process on the
cluster, the driver and each worker, asks it once, on its first signature or check
(workers start no faster or slower: nothing is fetched at import), and keeps the key
for the rest of its life, unless $RAYFLOW_SIGNING_KEY is set in it. A driver with the
variable set checks that the keyring's key is the same (else workers without it would
sign with another) and stops with one line if not. Where no keyring exists (one node)
nothing changes: each process reads its own key file.

``install()`` (called when ``rayflow.execute.ray`` is imported) makes ``cluster_key``
the codec's key source; ``ensure()`` (called where the driver connects to Ray) starts
the keyring on a cluster of several nodes. Errors are one line saying what to set.
Imports ray lazily: the session module settles Ray's auth mode before ray loads.
"""

from __future__ import annotations

import hmac
import sys
import threading
import time
from typing import Any

from rayflow.core import config
from rayflow.core.errors import ConfigError
from rayflow.data import codec

NAME = "keyring"
NAMESPACE = "rayflow"
FETCH_TIMEOUT_S = 60.0
RECHECK_S = 30.0    # a single-node cluster is counted again at most this often (it may grow)

_lock = threading.Lock()
_ensure_lock = threading.Lock()
_found: bytes | bool | None = None   # the cluster's key; False: none (this node's own); None: not asked
_single_until = 0.0                  # monotonic time until which the cluster counts as one node


class Keyring:
    """The actor: this node's key, read once when it starts."""

    def __init__(self) -> None:
        self._key = codec.own_key()

    def key(self) -> bytes:
        return self._key


def install() -> None:
    """Make the cluster's keyring the source of the signing key in this process."""
    codec.set_key_source(cluster_key)


def cluster_key() -> bytes | None:
    """The cluster's key (asked of the keyring once per process), or None: this process
    uses its own node's key (no keyring on this cluster, or not connected to Ray yet)."""
    found = _found
    if found is not None:
        return found or None
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None   # nothing to ask yet: decided once connected
    return _ask(ray)


def _ask(ray: Any) -> bytes | None:
    global _found
    with _lock:
        if _found is None:
            try:
                handle = ray.get_actor(NAME, namespace=NAMESPACE)
            except ValueError:      # no keyring: one node, one key file
                _found = False
            else:
                _found = _fetch(ray, handle)
        return _found or None


def ensure() -> None:
    """Where the driver connects: on a cluster of more than one alive node, the keyring
    (started on this node when there is none) and this process's key from it. With
    $RAYFLOW_SIGNING_KEY set here, the keyring's key (its node's) must be the same, or the
    workers that lack the variable would sign with another. ConfigError, one line, when
    the key cannot be had or differs."""
    if _found or time.monotonic() < _single_until:
        return
    with _ensure_lock:   # many runs starting at once (a tracker): one asks, the others wait
        if not (_found or time.monotonic() < _single_until):
            _ensure()


def _ensure() -> None:
    global _found, _single_until
    import ray

    if sum(1 for node in ray.nodes() if node.get("Alive")) < 2:
        _single_until = time.monotonic() + RECHECK_S
        return
    key = _fetch(ray, _start(ray))
    env = config.signing_key()
    if env and not hmac.compare_digest(env.encode(), key):
        raise ConfigError(f"{codec.KEY_ENV_VAR} is set in this process but the cluster's nodes sign with "
                          f"another key (actor {NAMESPACE}/{NAME} read its node's): set the same "
                          f"{codec.KEY_ENV_VAR} in the environment of every node's `ray start`, or unset it here")
    with _lock:
        _found = key


def _start(ray: Any) -> Any:
    """The keyring's handle: the one the cluster has, or a new one pinned to this node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    options: dict[str, Any] = {"name": NAME, "namespace": NAMESPACE, "lifetime": "detached",
                               "get_if_exists": True, "num_cpus": 0, "max_restarts": -1}
    try:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
            node_id=ray.get_runtime_context().get_node_id(), soft=False)
    except Exception:  # noqa: BLE001 - no node of its own (a client): anywhere will do
        pass
    try:
        return ray.remote(Keyring).options(**options).remote()
    except Exception as exc:  # noqa: BLE001 - one line saying what to set
        raise _unavailable(exc) from None


def _fetch(ray: Any, handle: Any) -> bytes:
    try:
        key = ray.get(handle.key.remote(), timeout=FETCH_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - one line saying what to set
        raise _unavailable(exc) from None
    return codec.check_key(bytes(key), "the cluster's keyring actor")


def _unavailable(exc: BaseException) -> ConfigError:
    text = str(exc)
    marker = f"{ConfigError.__name__}: "
    if marker in text:   # the keyring could not read its node's key: say why, as it said
        why = text.rsplit(marker, 1)[1].strip().splitlines()[0]
        return ConfigError(f"the cluster's signing key (actor {NAMESPACE}/{NAME}, on the node that started it): {why}")
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[-1].strip() if lines else type(exc).__name__
    return ConfigError(f"cannot get the cluster's signing key from actor {NAMESPACE}/{NAME} "
                       f"({type(exc).__name__}: {first[:200]}); set {codec.KEY_ENV_VAR} to the same "
                       f"64 hex characters on every node ({codec.NEW_KEY_HINT})")


def reset() -> None:
    """Forget the key this process got (a new Ray session may be another cluster)."""
    global _found, _single_until
    with _lock:
        _found, _single_until = None, 0.0
