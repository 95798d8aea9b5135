"""Connector components in a spec and in Python: what each becomes, and the one-line errors
of a wrong one (no database, no server, no Ray)."""

from __future__ import annotations

import os
import stat

import pytest

import rayflow as rf
from rayflow.connect import secrets
from rayflow.connect.sql.read import SqlQuery
from rayflow.spec.convert import to_blueprint


def spec_of(components, connections=(), inputs=None):
    return rf.WorkflowSpec.model_validate({"name": "c", "inputs": inputs or {}, "components": components,
                                           "connections": list(connections)})


def test_a_read_with_known_params_is_a_batch_source_that_can_head_a_stream():
    bp = to_blueprint(spec_of([{"id": "q", "type": "sql", "url": {"$secret": "DB"}, "query": "SELECT $1",
                                "params": [{"$input": "day"}], "batch_size": 10}], inputs={"day": "d1"}))
    call = bp.calls["q"]
    assert call.options.kind == "batch" and call.options.batch_size == 10
    (source,) = call.args
    assert isinstance(source, SqlQuery) and source.params == ("d1",) and source.url == {"$secret": "DB"}


def test_a_read_with_upstream_params_is_a_task():
    bp = to_blueprint(spec_of([{"id": "p", "function": "tests.fns.connect:params_of"},
                               {"id": "q", "type": "sql", "url": "sqlite:///x.db", "query": "SELECT ?"}],
                              [{"from": "p", "to": "q", "port": "params"}]))
    assert bp.calls["q"].options.kind == "task" and bp.calls["q"].deps == ("p",)


def test_a_write_is_a_batch_component_over_its_input():
    bp = to_blueprint(spec_of([{"id": "p", "function": "tests.fns.connect:params_of"},
                               {"id": "w", "type": "sql", "url": "sqlite:///x.db", "table": "t", "mode": "copy"}],
                              [{"from": "p", "to": "w"}]))
    assert bp.calls["w"].options.kind == "batch" and bp.calls["w"].kwargs["mode"] == "copy"


@pytest.mark.parametrize(("component", "match"), [
    ({"id": "q", "type": "sql", "url": "sqlite:///x.db", "function": "tests.fns.connect:params_of", "query": "x"},
     r"component 'q'.*runs no function"),
    ({"id": "q", "type": "sql", "query": "SELECT 1"}, r"component 'q' field 'url'"),
    ({"id": "q", "type": "sql", "url": "sqlite:///x.db", "query": "SELECT 1", "mode": "merge"},
     r"component 'q' field 'mode'"),
    ({"id": "q", "type": "sql", "url": "sqlite:///x.db", "query": "SELECT 1", "config": {"a": 1}},
     r"component 'q' field 'config'"),
    ({"id": "q", "type": "sql", "url": "mysql://root:pw@h/db", "query": "SELECT 1"}, r"field 'url'.*\{\$secret"),
    ({"id": "q", "type": "sql", "url": "sqlite:///x.db", "query": "SELECT * FROM {table}", "table": "a",
      "tables": ["b"]}, r"not one of the allowed tables"),
    ({"id": "h", "type": "http", "url": "http://{host}/x"}, r"component 'h' field 'url'.*never the scheme or host"),
    ({"id": "h", "type": "http", "url": "ftp://x/y"}, r"component 'h' field 'url'"),
    ({"id": "h", "type": "http", "url": "http://x/y", "params": {"api_key": "abc"}}, r"field 'params.api_key'"),
    ({"id": "h", "type": "http", "url": "http://x/y", "method": "FETCH"}, r"component 'h' field 'method'"),
    ({"id": "h", "type": "http", "url": "http://x/y", "rate_limit": {"per_second": 0}},
     r"component 'h' field 'rate_limit.per_second'"),
    ({"id": "p", "function": "tests.fns.connect:params_of", "method": "GET"}, r"component 'p' field 'method': unknown"),
])
def test_a_wrong_connector_is_refused_in_one_line(component, match):
    with pytest.raises(rf.SpecError, match=match) as err:
        to_blueprint(spec_of([component]))
    assert "\n" not in str(err.value) and "pw@" not in str(err.value)


def test_rf_sql_and_rf_http_build_nodes_inside_a_workflow():
    @rf.workflow
    def wf(day: str = "d"):
        rows = rf.sql(rf.secret("DB"), "SELECT * FROM t WHERE day = $1", params=[day], id="rows")
        scored = rf.http("POST", "http://127.0.0.1:1/score", rows, batch_size=50, stream=True, id="score")
        return rf.sql(rf.secret("DB"), table="out", mode="upsert", key=["id"], data=scored, id="out")

    plan = rf.explain(wf)
    assert plan.streams == (("rows", "score", "out"),)
    assert plan.tasks["rows"].args[0].url == secrets.Secret("DB")


def test_secrets_come_from_the_environment_then_the_file(tmp_path, monkeypatch):
    path = tmp_path / "secrets"
    path.write_text("# team secrets\nFROM_FILE='s3cret-file'\nexport BOTH=file\n")
    path.chmod(0o600)
    monkeypatch.setenv(secrets.SECRETS_FILE_VAR, str(path))
    monkeypatch.setenv("BOTH", "env")
    assert secrets.lookup("FROM_FILE") == "s3cret-file" and secrets.lookup("BOTH") == "env"
    with pytest.raises(secrets.SecretNotFound, match="secret 'NOPE' is not set"):
        secrets.lookup("NOPE")
    revealed = secrets.Revealed()
    assert revealed.reveal({"url": {"$secret": "FROM_FILE"}, "n": [1]}) == {"url": "s3cret-file", "n": [1]}
    assert revealed.scrub("failed: s3cret-file at host") == "failed: *** at host"
    path.chmod(0o644)
    with pytest.raises(rf.ConfigError, match="readable by others"):
        secrets.lookup("FROM_FILE")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    with pytest.raises(rf.ConfigError, match="secret name"):
        secrets.Secret("a-b")


def test_connectors_without_an_id_get_the_next_free_one_and_report_under_it():
    @rf.workflow
    def wf():
        a = rf.sql("sqlite:///x.db", "SELECT 1 AS n")
        b = rf.sql("sqlite:///x.db", "SELECT ? AS n", params=[a])
        return rf.http("POST", "http://127.0.0.1:1/score", b)

    plan = rf.explain(wf)
    assert set(plan.tasks) == {"sql", "sql_1", "http"}
    assert plan.tasks["sql"].args[0].component == "sql"          # the read's source names its node
    assert plan.tasks["sql_1"].kwargs["component"] == "sql_1"
    assert plan.tasks["http"].kwargs["component"] == "http"
