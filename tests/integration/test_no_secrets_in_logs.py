"""No secret reaches a log: not an API token, not a token's hash, not the store's password.

A server on a PostgreSQL store whose URL carries a password (the shared server trusts any
password, so ``postgresql://postgres:s3cretpw@...`` connects) and with ``--auth token`` is
driven through authorized, unauthorized and failing requests (a bad token, a revoked one,
the wrong scope, an invalid spec, malformed JSON, a submit, a run that fails, its events,
the metrics). Everything it logged is captured and searched: every logger at DEBUG
(caplog, the uvicorn access log included), stdout and stderr (capfd), warnings. Twice:
in-process (``build`` served by uvicorn in a thread, access log on, at DEBUG), and as the
real ``rayflow server`` process, whose whole output is read. ``rayflow token
create|list|revoke`` must never show a hash (nor the password).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from rayflow.server import tokens
from tests.helpers import REPO, free_port, wait_until
from tests.support.postgres import with_params

PASSWORD = "s3cretpw"
BOGUS = "rf_" + "Bogus0123456789" * 3   # a well-formed token no store holds: never echoed either
OK = {"name": "nosecret_ok", "components": [{"id": "a", "function": "tests.fns.basic:source", "config": {"n": 2}},
                                            {"id": "b", "function": "tests.fns.basic:double"}],
      "connections": [{"from": "a", "to": "b"}]}
FAILS = {"name": "nosecret_fail", "components": [{"id": "a", "function": "tests.fns.basic:source"},
                                                 {"id": "x", "function": "tests.fns.execute:boom"}],
         "connections": [{"from": "a", "to": "x"}]}
INVALID = {"name": "bad", "components": [{"id": "a", "function": "tests.fns.basic:no_such_fn"}]}
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
TOKEN_TTL_S = 2.0   # how long a server trusts a checked token (rayflow.server.http.auth)


def with_password(url: str, password: str = PASSWORD) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
def secret_store_url(postgres_server: str, postgres_schema: str) -> str:
    """A PostgreSQL store URL with a password in it, in a schema of this test's own."""
    return with_params(with_password(postgres_server), schema=postgres_schema)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def secrets_of(made: dict[str, str]) -> dict[str, str]:
    """What must never be logged: each token, its hash, and the store's password."""
    found = {"password": PASSWORD, "bogus token": BOGUS, "bogus token's hash": tokens.hash_token(BOGUS)}
    for name, token in made.items():
        found[f"{name} token"] = token
        found[f"{name} token's hash"] = tokens.hash_token(token)
        found[f"{name} token's secret part"] = token.removeprefix(tokens.PREFIX)
    return found


def assert_clean(text: str, secrets: dict[str, str], where: str) -> None:
    leaks = [name for name, value in secrets.items() if value in text]
    if leaks:
        lines = [line for line in text.splitlines() if any(secrets[n] in line for n in leaks)]
        shown = "\n".join(lines[:5])
        for value in secrets.values():
            shown = shown.replace(value, "<SECRET>")
        raise AssertionError(f"{where} holds {', '.join(leaks)}; in lines like:\n{shown}")


def exercise(url: str, made: dict[str, str], revoke: callable) -> dict[str, int]:
    """Authorized, unauthorized and failing requests; {what: status} (each checked)."""
    seen: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=20) as c:
        def call(what: str, expected: int, method: str, path: str, **kw) -> httpx.Response:
            r = c.request(method, path, **kw)
            assert r.status_code == expected, f"{what}: {r.status_code} {r.text[:300]}"
            for value in (*made.values(), PASSWORD, BOGUS):
                assert value not in r.text, f"{what}: the response echoes a secret"
            seen[what] = r.status_code
            return r

        call("healthz, no token", 200, "GET", "/healthz")
        call("list, no token", 401, "GET", "/v1/runs")
        call("list, bad token", 401, "GET", "/v1/runs", headers=bearer(BOGUS))
        call("list, token as Basic", 401, "GET", "/v1/runs", headers={"Authorization": f"Basic {made['read']}"})
        call("list, read", 200, "GET", "/v1/runs", headers=bearer(made["read"]))
        call("submit, read scope", 403, "POST", "/v1/runs", json={"spec": OK}, headers=bearer(made["read"]))
        call("register, submit scope", 403, "POST", "/v1/workflows", json={"name": "w", "spec": OK},
             headers=bearer(made["submit"]))
        call("invalid spec", 422, "POST", "/v1/runs", json={"spec": INVALID}, headers=bearer(made["submit"]))
        call("malformed json", 400, "POST", "/v1/runs", content=b'{"spec": ',
             headers={**bearer(made["submit"]), "content-type": "application/json"})
        call("unknown run", 404, "GET", "/v1/runs/no-such-run", headers=bearer(made["read"]))
        ok = call("submit", 201, "POST", "/v1/runs", json={"spec": OK},
                  headers={**bearer(made["submit"]), "Idempotency-Key": "nosecret-1"}).json()["run_id"]
        call("submit replay", 200, "POST", "/v1/runs", json={"spec": OK},
             headers={**bearer(made["submit"]), "Idempotency-Key": "nosecret-1"})
        bad = call("submit failing", 201, "POST", "/v1/runs", json={"spec": FAILS},
                   headers=bearer(made["admin"])).json()["run_id"]

        def final() -> bool:
            return all(c.get(f"/v1/runs/{r}", headers=bearer(made["read"])).json()["status"] in TERMINAL
                       for r in (ok, bad))

        wait_until(final, timeout=60, poll_s=0.1, what="the runs to end")
        assert call("get ok run", 200, "GET", f"/v1/runs/{ok}", headers=bearer(made["read"])).json()["status"] \
            == "SUCCEEDED"
        assert call("get failed run", 200, "GET", f"/v1/runs/{bad}",
                    headers=bearer(made["read"])).json()["status"] == "FAILED"
        call("events", 200, "GET", f"/v1/runs/{bad}/events", headers=bearer(made["read"]))
        call("report", 200, "GET", f"/v1/runs/{bad}/report", headers=bearer(made["read"]))
        call("retry failed run", 202, "POST", f"/v1/runs/{bad}/retry", headers=bearer(made["submit"]))
        call("metrics", 200, "GET", "/metrics", headers=bearer(made["read"]))
        call("readyz", 200, "GET", "/readyz", headers=bearer(made["read"]))
        call("revoked, before", 200, "GET", "/v1/runs", headers=bearer(made["revoked"]))
        revoke()
        time.sleep(TOKEN_TTL_S)          # a server trusts a checked token this long; then it must refuse it
        wait_until(lambda: c.get("/v1/runs", headers=bearer(made["revoked"])).status_code == 401,
                   timeout=5, poll_s=0.2, what="the revoked token to be refused")
        call("revoked, after", 401, "GET", "/v1/runs", headers=bearer(made["revoked"]))
        call("revoked, submit", 401, "POST", "/v1/runs", json={"spec": OK}, headers=bearer(made["revoked"]))
        wait_until(lambda: c.get(f"/v1/runs/{bad}", headers=bearer(made["read"])).json()["status"] in TERMINAL,
                   timeout=60, poll_s=0.1, what="the retried run to end")
    return seen


# -- in-process: every logger at DEBUG, the access log on ---------------------------------


class ThreadedServer:
    def __init__(self, store_url: str) -> None:
        import uvicorn

        from rayflow.server.main import build

        self.server = build(store_url=store_url, executor="local", auth="token")
        self.server.start()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # log_config=None: uvicorn's loggers (access log included) propagate to the root, where caplog is
        config = uvicorn.Config(self.server.app, host="127.0.0.1", port=self.port, log_config=None,
                                log_level="debug", access_log=True)
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, name="uvicorn-test", daemon=True)
        self.thread.start()
        wait_until(lambda: self.uvicorn.started, timeout=20, what="uvicorn to start")

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(10)
        self.server.stop()
        self.server.service.shutdown()


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """caplog's formatted text (tracebacks included) and each record's raw parts."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}")
        extra = {k: v for k, v in vars(record).items() if k not in ("msg", "args", "exc_info")}
        parts.append(repr(extra))
    return "\n".join(parts)


def test_the_server_logs_no_token_hash_or_password(secret_store_url, caplog, capfd):
    caplog.set_level(logging.DEBUG)              # the root: every logger that propagates
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "rayflow", "asyncpg", "httpx"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        served = ThreadedServer(secret_store_url)
        try:
            store = served.server.plane.store
            made = {scope: tokens.create(store, scope, name=f"t-{scope}")[0] for scope in tokens.SCOPES}
            made["revoked"], revoked = tokens.create(store, "read", name="to-revoke")
            seen = exercise(served.url, made, lambda: store.revoke_token(revoked.token_id, time.time()))
        finally:
            served.stop()
    out, err = capfd.readouterr()
    logged = everything_logged(caplog)
    secrets = secrets_of(made)
    # the capture saw the requests: the access log and the server's own loggers
    assert '"GET /v1/runs HTTP/1.1" 401' in logged and '"POST /v1/runs HTTP/1.1" 201' in logged, logged[-2000:]
    assert len(seen) >= 20
    assert_clean(logged, secrets, "the log records")
    assert_clean(out, secrets, "stdout")
    assert_clean(err, secrets, "stderr")
    assert_clean("\n".join(str(w.message) for w in caught), secrets, "the warnings")


# -- the real `rayflow server` process, and `rayflow token` ----------------------------------


def cli(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "rayflow.cli.main", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)
    if check:
        assert done.returncode == 0, f"rayflow {' '.join(args[:2])}: rc {done.returncode}\n{done.stderr[-2000:]}"
    return done


def create_token(store_url: str, scope: str, name: str) -> tuple[str, str]:
    """(the token printed on stdout, what the command printed in all)."""
    done = cli("token", "create", "--scope", scope, "--name", name, "--store", store_url)
    token = done.stdout.strip()
    assert token.startswith(tokens.PREFIX) and len(token.splitlines()) == 1, done.stdout
    return token, done.stderr


@pytest.fixture
def server_process(secret_store_url, tmp_path) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rayflow.cli.main", "server", "--host", "127.0.0.1",
                                 "--port", str(port), "--store", secret_store_url, "--auth", "token",
                                 "--executor", "local"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_rayflow_server_and_token_commands_print_no_hash_or_password(secret_store_url, server_process):
    proc, url, log = server_process
    printed = []
    made = {}
    for scope in tokens.SCOPES:
        made[scope], said = create_token(secret_store_url, scope, f"cli-{scope}")
        printed.append(said)
    made["revoked"], said = create_token(secret_store_url, "read", "cli-to-revoke")
    printed.append(said)
    secrets = secrets_of(made)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"rayflow server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=90, poll_s=0.2, what="rayflow server to answer")
    listed = cli("token", "list", "--store", secret_store_url)
    listed_json = cli("token", "list", "--json", "--store", secret_store_url)
    rows = json.loads(listed_json.stdout)
    revoked_id = next(r["token_id"] for r in rows if r["name"] == "cli-to-revoke")
    assert all(set(r) == {"token_id", "name", "scope", "created_at", "revoked_at"} for r in rows), rows

    def revoke() -> None:
        printed.append(cli("token", "revoke", revoked_id, "--store", secret_store_url).stdout)

    exercise(url, made, revoke)
    after = cli("token", "list", "--json", "--store", secret_store_url)
    assert next(r for r in json.loads(after.stdout) if r["token_id"] == revoked_id)["revoked_at"] is not None
    refused = cli("token", "revoke", "no-such-id", "--store", secret_store_url, check=False)
    assert refused.returncode == 2
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    server_log = log.read_text(errors="replace")
    assert "GET /v1/runs" in server_log or "Uvicorn running" in server_log or "rayflow server" in server_log, \
        server_log[-2000:]
    listings = [listed.stdout, listed.stderr, listed_json.stdout, listed_json.stderr, after.stdout, after.stderr,
                refused.stdout, refused.stderr]
    for name, text in (("the server's output", server_log), ("token create/revoke", "\n".join(printed)),
                       ("token list", "\n".join(listings))):
        assert_clean(text, secrets, name)
    # token list shows ids and names, never a hash (64 hex digits) of any token
    hashes = [tokens.hash_token(t) for t in made.values()]
    assert not any(h in "\n".join(listings) or h[:16] in "\n".join(listings) for h in hashes)
    assert revoked_id in listed.stdout and "cli-admin" in listed.stdout
