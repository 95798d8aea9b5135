"""Whatever an id holds, rayflow's files stay under their roots (issue 15 items 1, 8, 16)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rayflow.cache.files import FileTier
from rayflow.cli.main import cli
from rayflow.core.errors import SpecError
from rayflow.plan.fingerprints import entry_key
from rayflow.store.checkpoints import CheckpointStore


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("component", ["..", ".", "../..", "a/../.."])
def test_cache_clear_of_a_dotted_component_deletes_nothing_outside(tmp_path: Path, component: str) -> None:
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    (home / "signing.key").write_text("k" * 64)
    (home / "runs.db").write_text("db")
    tier = FileTier(str(home / "cache"))
    tier.put(entry_key("real", "ab" * 32), b"entry")
    tier.put(entry_key(component, "cd" * 32), b"dotted")
    assert _tree(home) >= {"signing.key", "runs.db"}
    assert all(p.startswith("cache/") for p in _tree(home) - {"signing.key", "runs.db"})
    result = CliRunner().invoke(cli, ["cache", "clear", "--cache", f"file://{home / 'cache'}", "--component", component])
    assert result.exit_code == 0, result.output
    assert (home / "signing.key").exists() and (home / "runs.db").exists()
    assert tier.get(entry_key("real", "ab" * 32)) == b"entry"
    assert tier.get(entry_key(component, "cd" * 32)) is None


@pytest.mark.parametrize("run_id", ["..", "../x", ".", "a/b"])
def test_checkpoints_of_any_run_id_stay_under_the_root(tmp_path: Path, run_id: str) -> None:
    root = tmp_path / "ckpt"
    store = CheckpointStore(str(root))
    store.write_one(run_id, "..", {"v": 1})
    store.write_one(run_id, "c.tmp-1", {"v": 2})
    assert {p.parent.parent.parent for p in root.rglob("*.rfc")} == {root}
    assert set(store.index(run_id)) == {"..", "c.tmp-1"}
    store.delete_run(run_id)
    assert root.exists() and not list(root.rglob("*.rfc"))


def test_rf_submit_refuses_a_path_like_run_id(service) -> None:
    import rayflow as rf
    from tests.fns.basic import double

    with pytest.raises(SpecError, match="not a valid run id"):
        rf.submit(rf.workflow(name="w")(lambda: double(2)), executor="local", run_id="..")


def test_cli_submit_refuses_a_path_like_run_id(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["submit", "rayflow.examples.etl:pipeline", "--run-id", "../../x",
                                      "--store", f"sqlite:///{tmp_path / 'r.db'}"])
    assert result.exit_code == 2, result.output
    assert "not a valid run id" in result.output


def test_the_suite_never_writes_into_the_developers_home() -> None:
    import tempfile

    home = Path(os.environ["RAYFLOW_HOME"])
    assert home.name.startswith("rayflow-tests-") and home.parent == Path(tempfile.gettempdir())
    assert Path(os.environ["RAYFLOW_CHECKPOINTS"]).parent == home
