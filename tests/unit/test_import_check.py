"""The import-cycle check of CI (tools/check_imports.py) finds cycles, deferred ones too."""

from __future__ import annotations

import textwrap

from tools.check_imports import find_cycles


def _package(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_deferred_import_that_closes_a_loop_is_a_cycle(tmp_path, monkeypatch) -> None:
    _package(tmp_path, {
        "cyc1/__init__.py": "",
        "cyc1/a.py": "from cyc1 import b\n",
        "cyc1/b.py": "def f():\n    from cyc1 import a\n    return a\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    cycles = find_cycles("cyc1")
    assert len(cycles) == 1 and "cyc1.a" in cycles[0] and "cyc1.b" in cycles[0]


def test_a_package_reexporting_its_submodules_is_not_a_cycle(tmp_path, monkeypatch) -> None:
    _package(tmp_path, {
        "cyc2/__init__.py": "from cyc2.sub import thing\n",
        "cyc2/sub/__init__.py": "from cyc2.sub.impl import thing\n",
        "cyc2/sub/impl.py": "from cyc2.sub import helpers\nthing = 1\n",
        "cyc2/sub/helpers.py": "",
        "cyc2/other.py": "from cyc2.sub import thing\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    assert find_cycles("cyc2") == []


def test_rayflow_has_no_import_cycle() -> None:
    assert find_cycles("rayflow") == []
