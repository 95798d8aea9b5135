"""``{$secret: NAME}`` resolves where the component runs: its value reaches the database or
the web API, and never the run store, the events, the logs or Ray's task arguments."""

from __future__ import annotations

import pickle

import rayflow as rf
from tests.integration.connect.test_sql import put_secret
from tests.support.httpfaults import FaultServer

TOKEN = "tok-9f3c2a7e51d8b64c"


def test_a_secret_header_reaches_the_server_and_nothing_else(ray_session, service, store_url):
    put_secret("CONNECT_TEST_TOKEN", TOKEN)
    with FaultServer() as server:
        server.schedule("item", ("status", 404))   # the first attempt fails (a 404 is not retried)
        spec = rf.WorkflowSpec.model_validate({
            "name": "secret_header",
            "components": [
                {"id": "ids", "function": "tests.fns.connect:ids_of", "config": {"values": ["a/../b"]}},
                {"id": "items", "type": "http", "method": "GET", "url": server.url + "/item/{id}",
                 "headers": {"Authorization": {"$secret": "CONNECT_TEST_TOKEN"}}, "max_retries": 1,
                 "retry_exceptions": True},
            ],
            "connections": [{"from": "ids", "to": "items"}],
        })
        plan = rf.explain(spec)
        assert TOKEN not in repr(pickle.dumps(plan.tasks["items"].kwargs))   # only the name travels
        h = rf.submit(spec, executor="ray")
        assert h.wait(timeout=120) == "SUCCEEDED"
        seen = [r for r in server.log if r.route == "item"]
    assert h.metrics()["components"]["items"]["attempts"] == 2   # the failed attempt's error was checked too
    assert {r.headers.get("authorization") for r in seen} == {TOKEN}      # the value reached the API
    assert seen[-1].path.endswith("/item/a%2F..%2Fb")                     # one path segment
    text = repr(h.status()) + repr(h.metrics()) + h.logs("items", attempt=1) + h.logs("items")
    assert TOKEN not in text
    db = store_url.removeprefix("sqlite:///")
    assert TOKEN.encode() not in open(db, "rb").read()


def test_a_literal_token_in_a_spec_header_is_refused():
    import pytest

    with pytest.raises(rf.SpecError, match=r"component 'h' field 'headers.Authorization': a secret written"):
        rf.explain(rf.WorkflowSpec.model_validate({"components": [
            {"id": "h", "type": "http", "url": "http://127.0.0.1:1/x", "headers": {"Authorization": "Bearer x"}}]}))
