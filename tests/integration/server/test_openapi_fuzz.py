"""Property tests of the HTTP API against its own OpenAPI schema (schemathesis): for every
operation, generated requests never get a 5xx, and every answer (status, content type,
body) is one the schema documents. Once with token auth (an admin token) and once with
auth none, over the real control plane (local executor, SQLite)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest
import schemathesis
import schemathesis.wfc.escalation  # noqa: F401 - loaded at collection (see below)
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rayflow.server import tokens
from rayflow.server.http.limits import Limits
from rayflow.server.main import build

# schemathesis imports schemathesis.wfc.escalation lazily, in the first call; pytest's
# assertion rewriting then parsed it deep in Hypothesis's stack, where CPython 3.11.7's
# AST check failed once ("AST constructor recursion depth mismatch", a SystemError)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)


class _Api:
    """A built server and its schema, loaded at import: schemathesis parametrizes at collection
    (its lazy ``from_fixture`` schemas fail under pytest 9: they set ``node._nodeid``)."""

    def __init__(self, auth: str) -> None:
        self.folder = tempfile.mkdtemp(prefix=f"rayflow-fuzz-{auth}-")
        atexit.register(shutil.rmtree, self.folder, True)   # also when the tests are deselected
        self.server = build(f"sqlite:///{os.path.join(self.folder, 'rf.db')}", executor="local", auth=auth,
                            limits=Limits(rate_per_s=0))   # the limiter has its own test; here it would hide routes
        self.headers: dict[str, str] = {}
        if auth == "token":
            token, _ = tokens.create(self.server.plane.store, "admin")
            self.headers = {"Authorization": f"Bearer {token}"}
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", self.server.app, headers=self.headers)


WITH_TOKEN = _Api("token")
WITHOUT_AUTH = _Api("none")


@pytest.fixture(scope="module", autouse=True)
def _running():
    for api in (WITH_TOKEN, WITHOUT_AUTH):
        api.server.start()
    yield
    for api in (WITH_TOKEN, WITHOUT_AUTH):
        api.server.stop()


@pytest.mark.slow
@WITH_TOKEN.schema.parametrize()
@FUZZ
def test_api_with_an_admin_token(case):
    case.call_and_validate(headers=WITH_TOKEN.headers, checks=CHECKS)


@pytest.mark.slow
@WITHOUT_AUTH.schema.parametrize()
@FUZZ
def test_api_without_auth(case):
    case.call_and_validate(checks=CHECKS)
