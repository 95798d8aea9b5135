"""Code that lives beside a spec, not in an installed package.

Owns the folders rayflow puts on ``sys.path`` so that a spec's ``function: mymod:fn`` (or a
``mymod:workflow`` target) imports as it would beside a script, and which imported modules
came from a spec's folder (``shipped``): the Ray executor sends those by value with the
calls that use them (``cloudpickle.register_pickle_by_value``), so workers on any machine
run them without the folder. The current folder is only put on the path: Ray already
gives it to the workers of a local cluster, and ``ray job submit`` uploads it. Pure: no ray.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

_ship: list[str] = []   # spec folders that were not importable before rayflow added them


def add_dir(path: str, *, ship: bool = False) -> None:
    """Put ``path`` on ``sys.path`` (once); ``ship``: its modules travel with the calls."""
    path = os.path.abspath(path)
    if path in sys.path or (path == os.getcwd() and "" in sys.path):
        return   # importable already, as everywhere else it is
    sys.path.insert(0, path)
    if ship and path not in _ship:
        _ship.append(path)


def shipped() -> list[ModuleType]:
    """The imported modules whose file lies in a spec folder rayflow added."""
    if not _ship:
        return []
    roots = tuple(d.rstrip(os.sep) + os.sep for d in _ship)
    return [m for m in list(sys.modules.values())
            if (getattr(m, "__file__", None) or "").startswith(roots) and not m.__name__.startswith("rayflow")]
