"""Fixtures for the durability tests: a folder per test for the ledger and gate files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fns.durability import ledger_counts


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


STORES = ("sqlite", "postgresql")


@pytest.fixture(params=STORES)
def durable_svc(request, service, tmp_path):
    """The service on a fresh store of each durable kind (SQLite, PostgreSQL in a schema of
    the test's own) with checkpoints in the test's folder."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else service.store.url
    service.configure(store=url, checkpoints=str(tmp_path / "checkpoints"))
    yield service
    service.flush()
    service.configure(store=f"sqlite:///{tmp_path / 'after.db'}", checkpoints="")


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    folder = tmp_path / "ledger"
    folder.mkdir()
    return Ledger(folder)
