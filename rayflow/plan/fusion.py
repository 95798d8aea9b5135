"""Fusion: groups of tiny components that run inside one Ray task.

A Ray task costs the driver and the cluster about a millisecond whatever it does, so a
workflow of thousands of components that each take microseconds is bound by that cost.
Fusion runs a group of such components in one call, one after another, in one worker;
each member still has its own state, attempts, timings, timeout and retries.

A component is *fusible* when it says ``fuse=True``, or says nothing (``fuse=None``) and
its history predicts it takes under ``FUSE_AUTO_S`` (the plan's duration estimates);
``fuse=False`` forbids it. It must also be a plain task (``kind="task"``: not an actor
call nor a batch or stream stage), have no cache policy (a cache hit must be able to skip
it alone), no rayflow placement strategy and no ``sizing="auto"`` (both decide one
component's request at a time).

Groups, each listed in topological order:

- a *tree group* has a head ``h``: only ``h`` reads outputs from outside the group; every
  other member reads at least one member and only members (a chain, a fan-out under a
  head, a diamond). Once ``h``'s inputs exist the whole group can run in one call.
- a *source group* holds components that read nothing (independent leaves), cut into at
  least ``SOURCE_SPREAD`` parts when it has enough members, so the cluster's CPUs share them.

Members of a group ask for the same resources (num_cpus, num_gpus, memory, custom
resources): the call asks for that once. A group has at most ``FUSE_MAX`` members (a
longer chain becomes several groups), and at least two. A member whose output is read
outside its group, or is a workflow output, is one of the group's *exports*: the call
returns its output as its own object. Fusion applies only to runs without
``max_concurrency`` (the Ray executor then submits everything up front); the plan of a
run with a bound has no fused groups, and a member of a concurrency group with its own
``max_concurrency`` (rayflow.core.groups) is never fused. Pure; no Ray.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from rayflow.graph import Dag

FUSE_MAX = 1000        # members of one group, at most: a failure or a retry of the whole call costs this many
FUSE_AUTO_S = 0.005    # fuse=None: fusible when the predicted duration is under this many seconds
SOURCE_SPREAD = 8      # a source group of 2 * SOURCE_SPREAD or more members is cut into this many parts


def fusible(task: Any, estimate: float | None = None) -> bool:
    """Whether ``task`` (a plan Task) may run fused: asked for, or predicted tiny; and a plain
    task with nothing that must be decided for it alone."""
    o = task.options
    if o.fuse is False or (o.fuse is None and (estimate is None or estimate >= FUSE_AUTO_S)):
        return False
    return (o.kind == "task" and o.cache is None and task.cache_key is None
            and o.placement in (None, "ray") and o.sizing != "auto")


def signature(task: Any) -> tuple:
    """What a fused call asks Ray for: equal for every member of a group."""
    o = task.options
    return (o.num_cpus, o.num_gpus, o.memory, tuple(sorted(o.resources.items())))


def find_fused(tasks: Mapping[str, Any], dag: Dag, outputs: Collection[str],
               estimates: Mapping[str, float] | None = None,
               exclude: Collection[str] = ()) -> tuple[tuple[str, ...], ...]:
    """The fused groups of a plan: tree groups and source groups, each in topological
    order, ordered by their first member. ``exclude``: components never fused (members of
    a concurrency group with its own ``max_concurrency``)."""
    estimates = estimates or {}
    ok = {cid for cid in dag.nodes if cid not in exclude and fusible(tasks[cid], estimates.get(cid))}
    trees = _trees(tasks, dag, ok)
    alone = [g[0] for g in trees if len(g) == 1 and not dag.deps(g[0])]
    groups = [tuple(g) for g in trees if len(g) > 1] + _sources(tasks, alone)
    topo = {cid: i for i, cid in enumerate(dag.nodes)}
    return tuple(sorted(groups, key=lambda g: topo[g[0]]))


def _trees(tasks: Mapping[str, Any], dag: Dag, ok: set[str]) -> list[list[str]]:
    """Grow groups in topological order: a fusible component joins the group that holds all
    its upstreams (when it asks for the same resources and the group has room); otherwise
    it heads a group of its own."""
    group_of: dict[str, int] = {}
    groups: list[list[str]] = []
    sigs: list[tuple] = []
    by_options: dict[int, tuple] = {}   # components mostly share a few option objects
    for cid in dag.nodes:
        if cid not in ok:
            continue
        options = tasks[cid].options
        sig = by_options.get(id(options))
        if sig is None:
            sig = by_options[id(options)] = signature(tasks[cid])
        deps = dag.deps(cid)
        g = group_of.get(deps[0]) if deps else None
        if (g is not None and sigs[g] == sig and len(groups[g]) < FUSE_MAX
                and all(group_of.get(d) == g for d in deps[1:])):
            groups[g].append(cid)
            group_of[cid] = g
            continue
        group_of[cid] = len(groups)
        groups.append([cid])
        sigs.append(sig)
    return groups


def _sources(tasks: Mapping[str, Any], leaves: list[str]) -> list[tuple[str, ...]]:
    """Fusible components that read nothing and head no bigger group, by resource request,
    cut into parts of at most FUSE_MAX (and into SOURCE_SPREAD parts when there are enough)."""
    by_sig: dict[tuple, list[str]] = {}
    for cid in leaves:
        by_sig.setdefault(signature(tasks[cid]), []).append(cid)
    out = []
    for members in by_sig.values():
        n = len(members)
        if n < 2:
            continue
        parts = max(-(-n // FUSE_MAX), min(SOURCE_SPREAD, n // 2))
        size, extra = divmod(n, parts)
        start = 0
        for i in range(parts):
            end = start + size + (1 if i < extra else 0)
            out.append(tuple(members[start:end]))
            start = end
    return out


def exports(group: tuple[str, ...], dag: Dag, outputs: Collection[str]) -> tuple[str, ...]:
    """The members whose output leaves the group: read outside it, or a workflow output."""
    inside = set(group)
    return tuple(m for m in group if m in outputs or any(c not in inside for c in dag.children(m)))


def without(fused: tuple[tuple[str, ...], ...], ids: Collection[str]) -> tuple[tuple[str, ...], ...]:
    """The groups none of whose members is in ``ids`` (a resumed run restores some
    components from checkpoints: the groups holding one run unfused)."""
    if not ids:
        return fused
    return tuple(g for g in fused if not any(m in ids for m in g))
