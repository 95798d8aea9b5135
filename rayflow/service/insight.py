"""What the service computes for the CLI's cache and sizing pages (formatting stays in
``rayflow.cli``): cache hits across runs with what each tier holds, and what the
resource model would request for a component.

Owns the computation only: returns plain JSON-friendly dicts. Must not format for a
terminal, import rayflow.cli or rayflow.server, nor import ray.
"""

from __future__ import annotations

import os
from typing import Any

from rayflow.core.errors import ConfigError


def cache_stats(service: Any, limit: int) -> dict[str, Any]:
    """Hits, misses and hit ratio of the newest ``limit`` runs (from the run store), the
    hits by tier, and what each tier of the opened cache holds now."""
    runs = [r for r in service.list_runs(limit=limit) if isinstance(r.summary.get("cache"), dict)]
    hits = sum(r.summary["cache"].get("hits", 0) for r in runs)
    misses = sum(r.summary["cache"].get("misses", 0) for r in runs)
    by_tier: dict[str, int] = {}
    for r in runs:
        for tier, n in (r.summary["cache"].get("hits_by_tier") or {}).items():
            by_tier[tier] = by_tier.get(tier, 0) + n
    opened = service.cache()
    tiers = {name: {**opened.stats()["tiers"].get(name, {}), **usage} for name, usage in opened.usage().items()}
    return {"runs": len(runs), "hits": hits, "misses": misses,
            "hit_ratio": hits / (hits + misses) if hits + misses else None, "hits_by_tier": by_tier, "tiers": tiers}


def sizing_preview(service: Any, component: str) -> list[dict[str, Any]]:
    """For each component family matching ``component`` ("module:function", or a part of
    it): the model's prediction, the request it would make, and why. ConfigError when
    no component of the run history matches."""
    from rayflow.predict import history

    model = service.resource_model(required=True)
    samples = history.samples_from_store(service.store)
    retrained = len(samples) > (getattr(model, "n_samples", 0) or 0)
    if retrained:   # the history holds attempts the model never saw: learn them now (and save it)
        model = service.train_model()
    families = sorted({s.component for s in samples})
    matches = [f for f in families if f == component] or [f for f in families if component in f]
    if not matches:
        raise ConfigError(f"no component matching {component!r} in the run history; known: "
                          f"{', '.join(families[:20]) or 'none'}")
    typical = history.typical_inputs(samples)
    cluster = service.cluster("ray") if service.settings.address else None
    return [{**_preview(model, [s for s in samples if s.component == family][-1], typical.get(family, 0), cluster),
             "retrained": retrained, "history_samples": sum(s.component == family for s in samples)}
            for family in matches]


def _preview(model: Any, last: Any, input_bytes: int, cluster: Any) -> dict[str, Any]:
    from rayflow.predict.features import Sample
    from rayflow.predict.sizing import Declared, size

    probe = Sample(component=last.component, fingerprint=last.fingerprint, config=last.config,
                   input_bytes=input_bytes, n_upstreams=last.n_upstreams)
    p = model.predict(probe)
    sizing = size(p, Declared(num_cpus=last.num_cpus, memory=last.memory),
                  cluster.largest("CPU") if cluster else float(os.cpu_count() or 1),
                  int(cluster.largest("memory")) if cluster else 2**62)
    return {"component": last.component, "prediction": p.to_dict(),
            "request": {"num_cpus": sizing.num_cpus, "memory": sizing.memory}, "why": sizing.reason}

