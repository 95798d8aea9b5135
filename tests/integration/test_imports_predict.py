"""rayflow.predict imports no ray anywhere, and scikit-learn only in model.py (lazily)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import REPO

ROOT = REPO
IMPORT = re.compile(r"^\s*(?:import|from)\s+(ray|sklearn)\b", re.MULTILINE)


def test_only_model_imports_sklearn_and_nothing_imports_ray():
    found = {(path.name, m) for path in (ROOT / "rayflow" / "predict").glob("*.py")
             for m in IMPORT.findall(path.read_text())}
    assert found and found <= {("model.py", "sklearn")}


def test_importing_the_package_loads_neither_sklearn_nor_ray():
    code = "import sys, rayflow.predict; print(sorted(m for m in ('sklearn', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]"
