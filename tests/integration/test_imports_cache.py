"""Where the cache's heavy dependencies may be imported (import-linter cannot see
``pyarrow.fs``: external packages are one node to it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

ROOT = REPO
PACKAGE = ROOT / "rayflow"


def importers(module: str, under: Path) -> set[str]:
    found = set()
    for path in under.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n == module or n.startswith(module + ".") for n in names):
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_redis_is_imported_by_the_redis_tier_alone() -> None:
    assert importers("redis", PACKAGE) == {"rayflow/cache/redis_tier.py"}


def test_pyarrow_fs_is_imported_by_the_file_tier_alone_within_the_cache() -> None:
    assert importers("pyarrow.fs", PACKAGE / "cache") == {"rayflow/cache/files.py"}


@pytest.mark.slow
def test_importing_the_cache_imports_neither_redis_nor_ray() -> None:
    code = "import sys, rayflow.cache; print(sorted(m for m in ('redis', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
