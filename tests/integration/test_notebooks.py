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

from notebooks import build_notebooks
from tests.helpers import REPO

NOTEBOOKS = REPO / "notebooks"
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
    assert stored == built, (f"notebooks/{name} differs from notebooks/build_notebooks.py: edit the "
                             "cells there and run `python notebooks/build_notebooks.py`")


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


def execute(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    """``name`` executed in a fresh kernel; raises CellExecutionError with the failing cell."""
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
    return nb


CHECKED_BELOW = {"arrow_pipeline.ipynb"}   # executed by its own test, which reads its outputs too


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [n for n in NAMES if n not in CHECKED_BELOW])
def test_executes(name, tmp_path):
    execute(name, tmp_path)


def streams(nb: nbformat.NotebookNode, name: str) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == name)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_arrow_pipeline_streams_gibs_to_the_right_aggregate_with_progress_to_the_total(tmp_path):
    """The notebook at its stored size (2 GiB, generated lazily): the aggregate matches its
    reference, every input row was reported through the last stage, and the bar got there
    (as text: ipywidgets is not a test dependency)."""
    from tqdm import tqdm

    nb = execute("arrow_pipeline.ipynb", tmp_path)
    line = next(x for x in streams(nb, "stdout").splitlines() if x.startswith('{"notebook": "arrow_pipeline"'))
    summary = json.loads(line)
    rows = int(summary["gib"] * 2**30) // 64
    assert summary["gib"] >= 2, "the suite runs the notebook at its multi-GB size"
    assert summary["rows_in"] == summary["progress_rows"] == summary["progress_total"] == rows
    assert summary["progress_batches"] == -(-rows // 131_072)
    assert summary["rows_kept"] == rows - -(-rows // 100)   # every 100th row is broken and dropped
    assert summary["matches_reference"] and summary["max_rel_error"] < 1e-9
    widgets = any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                  for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if not widgets:   # a text bar (no ipywidgets): the stream's rows, in its postfix, reached the total
        total = tqdm.format_sizeof(rows)
        assert f"partials={total}/{total} rows" in streams(nb, "stderr")
