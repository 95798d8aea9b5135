"""Fixtures for the durability tests: a folder per test for the ledger and gate files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.durability.fns import ledger_counts


class Ledger:
    """The test's folder: what ran (``counts``), and gates the components obey."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def counts(self) -> dict[str, int]:
        return ledger_counts(self.folder)

    def gate(self, kind: str, name: str, on: bool = True) -> None:
        path = self.folder / f"{kind}-{name}"
        if on:
            path.touch()
        else:
            path.unlink(missing_ok=True)


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    folder = tmp_path / "ledger"
    folder.mkdir()
    return Ledger(folder)
