"""No password in any log, error, Ray argument, process list or store row (issue 15, item 11).

- a PostgreSQL password holding ``@ / ? # :`` (written as is, or percent-encoded) is read
  the way the brief's rule says (the userinfo ends at the last ``@``), opens the store,
  and no part of it is shown by the public URL, ``where``, redaction or an error;
- a bad cache URL is named in its one-line error redacted (``redis://user:***@...``),
  and so is a bad checkpoint location; an unreachable Redis is logged the same way;
- a run handed to the cluster's tracker actor, and a large cached output written to a
  passworded tier by a task on the cluster, give Ray no password in any task or actor
  argument: every argument Ray serializes in this process is searched (a spy on Ray's
  own serializer; the values sealed with ``ray.put`` are the secret's only way), and so
  is every row the runs left in the store;
- ``rayflow submit --store URL-WITH-PASSWORD`` warns once on stderr, and the driver it
  spawns holds no password on its command line (``/proc/PID/cmdline``);
- a failed connection to a closed port logs (caplog, DEBUG) no part of the password.

The shared PostgreSQL server trusts local connections: any password connects.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import rayflow as rf
from rayflow.cache.urls import open_cache
from rayflow.core.errors import ConfigError
from rayflow.core.redact import redact
from rayflow.runs.owners import owner_id
from rayflow.store import open_store
from rayflow.store.pgurl import parse_postgres_url
from tests.fns import durability
from tests.helpers import REPO, free_port, wait_until
from tests.support.postgres import pg_run, with_params

PASSWORD = "Zq7-s3cretpw"            # plain: connects before and after the fixes
PIECES = ("Zq7", "Wx9", "Vb3", "Nm5", "Kp2")   # no piece of a tricky password may be shown
TRICKY = ["Zq7@Wx9", "Zq7/Wx9", "Zq7?Wx9", "Zq7#Wx9", "Zq7:Wx9", "Zq7@Wx9/Vb3?Nm5#Kp2",
          "Zq7%40Wx9%2FVb3", "Zq7%3FWx9%23Nm5%3A"]
HARD = "Zq7@Wx9/Vb3?Nm5#Kp2"


def with_password(url: str, password: str) -> str:
    head, rest = url.split("://", 1)
    user, _, hostpart = rest.rpartition("@")
    return f"{head}://{(user or 'postgres').split(':')[0]}:{password}@{hostpart}"


def assert_no_piece(text: str, where: str) -> None:
    shown = [p for p in PIECES if p in text]
    assert not shown, f"{where} shows {shown} of the password: {text[:500]}"


# -- defect 2: redaction and reading of tricky PostgreSQL passwords ---------------------------


@pytest.mark.parametrize("password", TRICKY)
def test_a_postgres_password_with_special_characters_is_read_whole_and_never_shown(password):
    url = f"postgresql://ann:{password}@db.example:6543/runs?schema=team&sslmode=disable"
    parsed = parse_postgres_url(url)
    assert parsed.public == "postgresql://ann@db.example:6543/runs?schema=team&sslmode=disable"
    assert parsed.where == "db.example:6543/runs"
    assert redact(url) == "postgresql://ann:***@db.example:6543/runs?schema=team&sslmode=disable"
    for what, text in (("public", parsed.public), ("where", parsed.where), ("redact", redact(url)),
                       ("repr", repr(parsed.settings))):
        assert_no_piece(text, what)
    # asyncpg reads a DSN with urllib: the authority up to the first / ? #, then the first @ and :
    auth, _, hostport = urlsplit(parsed.dsn).netloc.partition("@")
    user, _, given = auth.partition(":")
    assert (unquote(user), unquote(given), hostport) == ("ann", unquote(password), "db.example:6543")
    with pytest.raises(ConfigError) as info:
        parse_postgres_url(url.replace("sslmode=disable", "max_size=0"))
    assert "max_size='0'" in str(info.value) and "ann:***@db.example" in str(info.value)
    assert_no_piece(str(info.value), "the error")


def test_a_store_whose_password_holds_at_slash_question_and_hash_opens(postgres_server, postgres_schema):
    store = open_store(with_password(with_params(postgres_server, schema=postgres_schema), HARD))
    try:
        assert store.get_run("nope") is None          # connected: the host and database were read right
        assert store.url == with_params(postgres_server, schema=postgres_schema)
        assert_no_piece(store.url + repr(store), "the store")
    finally:
        store.close()


def test_a_failed_postgres_connection_logs_and_says_no_part_of_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("rayflow", "asyncpg"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    port = free_port()    # nothing listens there
    with pytest.raises(ConfigError) as info:
        open_store(f"postgresql://postgres:{HARD}@127.0.0.1:{port}/test?connect_timeout=1")
    message = str(info.value)
    assert message.startswith(f"cannot connect to PostgreSQL at 127.0.0.1:{port}/test: ") and "\n" not in message
    told = "".join(traceback.format_exception(info.value))
    logged = caplog.text + "".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert_no_piece(told + logged, "the error or the log")


# -- defect 1: cache URL errors -----------------------------------------------------------------


@pytest.mark.parametrize("url", [
    f"redis://user:{PASSWORD}@127.0.0.1:1/0?bogus=1",            # a parameter the cache refuses
    f"redis://user:{PASSWORD}@127.0.0.1:1/0?timeout=soon",       # a value it refuses
    f"redis://user:{PASSWORD}@127.0.0.1:99999/0",                # a port the Redis tier refuses
    f"redis://user:{PASSWORD}@127.0.0.1:1/0,,memory://",         # an empty entry in the list
    "redis://user:Zq7/Wx9@127.0.0.1:1/zero",                     # a / in the password, a bad database
])
def test_a_bad_cache_url_is_named_redacted(url):
    with pytest.raises(ConfigError) as info:
        open_cache(url)
    message = str(info.value)
    assert "redis://user:***@127.0.0.1:" in message and "\n" not in message, message
    assert PASSWORD not in message
    assert_no_piece(message, "the error")


def test_a_bad_checkpoint_location_is_named_redacted():
    from rayflow.store.checkpoints import CheckpointStore

    with pytest.raises(ConfigError) as info:      # pyarrow's own reason quotes the URI whole
        CheckpointStore(f"bogus://AKIA:{PASSWORD}@bucket/checkpoints")
    assert "bogus://AKIA:***@bucket/checkpoints" in str(info.value) and PASSWORD not in str(info.value)


def test_an_unreachable_redis_is_logged_redacted(caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    cache = open_cache(f"redis://user:Zq7/Wx9@127.0.0.1:{port}/0?timeout=0.05&connect_timeout=0.05&failures=1")
    try:
        assert not cache.get("some-key").hit
        stats = json.dumps(cache.stats())
    finally:
        cache.close()
    assert f"redis://user:***@127.0.0.1:{port}/0" in caplog.text          # the breaker's warning names it
    assert_no_piece(caplog.text + stats, "the log or the stats")


# -- defects 3 and 5: Ray arguments and store rows -------------------------------------------------


@rf.workflow(name="secret_big")
def cached_big(folder: str, n: int = 20_000):
    """One output above 64 KiB with a cache key: a task on the cluster writes it to the shared tiers."""
    return durability.big.options(cache=True)(folder, n)


@pytest.fixture
def secret_url(postgres_server, postgres_schema):
    """A PostgreSQL store URL with ``PASSWORD`` in it, in a schema of this test's own."""
    return with_password(with_params(postgres_server, schema=postgres_schema), PASSWORD)


@pytest.fixture
def secret_service(service, store_url, secret_url):
    """The process's service on the passworded store, with its cache tiers memory and the
    same passworded database; back to a SQLite store and memory after."""
    service.configure(store=secret_url, cache=f"memory://,{secret_url}")
    yield service
    service.configure(store=store_url, cache="memory://")


@pytest.fixture
def ray_args(ray_session, monkeypatch):
    """Every task and actor argument Ray serializes in this process from now on (values
    given to ``ray.put`` left out: they live in the object store, not in a task spec)."""
    context = ray_session._private.worker.global_worker.get_serialization_context()
    real = context.serialize
    seen: list[bytes] = []

    def spy(value):
        serialized = real(value)
        if not any(frame.function == "put_object" for frame in inspect.stack()[1:12]):
            raw = isinstance(value, (bytes, bytearray, memoryview))   # Ray ships those as they are
            seen.append(bytes(value) if raw else serialized.to_bytes())
        return serialized

    monkeypatch.setattr(context, "serialize", spy)
    return seen


def stored_rows(url: str, schema: str) -> str:
    """Every row of every table of ``schema``, as JSON text (bytea as hex)."""
    tables = pg_run(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                    schema, fetch=True)
    assert {t["table_name"] for t in tables} >= {"runs", "components", "events"}
    out = []
    for t in tables:
        rows = pg_run(url, f'SELECT row_to_json(x)::text AS j FROM {schema}."{t["table_name"]}" x', fetch=True)
        out.extend(r["j"] for r in rows)
    return "\n".join(out)


def assert_no_password(blobs: list[bytes], rows: str) -> None:
    forms = [PASSWORD.encode(), PASSWORD.encode("utf-16-le")]
    leaking = [b[:300] for b in blobs if any(f in b for f in forms)]
    assert not leaking, f"{len(leaking)} Ray argument(s) hold the password, like: {leaking[0]!r}"
    assert PASSWORD not in rows and PASSWORD.encode().hex() not in rows, "a store row holds the password"


@pytest.mark.slow
def test_a_run_handed_to_the_tracker_gives_ray_no_password(secret_service, postgres_server, postgres_schema,
                                                             ray_args, monkeypatch, tmp_path):
    monkeypatch.setenv("RAYFLOW_TRACKER", "1")       # the cluster's tracker actor drives it
    handle = rf.submit(durability.ledgered, folder=str(tmp_path), n=2)
    assert handle.wait(timeout=120) == "SUCCEEDED"
    assert handle.result() == durability.expected_total(2)
    run = secret_service.store.get_run(handle.run_id)
    assert run.owner and run.owner != owner_id()       # the tracker drove it, on the passworded store
    assert any(handle.run_id.encode() in b for b in ray_args)   # the hand-over's arguments were seen
    assert_no_password(ray_args, stored_rows(postgres_server, postgres_schema))


@pytest.mark.slow
def test_a_large_output_reaches_a_passworded_cache_tier_without_ray_seeing_the_password(
        secret_service, postgres_server, postgres_schema, ray_args, monkeypatch, tmp_path):
    monkeypatch.setenv("RAYFLOW_TRACKER", "0")       # driven here: the cache sink's task is submitted here
    handle = secret_service.submit(cached_big, {"folder": str(tmp_path), "n": 20_000}, executor="ray",
                                   background=False)
    assert handle.status() == "SUCCEEDED"
    kept = pg_run(postgres_server, f"SELECT count(*) AS n FROM {postgres_schema}.cache_entries", fetch=True)
    assert kept[0]["n"] == 1       # written by the task on the cluster, which opened the tier
    assert_no_password(ray_args, stored_rows(postgres_server, postgres_schema))


@rf.workflow(name="secret_checkpoint")
def checkpointed_big(folder: str, n: int = 20_000):
    """One output above 64 KiB: a save task on the cluster writes its checkpoint file."""
    return durability.big(folder, n)


@pytest.mark.slow
def test_a_checkpoint_location_with_credentials_reaches_the_save_tasks_sealed(service, ray_args, monkeypatch,
                                                                                tmp_path):
    monkeypatch.setenv("RAYFLOW_TRACKER", "0")       # driven here: the save task is submitted here
    service.configure(checkpoints=f"file://{tmp_path}/ck?secret_key={PASSWORD}")   # (as an s3:// URL may)
    try:
        handle = service.submit(checkpointed_big, {"folder": str(tmp_path), "n": 20_000}, executor="ray",
                                background=False)
        assert handle.status() == "SUCCEEDED"
        service.flush()
        assert list((tmp_path / "ck").rglob("*.rfc")), "no checkpoint file was written by the save task"
    finally:
        service.configure(checkpoints=os.environ["RAYFLOW_CHECKPOINTS"])
    assert any(b"big" in b for b in ray_args)   # the component and its save task were seen
    assert_no_password(ray_args, "")


# -- defect 4: the process list ------------------------------------------------------------------------


def driver_of(run_id: str) -> tuple[int, bytes] | None:
    """(pid, command line) of the process whose command line names ``run_id``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if run_id.encode() in cmdline and b"drive" in cmdline:
            return int(proc.name), cmdline
    return None


@pytest.mark.slow
def test_submit_warns_of_a_password_on_its_command_line_and_spawns_a_driver_without_one(
        ray_session, secret_url, tmp_path):
    (tmp_path / "hold-source_0").touch()               # the run waits there until the test looked
    env = {**os.environ, "RAYFLOW_TRACKER": "0", "RAYFLOW_SERVER": "local",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("RAYFLOW_STORE", None)
    env.pop("RAY_ADDRESS", None)
    address = ray_session.get_runtime_context().gcs_address   # the drivers join this session's cluster
    done = subprocess.run([sys.executable, "-m", "rayflow.cli.main", "submit", "tests.fns.durability:ledgered",
                           "-i", f"folder={tmp_path}", "-i", "n=1", "--store", secret_url, "--address", address],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    run_id = done.stdout.strip()
    warned = [line for line in done.stderr.splitlines() if "--store holds a password" in line]
    assert len(warned) == 1 and "RAYFLOW_STORE" in warned[0] and "PGPASSWORD" in warned[0], done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    pid, cmdline = wait_until(lambda: driver_of(run_id), timeout=30, what="the spawned driver")
    (tmp_path / "hold-source_0").unlink()
    assert PASSWORD.encode() not in cmdline, cmdline
    store = open_store(secret_url)
    try:
        wait_until(lambda: store.get_run(run_id).status in ("SUCCEEDED", "FAILED"), timeout=120, poll_s=0.2,
                   what="the spawned driver's run to end")
        assert store.get_run(run_id).status == "SUCCEEDED"
    finally:
        store.close()
    wait_until(lambda: driver_of(run_id) is None, timeout=30, what=f"the driver (pid {pid}) to exit")
