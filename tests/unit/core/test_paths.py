"""Names built from ids stay one safe path part; run ids are checked where they enter."""

from __future__ import annotations

import pytest

from rayflow.core.errors import SpecError
from rayflow.core.paths import check_run_id, from_path_name, path_name

HOSTILE = ["..", ".", "", "/", "../../etc", "a/../..", "\\..\\", "\0", ".hidden", ".tmp-1", "\udcff", "x" * 500, "~"]


@pytest.mark.parametrize("part", HOSTILE)
def test_path_name_is_one_plain_name(part: str) -> None:
    name = path_name(part)
    assert name not in ("", ".", "..")
    assert "/" not in name and "\\" not in name and "\0" not in name
    assert not name.startswith(".")
    assert len(name) <= 200


@pytest.mark.parametrize("part", [p for p in HOSTILE if len(p) < 100] + ["a.b", "etl-2026", "a:b"])
def test_path_name_round_trips(part: str) -> None:
    assert from_path_name(path_name(part)) == part


def test_ordinary_names_are_unchanged() -> None:
    assert path_name("etl-20261202-abcdef") == "etl-20261202-abcdef"
    assert path_name("load_csv.v2") == "load_csv.v2"


@pytest.mark.parametrize("run_id", ["..", ".", "", "a/b", "-x", "a.", "x" * 129, "a b", "é", "a\n"])
def test_bad_run_ids_are_refused_in_one_line(run_id: str) -> None:
    with pytest.raises(SpecError) as info:
        check_run_id(run_id)
    assert "\n" not in str(info.value) and "run id" in str(info.value)


@pytest.mark.parametrize("run_id", ["a", "etl-20261202-093000-0a1b2c3d4e5f", "A.b_c-1", "x" * 128])
def test_good_run_ids_pass(run_id: str) -> None:
    assert check_run_id(run_id) == run_id
