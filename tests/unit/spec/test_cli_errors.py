"""The CLI's exit codes for what the user gave or the state of a run (issue 15 item 12):
a hostile spec, a run id taken by another run, a run that cannot be resumed, a busy
run: one line on stderr, exit 2. In process (click's CliRunner), the local executor,
a real SQLite store; no Ray."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rayflow.cli.common import EXIT_USAGE, guard
from rayflow.cli.main import cli
from rayflow.core.errors import RunBusy
from rayflow.store.port import RunRecord
from rayflow.store.urls import open_store

TINY = "components:\n  - id: one\n    function: tests.fns.basic:source\n"


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def test_a_run_id_taken_by_another_run_exits_2(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    other = tmp_path / "other.yaml"
    other.write_text(TINY.replace("id: one", "id: two"))
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    first = invoke("run", str(spec), "--executor", "local", "--run-id", "taken", "--store", store, "-q")
    assert first.exit_code == 0, first.output
    again = invoke("run", str(other), "--executor", "local", "--run-id", "taken", "--store", store, "-q")
    assert again.exit_code == EXIT_USAGE, again.output
    assert again.stderr.startswith("error: run taken already exists") and again.stderr.count("\n") == 1


def test_a_run_that_cannot_be_resumed_exits_2(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_store(url)
    store.insert_run(RunRecord(run_id="kept-repr", name="w", status="FAILED", target="tests.fns.basic:nothing",
                               inputs={"model": {"$not_json": "<object at 0x1>"}}))
    store.close()
    result = invoke("resume", "kept-repr", "--store", url)
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.startswith("error: run kept-repr cannot be resumed: its input 'model' was not a JSON value")
    assert result.stderr.count("\n") == 1


def test_a_busy_run_exits_2():
    @guard
    def resume_a_driven_run() -> None:
        raise RunBusy("run r1 is driven by host:1 (last heartbeat 1 s ago)\nsecond line", run_id="r1")

    with pytest.raises(SystemExit) as info:
        resume_a_driven_run()
    assert info.value.code == EXIT_USAGE


@pytest.mark.parametrize("text", ["components: [{id: x, type: actr}]\n",
                                  "a: &a [*a]\ncomponents: [{id: x}]\n",
                                  "components: [{id: x, config: {v: " + "[" * 5000 + "]" * 5000 + "}}]\n"])
def test_explain_of_a_hostile_spec_exits_2_with_one_line(tmp_path, text):
    spec = tmp_path / "hostile.yaml"
    spec.write_text(text)
    result = invoke("explain", str(spec))
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_explain_of_a_file_that_is_not_utf8_exits_2(tmp_path):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"components: [{id: caf\xe9}]\n")
    result = invoke("explain", str(spec))
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == f"error: spec file {str(spec)!r} is not UTF-8: byte 0xe9 at offset 21 " \
                            "(invalid continuation byte); save it as UTF-8\n"
