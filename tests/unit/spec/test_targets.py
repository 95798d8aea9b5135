"""What a run records as its target, so another process can rebuild it."""

from __future__ import annotations

import shutil

from rayflow.spec.targets import RAY_JOB_ENV, load_target
from tests.helpers import REPO

EXAMPLE = REPO / "rayflow" / "examples" / "etl.yaml"


def test_a_spec_path_is_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.delenv(RAY_JOB_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLE, tmp_path / "etl.yaml")
    _, target = load_target("etl.yaml")
    assert target == str((tmp_path / "etl.yaml").resolve())


def test_in_a_ray_job_a_spec_path_is_recorded_relative_to_the_jobs_working_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(RAY_JOB_ENV, "{}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "specs" / "etl.yaml")
    _, target = load_target("specs/etl.yaml")
    assert target == "specs/etl.yaml"
    _, outside = load_target(str(EXAMPLE))   # a file outside the working dir stays absolute
    assert outside == str(EXAMPLE)
