"""``rayflow stats``, ``rayflow cache stats|clear`` and ``rayflow predict train|show``:
what the store, the cache and the resource model know across runs.

Each command parses its options, calls the service (``rayflow.service.insight`` and the
cache and model behind it) and formats; nothing is computed here. These commands read
this machine's store and cache, so ``--server`` does not apply to them.
"""

from __future__ import annotations

import json

import click

from rayflow.cli import render
from rayflow.cli.common import configure, guard, json_opt, service, status_opt, store_opt


@click.command()
@click.option("--limit", default=100, show_default=True, help="The newest this many runs.")
@click.option("--name", metavar="WORKFLOW", help="Only runs of this workflow.")
@status_opt
@store_opt
@json_opt
@guard
def stats(limit: int, name: str | None, status_filter: str | None, store: str | None, as_json: bool) -> None:
    """Metrics across runs: throughput, latency and queue wait, errors, and per component the
    CPU and memory requested against what was used."""
    data = configure(store, None).stats(limit=limit, name=name, status=status_filter.upper() if status_filter else None)
    if as_json:
        click.echo(json.dumps(data, default=str))
        return
    render.print_stats(render.console(), data)


@click.group()
def cache() -> None:
    """The result cache: statistics and clearing (tiers from $RAYFLOW_CACHE or --cache)."""


cache_opt = click.option("--cache", "cache_url", metavar="URLS",   # unset: the service reads $RAYFLOW_CACHE
                         help="Cache tiers, comma-separated top-down (default $RAYFLOW_CACHE or memory://).")


@cache.command("stats")
@cache_opt
@store_opt
@click.option("--limit", default=1000, show_default=True, help="Sum the lookups of this many newest runs.")
@json_opt
@guard
def cache_stats(cache_url: str | None, store: str | None, limit: int, as_json: bool) -> None:
    """Hits, misses and hit ratio of recent runs (from the run store), and what each tier
    holds now (entries, bytes; evictions and errors as this process sees them)."""
    svc = service()
    svc.configure(store=store, cache=cache_url)
    out = svc.cache_stats(limit)
    runs, hits, misses, by_tier, tiers = out["runs"], out["hits"], out["misses"], out["hits_by_tier"], out["tiers"]
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    ratio = "-" if out["hit_ratio"] is None else f"{out['hit_ratio']:.1%}"
    click.echo(f"{runs} runs with cached components: {hits} hits, {misses} misses, hit ratio {ratio}")
    table = render.Table(title="Cache tiers")
    for col in ("tier", "hits (runs)", "entries", "bytes", "evictions", "errors", "state"):
        table.add_column(col, no_wrap=True)
    for name, t in tiers.items():
        table.add_row(name, str(by_tier.get(name, 0)), str(t.get("entries", "-")), str(t.get("bytes", "-")),
                      str(t.get("evictions", 0)), str(t.get("errors", 0)), str(t.get("breaker", "ok")))
    render.console().print(table)


@cache.command("clear")
@cache_opt
@click.option("--component", metavar="ID", help="Only this component's entries.")
@guard
def cache_clear(cache_url: str | None, component: str | None) -> None:
    """Remove cached results from every tier (or only one component's)."""
    svc = service()
    svc.configure(cache=cache_url)
    removed = svc.cache().clear(component=component)
    click.echo(", ".join(f"{tier}: {n} removed" for tier, n in removed.items()) or "no cache tiers")


@click.group()
def predict() -> None:
    """The resource model: train it from run history, and see what it would request."""


@predict.command("train")
@store_opt
@guard
def predict_train(store: str | None) -> None:
    """Train the model from the store's recent runs and save it in that store (one model per
    store: a team's shared store shares it)."""
    svc = configure(store, None)
    model = svc.train_model()
    where = (f"saved in the run store {svc.store.url}" if model.components()
             else "not saved: no component has 5 samples yet, so the rules answer for all")
    click.echo(f"trained on {model.n_samples} attempts; the model answers for {len(model.components())} "
               f"components (the rules for the others, under 5 samples); {where}")


@predict.command("show")
@click.argument("component", metavar="COMPONENT")
@store_opt
@json_opt
@guard
def predict_show(component: str, store: str | None, as_json: bool) -> None:
    """What COMPONENT ("module:function", or a part of it) would request, and why."""
    out = configure(store, None).sizing_preview(component)
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    for item in out:
        p = item["prediction"]
        if item.get("retrained"):
            click.echo(f"(the model was trained now: the store held attempts it had not seen; "
                       f"{item['history_samples']} of {item['component']})")
        click.echo(f"{item['component']}: from the {p['source']} ({p['n_samples']} samples) "
                   f"duration p50 {p['duration_p50']:.3g}s p90 {p['duration_p90']:.3g}s, "
                   f"memory p90 {render._mib(p['memory_p90'])}, cores p90 {p['cpu_util_p90']:.2f}")
        click.echo(f"  would request num_cpus={item['request']['num_cpus']:g}, "
                   f"memory={render._mib(item['request']['memory'])}: {item['why']}")


COMMANDS = (stats, cache, predict)
