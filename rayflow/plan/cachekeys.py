"""Cache keys of a plan's components, computed before anything runs.

Owns which components get a key and from what: a component with a cache policy, whose
every upstream has a key too (keys are Merkle-style: a component's key hashes its code,
its literal arguments and its upstreams' keys, so a change anywhere changes every key
downstream of it; see ``rayflow.plan.fingerprints``). A component reading an upstream without
a key, or with an argument that cannot be fingerprinted, runs uncached. Pure: no ray,
no I/O beyond reading files a ``pathlib.Path`` argument names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rayflow.graph import Dag
from rayflow.plan.fingerprints import call_key, entry_key

log = logging.getLogger("rayflow")


def cache_keys(dag: Dag, calls: Mapping[str, Any], tasks: Mapping[str, Any]) -> dict[str, str]:
    """Component id -> cache key, for the components that can be cached."""
    keys: dict[str, str] = {}
    for cid in dag.nodes:   # upstream first
        task, call = tasks[cid], calls[cid]
        policy = task.options.cache
        if policy is None or call.fn is None:
            continue
        upstream = [_output_key(keys, dep, index) for dep, index in task.inputs]
        if any(k is None for k in upstream):
            log.debug("component %r runs uncached: an upstream has no cache key", cid)
            continue
        kwargs = {k: v for k, v in task.kwargs.items() if k not in policy.ignore}
        try:
            digest = call_key(call.fn, version=task.options.version, config=kwargs, args=list(task.args),
                              upstream=upstream)
        except TypeError as exc:
            log.info("component %r runs uncached: %s", cid, exc)
            continue
        keys[cid] = entry_key(cid, digest)
    return keys


def _output_key(keys: Mapping[str, str], dep: str, index: int | None) -> str | None:
    key = keys.get(dep)
    if key is None:
        return None
    return key if index is None else f"{key}#{index}"
