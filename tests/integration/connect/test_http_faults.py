"""HTTP components against a real loopback server with scheduled faults (real httpx, no mocks).

Every claim is checked from the server's own request log. Timings are lower bounds (a
wait happened) or generous upper bounds on a loaded machine; none asserts speed.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import threading
import time

import pyarrow as pa
import pytest

from rayflow.connect import http
from rayflow.connect.http import CircuitOpen, HttpConfigError, HttpError, http_batch, http_call
from rayflow.connect.secrets import Secret
from tests.support.httpfaults import FaultServer, Seen

SLACK_S = 0.05
FAST = {"retries": 5, "base_s": 0.01, "cap_s": 0.05}


@pytest.fixture
def server():
    http.reset()
    with FaultServer() as s:
        yield s
    http.reset()


def outcomes(server: FaultServer, route: str) -> list[str]:
    return [s.outcome for s in server.requests(route)]


# --- retries ------------------------------------------------------------------------------------

def test_a_route_failing_twice_then_succeeding_is_retried(server):
    server.schedule("item", ("status", 503), ("status", 502))
    assert http_call([{"id": 7}], url=server.url + "/item/{id}", retry=FAST) == [{"id": "7"}]
    assert outcomes(server, "item") == ["503", "502", "ok"]
    assert http.stats()[f"http://127.0.0.1:{server.port}"]["retries"] == 2


def test_retry_after_seconds_is_honoured(server):
    server.schedule("item", ("retry_after", 0.4))
    assert http_call(url=server.url + "/item/1", retry=FAST) == {"id": "1"}
    first, second = server.requests("item")
    assert first.outcome == "429" and second.outcome == "ok"
    assert second.t - first.t >= 0.4 - SLACK_S


def test_retry_after_as_an_http_date_is_honoured(server):
    when = email.utils.formatdate(time.time() + 3, usegmt=True)   # whole seconds: 2 to 3 s away
    due = email.utils.parsedate_to_datetime(when).timestamp()
    server.schedule("item", ("retry_after", when, 503))
    assert http_call(url=server.url + "/item/1", retry=FAST) == {"id": "1"}
    first, second = server.requests("item")
    wall = time.time() - time.monotonic()   # the server notes arrivals on the monotonic clock
    assert first.outcome == "503" and first.t + wall < due - 0.5   # the date was ahead when it was sent
    assert second.t + wall >= due - SLACK_S   # not retried before the date (a slow first request
    #                                          leaves less of the wait, never less than the date)


def test_retry_after_is_capped(server):
    server.schedule("item", ("retry_after", 3600))
    http_call(url=server.url + "/item/1", retry={**FAST, "retry_after_cap_s": 0.2})
    first, second = server.requests("item")
    assert 0.2 - SLACK_S <= second.t - first.t < 30


def test_a_stall_past_the_timeout_is_retried(server):
    server.schedule("item", ("stall", 1.5))
    assert http_call(url=server.url + "/item/3", request_timeout_s=0.3, retry=FAST) == {"id": "3"}
    assert outcomes(server, "item") == ["stall", "ok"]


def test_a_reset_connection_is_retried(server):
    server.schedule("item", "reset", "reset")
    assert http_call([{"id": "a"}], url=server.url + "/item/{id}", retry=FAST) == [{"id": "a"}]
    assert outcomes(server, "item") == ["reset", "reset", "ok"]


def test_post_is_not_retried_on_500_nor_on_a_reset(server):
    server.schedule("score", ("status", 500))
    with pytest.raises(HttpError) as e:
        http_call([{"id": 1, "x": 1}], method="POST", url=server.url + "/score", batch_size=10, retry=FAST)
    msg = str(e.value)
    assert e.value.status == 500 and "\n" not in msg
    assert msg.startswith(f"POST {server.url}/score: status 500: ") and "fault 500" in msg
    assert outcomes(server, "score") == ["500"]

    server.schedule("score", "reset")
    with pytest.raises(HttpError):
        http_call([{"id": 1, "x": 1}], method="POST", url=server.url + "/score", batch_size=10, retry=FAST)
    assert outcomes(server, "score") == ["500", "reset"]


def test_post_is_retried_on_503_and_429(server):
    server.schedule("score", ("status", 503), ("retry_after", 0.1))
    got = http_call([{"id": 1, "x": 2}], method="POST", url=server.url + "/score", batch_size=10, retry=FAST)
    assert got == [{"id": 1, "score": 4}]
    assert outcomes(server, "score") == ["503", "429", "ok"]


def test_retry_unsafe_retries_post_like_get(server):
    server.schedule("score", "reset", ("status", 502))
    got = http_call([{"id": 1, "x": 2}], method="POST", url=server.url + "/score", batch_size=10,
                    retry=FAST, retry_unsafe=True)
    assert got == [{"id": 1, "score": 4}]
    assert outcomes(server, "score") == ["reset", "502", "ok"]


def test_a_refused_connection_is_retried_even_for_post():
    http.reset()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]             # closed again: nothing listens there
    with pytest.raises(HttpError) as e:
        http_call(method="POST", url=f"http://127.0.0.1:{port}/score", body=[], breaker=False,
                  retry={"retries": 2, "base_s": 0.01, "cap_s": 0.01})
    assert "cannot connect" in str(e.value) and "(after 3 attempts)" in str(e.value)
    assert http.stats()[f"http://127.0.0.1:{port}"]["retries"] == 2
    http.reset()


def test_retries_used_up_fail_with_the_last_status(server):
    server.set_default("item", ("status", 503))
    with pytest.raises(HttpError) as e:
        http_call(url=server.url + "/item/1", retry={"retries": 2, "base_s": 0.01, "cap_s": 0.01},
                  breaker=False)
    assert "status 503" in str(e.value) and "(after 3 attempts)" in str(e.value)
    assert len(server.requests("item")) == 3


# --- the circuit breaker ------------------------------------------------------------------------

def fail_until_second_pause(pause_s: float = 0.3):
    """503 until the server saw two pauses of ``pause_s`` between requests, then "ok"."""
    state = {"last": None, "pauses": 0}
    lock = threading.Lock()

    def rule(seen: Seen):
        with lock:
            if state["last"] is not None and seen.t - state["last"] >= pause_s:
                state["pauses"] += 1
            state["last"] = seen.t
            return ("status", 503) if state["pauses"] < 2 else "ok"

    return rule


def test_breaker_opens_lets_one_trial_through_and_closes(server, caplog):
    caplog.set_level(logging.WARNING, logger="rayflow.connect")
    failures, reset_s, concurrency = 3, 0.5, 4
    server.set_default("item", fail_until_second_pause())
    got = http_call([{"id": i} for i in range(12)], url=server.url + "/item/{id}",
                    concurrency=concurrency, breaker={"failures": failures, "reset_s": reset_s, "wait_s": 10},
                    retry={"retries": 10, "base_s": 0.01, "cap_s": 0.02})
    assert got == [{"id": str(i)} for i in range(12)]

    log = server.requests("item")
    failed = [s for s in log if s.outcome == "503"]
    burst, trial1 = failed[:-1], failed[-1]
    # closed -> open: the threshold, plus at most the requests already in flight
    assert failures <= len(burst) <= failures + concurrency - 1
    # open: nothing reaches the server until reset_s after the failure that opened it
    assert trial1.t - burst[failures - 1].t >= reset_s - SLACK_S
    # half-open: exactly one trial; it failed, so open again for reset_s
    after1 = [s for s in log if s.t > trial1.t]
    trial2 = after1[0]
    assert trial2.outcome == "ok"
    assert trial2.t - trial1.t >= reset_s - SLACK_S
    # the second trial alone, until its answer closed the circuit; then requests flow
    assert all(s.t >= trial2.t_done for s in after1[1:])
    assert [s.outcome for s in after1] == ["ok"] * len(after1)
    assert sorted(s.path for s in after1) == sorted(f"/item/{i}" for i in range(12))

    moves = [r.getMessage().split(": ", 1)[1] for r in caplog.records
             if r.name == "rayflow.connect" and r.levelno == logging.WARNING]
    host = f"http://127.0.0.1:{server.port}"
    assert moves[0] == "closed -> open after 3 failures"
    assert [m.split(" (")[0].split(" after")[0] for m in moves] == [
        "closed -> open", "open -> half-open", "half-open -> open", "open -> half-open",
        "half-open -> closed"]
    assert all(r.getMessage().startswith(f"circuit to {host}: ") for r in caplog.records
               if r.name == "rayflow.connect" and r.levelno == logging.WARNING)
    assert http.stats()[host]["breaker"] == "closed"
    assert http.stats()[host]["breaker_opened"] == 2


def test_an_open_circuit_fails_the_call_when_its_wait_is_over(server):
    server.set_default("item", ("status", 503))
    with pytest.raises(CircuitOpen) as e:
        http_call(url=server.url + "/item/1", breaker={"failures": 2, "reset_s": 5, "wait_s": 0.2},
                  retry={"retries": 5, "base_s": 0.01, "cap_s": 0.01})
    msg = str(e.value)
    assert "\n" not in msg and f"circuit to http://127.0.0.1:{server.port} is open" in msg
    assert "retry in" in msg
    assert len(server.requests("item")) == 2          # nothing sent while open
    with pytest.raises(CircuitOpen):                  # the breaker is the host's: the next call too
        http_call(url=server.url + "/item/2", breaker={"failures": 2, "reset_s": 5, "wait_s": 0})
    assert len(server.requests("item")) == 2


# --- batching, order, rate limit -----------------------------------------------------------------

def test_batches_of_100_for_250_items(server):
    items = [{"id": i, "x": i} for i in range(250)]
    got = http_call(items, method="POST", url=server.url + "/score", batch_size=100)
    assert got == [{"id": i, "score": 2 * i} for i in range(250)]
    log = server.requests("score")
    assert len(log) == 3
    assert sorted(s.size for s in log) == [50, 100, 100]
    for s in log:                                    # each batch a run of consecutive items
        ids = [i["id"] for i in s.body]
        assert ids == list(range(ids[0], ids[0] + len(ids))) and ids[0] % 100 == 0


def test_http_batch_with_batch_key_and_result_key(server):
    batch = pa.RecordBatch.from_pylist([{"id": i, "x": i} for i in range(25)])
    table = http_batch(batch, method="POST", url=server.url + "/score", batch_size=10,
                       batch_key="items", result_key="results", body={"model": "m1"})
    assert table.num_rows == 25
    assert table.to_pylist() == [{"id": i, "score": 2 * i} for i in range(25)]
    assert sorted(s.size for s in server.requests("score")) == [5, 10, 10]
    assert all(s.body["model"] == "m1" for s in server.requests("score"))


def test_a_batch_answer_of_the_wrong_length_is_an_error(server):
    server.schedule("score", ("short", 3))
    with pytest.raises(HttpError) as e:
        http_call([{"id": i, "x": i} for i in range(5)], method="POST", url=server.url + "/score",
                  batch_size=5)
    assert "batch of 5 items" in str(e.value) and "got 3 results" in str(e.value)
    assert f"{server.url}/score" in str(e.value)


def test_the_rate_limit_holds_in_every_window(server):
    rate, burst, n = 20.0, 5, 40
    t0 = time.monotonic()
    got = http_call([{"id": i} for i in range(n)], url=server.url + "/item/{id}", concurrency=8,
                    rate_limit={"per_second": rate, "burst": burst})
    elapsed = time.monotonic() - t0
    assert got == [{"id": str(i)} for i in range(n)]
    times = sorted(s.t for s in server.requests("item"))
    assert len(times) == n
    # A request arrives after its token was granted, and the bucket started with the call:
    # by any moment b the server saw at most burst + rate * (b - t0) requests (+1: the edge).
    for k, b in enumerate(times, start=1):
        assert k <= burst + rate * (b - t0) + 1
    # Any window: the same, with an allowance for requests delayed on their way (the first
    # ones open the connections) and arriving bunched.
    lag_s = 0.5
    for i in range(n):
        for j in range(i, n):
            assert j - i + 1 <= burst + rate * (times[j] - times[i] + lag_s) + 1
    assert elapsed >= (n - burst) / rate - SLACK_S
    assert http.stats()[f"http://127.0.0.1:{server.port}"]["rate_limit_wait_s"] > 0


def test_nothing_lost_under_mixed_faults(server):
    server.schedule("item", ("status", 503), "reset", ("stall", 1.0), ("status", 502), "ok",
                    ("retry_after", 0.1), ("status", 504), "reset", "ok", ("status", 503),
                    ("stall", 1.0), "reset", ("status", 429))
    server.schedule("score", ("status", 503), ("retry_after", 0.1, 503), "ok", ("status", 429))
    n = 60
    got = http_call([{"id": i} for i in range(n)], url=server.url + "/item/{id}", concurrency=6,
                    request_timeout_s=0.3, retry={"retries": 8, "base_s": 0.01, "cap_s": 0.05},
                    breaker={"failures": 5, "reset_s": 0.3, "wait_s": 10})
    assert got == [{"id": str(i)} for i in range(n)]
    answered = [s.path for s in server.requests("item") if s.outcome in ("ok", "stall")]
    assert set(answered) == {f"/item/{i}" for i in range(n)}

    scored = http_call([{"id": i, "x": i} for i in range(n)], method="POST", url=server.url + "/score",
                       batch_size=7, concurrency=3, retry={"retries": 8, "base_s": 0.01, "cap_s": 0.05})
    assert scored == [{"id": i, "score": 2 * i} for i in range(n)]
    ok_ids = [i["id"] for s in server.requests("score") if s.outcome == "ok" for i in s.body]
    assert sorted(ok_ids) == list(range(n))            # every item processed once


# --- secrets and URLs ---------------------------------------------------------------------------

def test_a_secret_header_reaches_the_server_and_never_an_error(server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    token = "tok-9f8e7d6c5b4a"
    monkeypatch.setenv("TEST_TOKEN", token)
    got = http_call(url=server.url + "/echo", method="POST", body={"q": 1},
                    headers={"Authorization": {"$secret": "TEST_TOKEN"}, "X-Key": Secret("TEST_TOKEN")})
    assert got["headers"]["authorization"] == token and got["headers"]["x-key"] == token
    assert server.requests("echo")[0].headers["authorization"] == token

    server.set_default("item", lambda seen: ("respond", 401, "bad token " + seen.headers["authorization"]))
    with pytest.raises(HttpError) as e:
        http_call(url=server.url + "/item/1", headers={"Authorization": {"$secret": "TEST_TOKEN"}},
                  params={"api_key": {"$secret": "TEST_TOKEN"}})
    assert server.requests("item")[0].query["api_key"] == [token]
    msg = str(e.value)
    assert token not in msg and "***" in msg and "status 401" in msg
    server.set_default("item", ("status", 503))
    with pytest.raises(HttpError) as e:
        http_call(url=server.url + "/item/1", params={"api_key": {"$secret": "TEST_TOKEN"}},
                  retry={"retries": 1, "base_s": 0.01, "cap_s": 0.01})
    assert token not in str(e.value)
    assert not any(token in r.getMessage() for r in caplog.records)


def test_placeholder_values_stay_inside_one_segment(server):
    ids = ["a/b", "../../echo", "..", ".", "x?y=1#f", "%2F", "a b"]
    got = http_call([{"id": i} for i in ids], url=server.url + "/item/{id}")
    assert got == [{"id": i} for i in ids]
    for s in server.requests("item"):
        assert s.path.startswith("/item/") and s.path.count("/") == 2 and not s.query
    assert not server.requests("echo")


def test_url_templates_are_checked(server):
    with pytest.raises(HttpConfigError, match="host"):
        http_call([{"h": "evil.example"}], url="http://{h}/item/1")
    with pytest.raises(HttpConfigError, match="host"):
        http_call([{"p": "81"}], url="http://127.0.0.1:{p}/item/1")
    with pytest.raises(HttpConfigError, match=r"\{id\}.*item 1"):
        http_call([{"id": 1}, {"key": 2}], url=server.url + "/item/{id}", concurrency=1)
    with pytest.raises(HttpConfigError, match="batch_size"):
        http_call([{"id": 1}], url=server.url + "/item/{id}", method="POST", batch_size=2)
    assert not server.requests()


# --- responses and the pool ---------------------------------------------------------------------

def test_response_kinds_and_one_client_per_host(server):
    assert http_call(url=server.url + "/item/5", response="text") == '{"id": "5"}'
    assert http_call(url=server.url + "/item/5", response="bytes") == b'{"id": "5"}'
    table = http_call(url=server.url + "/score", method="POST", body=[{"id": 1, "x": 1}], response="arrow")
    assert table.to_pylist() == [{"id": 1, "score": 2}]
    table = http_call(pa.table({"id": [1, 2]}), url=server.url + "/item/{id}", response="arrow")
    assert table.to_pylist() == [{"id": "1"}, {"id": "2"}]
    assert http_call([], url=server.url + "/item/{id}") == []
    row = http.stats()[f"http://127.0.0.1:{server.port}"]
    assert row["clients_created"] == 1
    assert row["requests"] == len(server.requests()) == 5


def test_http2_without_h2_says_what_to_install(server):
    pytest.importorskip("importlib").util.find_spec("h2") and pytest.skip("h2 is installed")
    with pytest.raises(HttpConfigError, match=r"pip install 'httpx\[http2\]'"):
        http_call(url=server.url + "/item/1", http2=True)
