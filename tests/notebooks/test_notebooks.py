"""The example notebooks: stored clean, in step with their generator, and executing end to end.

Each notebook runs in a fresh IPython kernel of this interpreter (a kernelspec written to
a temporary directory, so a user-level ``python3`` kernel pointing elsewhere is never
picked up). The notebooks start their own local Ray in the kernel and assert what they
show, so a behaviour change fails here with the failing cell's traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

from tests.notebooks import build_notebooks

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = sorted(build_notebooks.NOTEBOOK_CELLS)
KERNEL = "rayflow-tests"
CELL_TIMEOUT_S = 300


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name):
    nb = read(name)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{name} cell {i} has an execution count"


@pytest.mark.parametrize("name", NAMES)
def test_in_step_with_the_generator(name):
    stored = [(c.cell_type, c.source) for c in read(name).cells]
    built = [(c.cell_type, c.source) for c in build_notebooks.build(build_notebooks.NOTEBOOK_CELLS[name]).cells]
    assert stored == built, (f"notebooks/{name} differs from tests/notebooks/build_notebooks.py: edit the "
                             "cells there and run `python tests/notebooks/build_notebooks.py`")


def kernel_manager(tmp_path: Path):
    """A KernelManager for this interpreter, via a kernelspec only it can see."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels = tmp_path / "kernels"
    (kernels / KERNEL).mkdir(parents=True)
    (kernels / KERNEL / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor} (rayflow tests)",
        "language": "python",
    }))
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", NAMES)
def test_executes(name, tmp_path):
    from nbclient import NotebookClient

    nb = read(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_STORE")}
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"   # quiet a debugger warning in fresh kernels
    client = NotebookClient(nb, km=kernel_manager(tmp_path), timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(workdir)}}, shutdown_kernel="graceful")
    client.execute(env=env)   # raises CellExecutionError, with the cell and its traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
