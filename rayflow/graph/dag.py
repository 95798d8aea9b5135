"""The frozen DAG: ids and their upstream ids, checked once on construction.

Owns structural validity (unknown ids, self-loops, cycles) and the topological
order. Knows nothing of functions, resources or execution; must not import ray.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from rayflow.core.errors import CycleError, SelfLoopError, UnknownComponentError


class Dag:
    """An immutable directed acyclic graph of component ids.

    ``deps`` maps every id to the tuple of its upstream ids (deduplicated, in
    first-use order). Construction raises a ``SpecError`` subclass naming the culprit.
    """

    __slots__ = ("_deps", "_children", "_order")

    def __init__(self, deps: Mapping[str, Iterable[str]]) -> None:
        frozen: dict[str, tuple[str, ...]] = {}
        for node, ups in deps.items():
            frozen[node] = tuple(dict.fromkeys(ups))
        _check_references(frozen)
        self._deps = MappingProxyType(frozen)
        self._order = _toposort(frozen)
        children: dict[str, list[str]] = {n: [] for n in frozen}
        for node in self._order:
            for up in frozen[node]:
                children[up].append(node)
        self._children = MappingProxyType({n: tuple(c) for n, c in children.items()})

    def __reduce__(self):
        return (Dag, (dict(self._deps),))

    def __len__(self) -> int:
        return len(self._deps)

    def __contains__(self, node: object) -> bool:
        return node in self._deps

    def __iter__(self):
        return iter(self._order)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every id, in topological order (upstream before downstream)."""
        return self._order

    def deps(self, node: str) -> tuple[str, ...]:
        return self._deps[node]

    def children(self, node: str) -> tuple[str, ...]:
        return self._children[node]

    def sources(self) -> tuple[str, ...]:
        return tuple(n for n in self._order if not self._deps[n])

    def sinks(self) -> tuple[str, ...]:
        return tuple(n for n in self._order if not self._children[n])

    def descendants(self, node: str) -> set[str]:
        """Every id reachable downstream of ``node`` (excluding it)."""
        seen: set[str] = set()
        stack = list(self._children[node])
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self._children[n])
        return seen

    def edge_count(self) -> int:
        return sum(len(d) for d in self._deps.values())


def _check_references(deps: Mapping[str, tuple[str, ...]]) -> None:
    for node, ups in deps.items():
        for up in ups:
            if up == node:
                raise SelfLoopError(f"component {node!r} is connected to itself", component=node)
            if up not in deps:
                raise UnknownComponentError(
                    f"component {node!r} depends on unknown component {up!r}", component=node
                )


def _toposort(deps: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A topological order: the given order when it already is one (a traced workflow
    always lists a node after its upstreams), else graphlib's."""
    seen: set[str] = set()
    for node, ups in deps.items():
        if not seen.issuperset(ups):
            break
        seen.add(node)
    else:
        return tuple(deps)
    sorter = graphlib.TopologicalSorter(deps)
    try:
        return tuple(sorter.static_order())
    except graphlib.CycleError as exc:
        # graphlib reports [a, b, ..., a] with each id an upstream of the next:
        # already data-flow order.
        cycle = list(exc.args[1])
        raise CycleError(cycle) from None
