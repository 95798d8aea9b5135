"""Fails on any import cycle among rayflow's modules, deferred imports included.

grimp (import-linter's graph builder) reads every import statement of the package,
those inside functions too, so a cycle held open by a deferred import counts. A
package's ``__init__`` re-exporting its own submodules is not a design cycle: loops
that pass only through one package's ``__init__`` and its own submodules are left out,
and so is the top-level ``rayflow/__init__.py`` (the public facade: it imports the front
ends, and no module of the package may import it). Prints each cycle as
``a -> b -> a`` and exits 1 when there is one. Usage: ``python tools/check_imports.py``.
"""

from __future__ import annotations

import sys

import grimp


def strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Tarjan's algorithm over the import graph, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def is_package_reexport(graph: grimp.ImportGraph, component: list[str]) -> bool:
    """A loop made only by a package __init__ and its own submodules importing it back."""
    packages = [m for m in component if graph.find_children(m)]
    if len(packages) != 1:
        return False
    package = packages[0]
    return all(m == package or m.startswith(package + ".") for m in component)


def cycle_path(graph: grimp.ImportGraph, component: list[str]) -> str:
    first = component[0]
    for other in component[1:]:
        back = graph.find_shortest_chain(importer=other, imported=first)
        there = graph.find_shortest_chain(importer=first, imported=other)
        if back and there:
            return " -> ".join(list(there) + list(back[1:]))
    return " <-> ".join(component)


def find_cycles(package: str = "rayflow") -> list[str]:
    """Each import cycle among ``package``'s modules, as ``a -> b -> a``."""
    graph = grimp.build_graph(package, include_external_packages=False)
    modules = set(graph.modules) - {package}   # the public facade imports everything; nothing imports it back
    cycles = [c for c in strongly_connected(graph, modules) if not is_package_reexport(graph, c)]
    return [cycle_path(graph, c) for c in cycles]


def main() -> int:
    cycles = find_cycles(sys.argv[1] if len(sys.argv) > 1 else "rayflow")
    for cycle in cycles:
        print(f"import cycle: {cycle}")
    print(f"import cycles among rayflow modules: {len(cycles)}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
