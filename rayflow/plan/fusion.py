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

Groups are made in three steps, whatever the shape (chains, wide fans, tree reduces,
layered DAGs):

1. *trees*: in topological order, a fusible component joins the tree that holds all its
   upstreams (a chain, a fan-out under one head, a diamond); otherwise it heads a tree.
   Only a tree's head reads from outside it.
2. *absorbing*: a tree whose head reads only members of one group joins that group (the
   reducers of a tree reduce join the group of the leaves they reduce).

   In both, a member (step 1) or tree (step 2) predicted to take ``FUSE_SPREAD_S`` or
   more does not join work it could run beside -- a sibling under the same upstream --
   since a group runs its members one after another: it follows a chain or a join, or
   starts a tree of its own for step 3 to spread.
3. *packing*: the other trees are packed into groups by *level* (the longest path from a
   source to the head), resource request and the set of raising inputs (below), in
   topological order, balanced by predicted work, and spread over at least
   ``FUSE_SPREAD`` groups when each gets ``FUSE_SPREAD_S`` of work or more, so the
   cluster's CPUs share them.

Sizes follow the predicted durations (the plan's estimates; ``FUSE_MEMBER_S`` for a member
without one): trees and packed groups hold up to half of ``FUSE_CALL_S`` of work and of
``FUSE_MAX`` members, which leaves absorbing the other half (a tree reduce's reducers
double its leaves).

Why this is safe. A call reads its inputs from outside only into heads of the level it was
packed at, and every input comes from a lower level, so the groups never wait on each other
in a cycle. When a component that is not fused fails, Ray fails every call reading its
output before the call runs, and that call's outputs with it; a fused member's failure
does not (its output travels as a marker that fails only its readers). So trees are
packed together only when the same such components (*raising*: an unfused input, or the
raising components of the group an input comes from) stand behind each: such a failure
stops exactly the members that descend from it. A call that fails as a whole (a worker
crash) fails every member, and the calls reading its outputs.

Members of a group ask for the same resources (num_cpus, num_gpus, memory, custom
resources): the call asks for that once. A group has at most ``FUSE_MAX`` members, and at
least two; each is listed in topological order, and its first member is its *head*: the
run submits the group's call when it submits the head, with every input from outside the
group (``call_inputs``), after every component those inputs come from, and its other
members after it (``waits``). A member whose output is read outside its group, or is a
workflow output, is one of the group's *exports*: the call returns its output as its own
object. Fusion applies only to runs without ``max_concurrency`` (the Ray executor then
submits everything up front); the plan of a run with a bound has no fused groups, and a
member of a concurrency group with its own ``max_concurrency`` (rayflow.core.groups) is
never fused. Pure; no Ray.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from rayflow.graph import Dag

FUSE_MAX = 2000        # members of one group, at most: a failure or a retry of the whole call costs this many
FUSE_CALL_S = 0.5      # a group is predicted to work this long at most (seconds)
FUSE_MEMBER_S = 2e-4   # what a fusible member with no estimate is assumed to take (seconds)
FUSE_SPREAD = 8        # a level's trees are spread over at least this many groups ...
FUSE_SPREAD_S = 0.01   # ... each predicted to work at least this long (seconds), when there is enough
FUSE_AUTO_S = 0.005    # fuse=None: fusible when the predicted duration is under this many seconds


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
    """The fused groups of a plan (module doc), each in topological order, ordered by their
    first member. ``exclude``: components never fused (members of a concurrency group with
    its own ``max_concurrency``)."""
    estimates = estimates or {}
    ok = {cid for cid in dag.nodes if cid not in exclude and fusible(tasks[cid], estimates.get(cid))}
    if not ok:
        return ()
    sig_of = _signatures(tasks, ok)
    cost = {cid: estimates.get(cid, FUSE_MEMBER_S) for cid in ok}
    trees = _trees(dag, ok, sig_of, cost)
    groups = _Packing(dag, sig_of, cost).pack(trees)
    topo = {cid: i for i, cid in enumerate(dag.nodes)}
    out = [tuple(sorted(g, key=topo.__getitem__)) for g in groups if len(g) > 1]
    return tuple(sorted(out, key=lambda g: topo[g[0]]))


def _signatures(tasks: Mapping[str, Any], ok: set[str]) -> dict[str, tuple]:
    by_options: dict[int, tuple] = {}   # components mostly share a few option objects
    out = {}
    for cid in ok:
        options = tasks[cid].options
        sig = by_options.get(id(options))
        if sig is None:
            sig = by_options[id(options)] = signature(tasks[cid])
        out[cid] = sig
    return out


def _trees(dag: Dag, ok: set[str], sig_of: Mapping[str, tuple], cost: Mapping[str, float]) -> list[list[str]]:
    """Step 1, in topological order: a fusible component joins the tree that holds all its
    upstreams (when it asks for the same resources and the tree has room); otherwise it
    heads a tree of its own."""
    tree_of: dict[str, int] = {}
    trees: list[list[str]] = []
    work: list[float] = []
    followed: set[str] = set()   # members a child already follows in their tree
    cap, budget = max(1, FUSE_MAX // 2), FUSE_CALL_S / 2
    for cid in dag.nodes:
        if cid not in ok:
            continue
        deps = dag.deps(cid)
        t = tree_of.get(deps[0]) if deps else None
        if (t is not None and sig_of[trees[t][0]] == sig_of[cid] and len(trees[t]) < cap
                and work[t] + cost[cid] <= budget and all(tree_of.get(d) == t for d in deps[1:])
                and not (cost[cid] >= FUSE_SPREAD_S and any(d in followed for d in deps))):
            trees[t].append(cid)
            work[t] += cost[cid]
            tree_of[cid] = t
            followed.update(deps)
            continue
        tree_of[cid] = len(trees)
        trees.append([cid])
        work.append(cost[cid])
    return trees


class _Packing:
    """Steps 2 and 3 (module doc), level by level: groups are lists of members; a tree joins
    one whole."""

    def __init__(self, dag: Dag, sig_of: Mapping[str, tuple], cost: Mapping[str, float]) -> None:
        self.dag, self.sig_of, self.cost = dag, sig_of, cost
        self.level: dict[str, int] = {}
        for cid in dag.nodes:
            deps = dag.deps(cid)
            self.level[cid] = 1 + max(self.level[d] for d in deps) if deps else 0
        self.groups: list[list[str]] = []
        self.work: list[float] = []             # per group: its predicted seconds
        self.group_of: dict[str, int] = {}
        self.roots: list[frozenset[str]] = []   # per group: what its heads' _raising gave

    def pack(self, trees: list[list[str]]) -> list[list[str]]:
        by_level: dict[int, list[list[str]]] = {}
        for tree in trees:
            by_level.setdefault(self.level[tree[0]], []).append(tree)
        for level in sorted(by_level):
            left = [tree for tree in by_level[level] if not self._absorbed(tree)]
            keyed: dict[tuple, list[list[str]]] = {}
            for tree in left:   # after this level's absorbing, so lower groups are as big as they get here
                keyed.setdefault((self.sig_of[tree[0]], self._raising(tree[0])), []).append(tree)
            for (_, roots), same in keyed.items():
                self._pack_level(same, roots)
        return self.groups

    def _absorbed(self, tree: list[str]) -> bool:
        """Step 2: the tree joins the one group its head reads from, if it has room."""
        deps = self.dag.deps(tree[0])
        g = self.group_of.get(deps[0]) if deps else None
        if (g is None or any(self.group_of.get(d) != g for d in deps[1:])
                or self.sig_of[self.groups[g][0]] != self.sig_of[tree[0]]
                or len(self.groups[g]) + len(tree) > FUSE_MAX
                or self.work[g] + sum(self.cost[m] for m in tree) > FUSE_CALL_S
                or self._beside(tree, g)):
            return False
        self._add(g, tree)
        return True

    def _beside(self, tree: list[str], g: int) -> bool:
        """Whether absorbing ``tree`` into group ``g`` would run it after work it could run
        beside (a sibling of its head in ``g``), and it is long enough to be worth a call."""
        if sum(self.cost[m] for m in tree) < FUSE_SPREAD_S:
            return False
        head, group_of = tree[0], self.group_of
        return any(c != head and group_of.get(c) == g for d in self.dag.deps(head) for c in self.dag.children(d))

    def _raising(self, head: str) -> frozenset[str]:
        """The components whose failure fails a call reading what the head reads: each input
        that is not a fused group's output, and for an input from a group, that group's
        (Ray fails a call one of whose arguments raised, and the call's outputs with it). A
        group of one member now may grow later: counted as raising, which only keeps trees
        apart."""
        group_of, groups, roots = self.group_of, self.groups, self.roots
        out: set[str] = set()
        for d in self.dag.deps(head):
            g = group_of.get(d)
            if g is None or len(groups[g]) < 2:
                out.add(d)
            else:
                out |= roots[g]
        return frozenset(out)

    def _pack_level(self, trees: list[list[str]], roots: frozenset[str]) -> None:
        """Step 3: consecutive trees into groups, balanced by predicted work."""
        cost = self.cost
        weights = [sum(cost[m] for m in tree) for tree in trees]
        total = sum(weights) or 1.0
        members = sum(len(tree) for tree in trees)
        spread = min(FUSE_SPREAD, len(trees) // 2, int(total / FUSE_SPREAD_S))
        parts = max(1, -(-members // max(1, FUSE_MAX // 2)), int(-(-total // (FUSE_CALL_S / 2))), spread)
        parts = min(parts, len(trees))
        first = len(self.groups)
        for _ in range(parts):
            self.groups.append([])
            self.work.append(0.0)
            self.roots.append(roots)
        done = 0.0
        for tree, w in zip(trees, weights, strict=True):
            g = first + min(parts - 1, int((done + w / 2) * parts / total))
            done += w
            self._add(g, tree)

    def _add(self, g: int, tree: list[str]) -> None:
        self.groups[g].extend(tree)
        for m in tree:
            self.group_of[m] = g
            self.work[g] += self.cost[m]


def exports(group: tuple[str, ...], dag: Dag, outputs: Collection[str]) -> tuple[str, ...]:
    """The members whose output leaves the group: read outside it, or a workflow output."""
    inside = set(group)
    return tuple(m for m in group if m in outputs or any(c not in inside for c in dag.children(m)))


def call_inputs(group: tuple[str, ...], tasks: Mapping[str, Any]) -> tuple[tuple[str, int | None], ...]:
    """What a group's call is submitted with: every input of its members from outside the
    group (a component and which of its outputs, as in ``Task.inputs``), once each, in the
    order the members read them."""
    inside = set(group)
    seen: dict[tuple[str, int | None], None] = {}
    for m in group:
        for key in tasks[m].inputs:
            if key[0] not in inside:
                seen.setdefault(key, None)
    return tuple(seen)


def waits(fused: tuple[tuple[str, ...], ...], dag: Dag) -> dict[str, tuple[str, ...]]:
    """For eager submission, what each member must wait for beyond its own upstreams: the
    head, for every component the group reads from outside; every other member, for the head."""
    out: dict[str, tuple[str, ...]] = {}
    for group in fused:
        head, inside = group[0], set(group)
        own = set(dag.deps(head))
        outside = {d for m in group[1:] for d in dag.deps(m) if d not in inside and d not in own}
        if outside:
            out[head] = tuple(sorted(outside))
        for m in group[1:]:
            if head not in dag.deps(m):
                out[m] = (head,)
    return out


def without(fused: tuple[tuple[str, ...], ...], ids: Collection[str]) -> tuple[tuple[str, ...], ...]:
    """The groups none of whose members is in ``ids`` (a resumed run restores some
    components from checkpoints: the groups holding one run unfused)."""
    if not ids:
        return fused
    return tuple(g for g in fused if not any(m in ids for m in g))
