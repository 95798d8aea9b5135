"""One contract suite, run against both executors (synchronous local and Ray).

Each test drives a real workflow through rf.submit and asserts the outcome, the
per-component states and what the run store recorded.
"""

from __future__ import annotations

import time

import pytest

import rayflow as rf
from tests.fns import execute as fns

EXECUTORS = ["local", "ray"]


@pytest.fixture(params=EXECUTORS)
def executor(request, service):
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param


def states(handle) -> dict[str, str]:
    return {cid: c["state"] for cid, c in handle.metrics()["components"].items()}


@rf.workflow
def diamond(x: int = 1):
    a = fns.const(x)
    b = fns.inc(a)
    c = fns.inc.options(id="c")(a)
    return fns.add(b, c)


def test_diamond_result_states_and_timings(executor, service):
    handle = rf.submit(diamond, executor=executor, x=5)
    assert handle.result(timeout=60) == 12
    metrics = handle.metrics()
    assert set(metrics["components"]) == {"const", "inc", "c", "add"}
    for comp in metrics["components"].values():
        assert comp["state"] == "SUCCEEDED"
        assert comp["attempts"] == 1
        assert comp["started_at"] <= comp["ended_at"]
        assert comp["queued_s"] is not None and comp["queued_s"] >= 0
        assert comp["node_id"]
    assert metrics["critical_path"][0] == "const" and metrics["critical_path"][-1] == "add"
    assert metrics["throughput_cps"] > 0
    # the store has the same, readable by any process
    stored = {c.component_id: c for c in service.store.get_components(handle.run_id)}
    assert {c.state for c in stored.values()} == {"SUCCEEDED"}
    assert service.store.get_run(handle.run_id).status == "SUCCEEDED"
    events = service.store.get_events(handle.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


@rf.workflow
def fan(n: int = 1000):
    return fns.total([fns.const.options(id=f"c{i}")(i) for i in range(n)])


def test_fan_out_fan_in_of_1000(executor, service):
    handle = rf.submit(fan, executor=executor, n=1000)
    assert handle.result(timeout=180) == sum(range(1000))
    assert handle.progress() == {"SUCCEEDED": 1001}


@rf.workflow
def chain(n: int = 50):
    node = fns.const(0)
    for _ in range(n):
        node = fns.inc(node)
    return node


def test_chain(executor, service):
    assert rf.run(chain, executor=executor, n=50) == 50


@rf.workflow(failure_strategy="fail_fast")
def fail_fast_wf():
    bad = fns.boom.options(id="bad")(None)
    after = fns.inc.options(id="after_bad")(bad)
    fns.inc.options(id="after_after")(after)
    slow = fns.sleepy.options(id="slow")(20, 1)
    return fns.inc.options(id="after_slow")(slow)


def test_fail_fast_cancels_in_flight_and_skips_the_rest(executor, service):
    handle = rf.submit(fail_fast_wf, executor=executor)
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    assert info.value.failed == ["bad"]
    assert "ValueError: boom" in info.value.errors["bad"]
    st = states(handle)
    assert st["bad"] == "FAILED"
    assert st["slow"] == "CANCELLED"
    assert st["after_slow"] in {"SKIPPED", "CANCELLED"}
    assert st["after_bad"] in {"SKIPPED", "CANCELLED"}
    assert handle.status() == "FAILED"
    assert service.store.get_run(handle.run_id).status == "FAILED"


@rf.workflow(failure_strategy="continue_on_error")
def continue_wf():
    bad = fns.boom.options(id="bad")(None)
    after = fns.inc.options(id="after_bad")(bad)
    last = fns.inc.options(id="after_after")(after)
    good = fns.inc.options(id="good")(fns.const.options(id="src")(1))
    return {"bad_branch": last, "good_branch": good}


def test_continue_on_error_finishes_independent_branches(executor, service):
    handle = rf.submit(continue_wf, executor=executor)
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    assert info.value.failed == ["bad"]
    assert states(handle) == {
        "bad": "FAILED", "after_bad": "UPSTREAM_FAILED", "after_after": "UPSTREAM_FAILED",
        "src": "SUCCEEDED", "good": "SUCCEEDED",
    }


@rf.workflow
def flaky_wf(ledger: str, fail_times: int = 2, retries: int = 2, retry_on: tuple = (ConnectionError,)):
    return fns.flaky.options(max_retries=retries, retry_exceptions=retry_on)(ledger, fail_times, value=7)


def test_retries_then_success(executor, service, tmp_path):
    ledger = tmp_path / "ledger"
    handle = rf.submit(flaky_wf, executor=executor, ledger=str(ledger), fail_times=2, retries=2)
    assert handle.result(timeout=60) == 7
    assert handle.metrics()["components"]["flaky"]["attempts"] == 3
    assert len(ledger.read_text()) == 3


def test_exceptions_not_listed_are_not_retried(executor, service, tmp_path):
    ledger = tmp_path / "ledger"
    handle = rf.submit(flaky_wf, executor=executor, ledger=str(ledger), fail_times=2, retries=2,
                       retry_on=(KeyError,))
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    assert "ConnectionError" in info.value.errors["flaky"]
    assert len(ledger.read_text()) == 1


@rf.workflow
def timeout_wf(retries: int = 0):
    slow = fns.sleepy.options(timeout_s=0.5, max_retries=retries)(30, 1)
    return fns.inc(slow)


@pytest.mark.parametrize("retries", [0, 1])
def test_timeout_marks_timed_out_after_the_retry_policy(executor, service, retries):
    handle = rf.submit(timeout_wf, executor=executor, retries=retries)
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    assert "timeout_s=0.5" in info.value.errors["sleepy"]
    comp = handle.metrics()["components"]["sleepy"]
    assert comp["state"] == "TIMED_OUT"
    assert comp["attempts"] == retries + 1
    assert states(handle)["inc"] in {"SKIPPED", "CANCELLED"}


@rf.workflow
def slow_chain(n: int = 20, seconds: float = 0.3):
    node = fns.const(0)
    for i in range(n):
        node = fns.sleepy.options(id=f"s{i}")(seconds, node)
    return node


def test_cancel_stops_the_run(executor, service):
    handle = rf.submit(slow_chain, executor=executor, n=20, seconds=0.3)
    deadline = time.monotonic() + 60
    while handle.progress().get("SUCCEEDED", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    handle.cancel()
    assert handle.wait(timeout=30) == "CANCELLED"
    st = states(handle)
    assert "CANCELLED" in st.values()
    assert st["s19"] == "CANCELLED"
    assert set(st.values()) <= {"SUCCEEDED", "CANCELLED"}
    with pytest.raises(rf.RunCancelled):
        handle.result()
    assert service.store.get_run(handle.run_id).status == "CANCELLED"


@rf.workflow
def actor_wf(n: int = 6):
    return [fns.Offset(i) for i in range(n)]


def test_actor_components_share_a_pool(executor, service):
    results = rf.run(actor_wf, executor=executor, n=6)
    assert [r["value"] for r in results] == [100 + i for i in range(6)]
    pids = {r["pid"] for r in results}
    assert 1 <= len(pids) <= 2
    # each actor instance counts its own calls: over the pool they add up to 6
    per_pid = {}
    for r in results:
        per_pid[r["pid"]] = max(per_pid.get(r["pid"], 0), r["calls"])
    assert sum(per_pid.values()) == 6


@rf.workflow(max_concurrency=2)
def bounded(n: int = 6):
    return [fns.sleepy.options(id=f"s{i}")(0.3, i) for i in range(n)]


def test_max_concurrency_bounds_components_in_flight(executor, service):
    handle = rf.submit(bounded, executor=executor, n=6)
    assert handle.result(timeout=60) == list(range(6))
    spans = [(c["started_at"], c["ended_at"]) for c in handle.metrics()["components"].values()]
    for start, _ in spans:
        overlapping = sum(1 for s, e in spans if s <= start < e)
        assert overlapping <= 2


def test_only_outputs_are_fetched_by_the_driver(executor, service, monkeypatch):
    from rayflow.execute.local import LocalExecutor

    cls = LocalExecutor
    if executor == "ray":
        from rayflow.execute.ray.executor import RayExecutor as cls
    fetched: list[set[str]] = []
    original = cls.fetch

    def spy(self, handles):
        fetched.append(set(handles))
        return original(self, handles)

    monkeypatch.setattr(cls, "fetch", spy)
    assert rf.run(diamond, executor=executor, x=1) == 4
    assert fetched == [{"add"}]


def test_a_run_id_is_idempotent(executor, service):
    first = rf.submit(diamond, executor=executor, run_id="fixed-id", x=1)
    assert first.result(timeout=60) == 4
    second = rf.submit(diamond, executor=executor, run_id="fixed-id", x=1)
    assert second.run_id == "fixed-id"
    assert len([r for r in rf.list_runs() if r.run_id == "fixed-id"]) == 1


@rf.workflow
def batch_wf(n: int = 1000, key: int = 1):
    table = fns.numbers(n)
    scaled = fns.scale(table, factor=3.0)
    kept = fns.keep_key(scaled, key=key)
    return {"kept": kept, "total": fns.column_sum(kept)}


def test_batch_components_apply_their_function_to_every_batch(executor, service):
    import pyarrow as pa

    out = rf.run(batch_wf, executor=executor, n=1000, key=1)
    kept = out["kept"]
    assert isinstance(kept, pa.Table)
    assert kept.column("x").to_pylist() == [3.0 * i for i in range(1000) if i % 3 == 1]
    assert max(kept.column("rows_in_batch").to_pylist()) == 100   # batch_size rows at most
    assert out["total"] == sum(3.0 * i for i in range(1000) if i % 3 == 1)


@rf.workflow
def bad_batch_wf():
    return fns.not_arrow(fns.numbers(10))


def test_a_batch_function_returning_something_else_fails_naming_it(executor, service):
    handle = rf.submit(bad_batch_wf, executor=executor)
    assert handle.wait(timeout=60) == "FAILED"
    assert states(handle)["not_arrow"] == "FAILED"
    text = handle.record().error or ""
    assert "not_arrow" in text and "returned a dict" in text and "expected pyarrow.RecordBatch" in text, text


@rf.workflow
def split_wf(n: int = 9):
    parts = fns.split3(list(range(n)))
    sums = [fns.total(part) for part in parts]          # each output its own object
    first, _, last = parts
    return {"sums": sums, "last": last, "all": fns.both(parts), "second": parts[1]}


def test_a_component_with_several_outputs_feeds_each_consumer_its_own(executor, service):
    out = rf.run(split_wf, executor=executor, n=9)
    assert out["sums"] == [0 + 3 + 6, 1 + 4 + 7, 2 + 5 + 8]
    assert out["last"] == [2, 5, 8] and out["second"] == [1, 4, 7]
    assert out["all"] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]   # the whole node: a tuple of its outputs


@rf.workflow
def wrong_count_wf():
    a, b = fns.wrong_count()
    return fns.add(a, b)


def test_returning_the_wrong_number_of_outputs_fails_naming_the_count(executor, service):
    handle = rf.submit(wrong_count_wf, executor=executor)
    assert handle.wait(timeout=60) == "FAILED"
    got = states(handle)
    assert got["wrong_count"] == "FAILED" and got["add"] in ("SKIPPED", "CANCELLED")   # in flight when eager
    text = handle.record().error or ""
    assert "wrong_count" in text and "returned 3 values; expected a tuple of 2 (num_outputs=2)" in text, text


# -- patterns: map-reduce, scatter-gather ----------------------------------------------


@rf.workflow
def map_reduce_wf(n: int = 10, fan_in: int = 3):
    return rf.map_reduce(fns.inc, fns.total, list(range(n)), fan_in=fan_in)


def test_map_reduce_reduces_as_a_tree(executor, service):
    handle = rf.submit(map_reduce_wf, executor=executor, n=10, fan_in=3)
    assert handle.result(timeout=60) == sum(i + 1 for i in range(10))
    reduces = [c for c in states(handle) if c.startswith("total")]
    assert len(reduces) == 4 + 2 + 1            # 10 -> 4 -> 2 -> 1
    assert len(rf.explain(map_reduce_wf, n=10, fan_in=3).levels) == 4   # the map, then 3 reduce levels


@rf.workflow
def scatter_wf(n: int = 40, parts: int = 3, by: str | None = "key", mode: str = "hash"):
    return rf.scatter_gather(fns.keyed(n), fns.mark_part, parts, by=by, mode=mode)


def test_scatter_gather_by_hash_keeps_each_key_in_one_part(executor, service):
    table = rf.run(scatter_wf, executor=executor, n=40, parts=3)
    assert table.num_rows == 40
    part_of: dict[int, set[str]] = {}
    for key, part in zip(table.column("key").to_pylist(), table.column("part_keys").to_pylist(), strict=True):
        part_of.setdefault(key, set()).add(part)
    assert all(len(p) == 1 for p in part_of.values())   # every key seen in exactly one part


def test_scatter_gather_by_range_gathers_in_key_order_and_by_position_keeps_rows_in_order(executor, service):
    by_range = rf.run(scatter_wf, executor=executor, n=40, parts=3, mode="range")
    assert by_range.column("key").to_pylist() == sorted(by_range.column("key").to_pylist())
    by_position = rf.run(scatter_wf, executor=executor, n=10, parts=4, by=None)
    assert by_position.column("x").to_pylist() == list(range(10))


@rf.workflow(failure_strategy="fail_fast")
def scatter_fail_fast():
    return rf.scatter_gather(fns.keyed(40), fns.fail_on_key, 4, by="key")


@rf.workflow(failure_strategy="continue_on_error")
def scatter_continue():
    return rf.scatter_gather(fns.keyed(40), fns.fail_on_key, 4, by="key")


@pytest.mark.parametrize("wf", [scatter_fail_fast, scatter_continue], ids=["fail_fast", "continue_on_error"])
def test_a_failure_inside_one_partition(executor, service, wf):
    handle = rf.submit(wf, executor=executor)
    assert handle.wait(timeout=60) == "FAILED"
    got = states(handle)
    parts = {cid: s for cid, s in got.items() if cid.startswith("fail_on_key")}
    assert sorted(parts.values()).count("FAILED") == 1       # exactly the part holding key 3
    if wf is scatter_continue:
        assert [s for s in parts.values() if s != "FAILED"] == ["SUCCEEDED"] * 3   # the others finish
        assert got["gather"] == "UPSTREAM_FAILED"
    else:
        assert got["gather"] in ("SKIPPED", "CANCELLED")
        assert set(parts.values()) <= {"FAILED", "SUCCEEDED", "CANCELLED", "SKIPPED"}


# -- streams: chains of batch components run as pipelines on Ray -----------------------


@rf.workflow
def stream_wf(n: int = 10_000, pause: float = 0.0, fail_at_key_sum: int | None = None):
    return fns.tail_stage(fns.slow_square(fns.parse(fns.keyed(n)), pause=pause), pause=pause,
                          fail_at_key_sum=fail_at_key_sum)


@rf.workflow(failure_strategy="continue_on_error")
def stream_continue_wf(n: int = 10_000, fail_at_key_sum: int | None = None):
    return fns.tail_stage(fns.slow_square(fns.parse(fns.keyed(n))), fail_at_key_sum=fail_at_key_sum)


def test_a_chain_of_batch_components_is_one_stream_in_the_plan(executor, service):
    assert rf.explain(stream_wf).streams == (("parse", "slow_square", "tail_stage"),)


def test_a_stream_gives_the_same_table_and_every_stage_its_own_timings(executor, service):
    handle = rf.submit(stream_wf, executor=executor, n=10_000, pause=0.05)
    table = handle.result(timeout=120)
    assert table.column("y").to_pylist() == [float(i * i) for i in range(10_000)]
    comps = handle.metrics()["components"]
    for stage in ("parse", "slow_square", "tail_stage"):
        assert comps[stage]["state"] == "SUCCEEDED" and comps[stage]["duration_s"] is not None
    if executor == "ray":   # pipelined: the last stage started before the middle one finished
        assert comps["tail_stage"]["started_at"] < comps["slow_square"]["ended_at"]


@pytest.mark.parametrize("wf", [stream_wf, stream_continue_wf], ids=["fail_fast", "continue_on_error"])
def test_a_failing_stage_of_a_stream(executor, service, wf):
    handle = rf.submit(wf, executor=executor, n=10_000, fail_at_key_sum=1)
    assert handle.wait(timeout=120) == "FAILED"
    got = states(handle)
    assert got["tail_stage"] == "FAILED"
    assert got["keyed"] == "SUCCEEDED"
    assert got["parse"] in ("SUCCEEDED", "CANCELLED") and got["slow_square"] in ("SUCCEEDED", "CANCELLED")
    assert "cannot take this batch" in (handle.record().error or "")


@rf.workflow
def ledger_stream(path: str, n: int = 2000):
    return fns.ledger_last(fns.ledger_first(fns.keyed(n), path=path), path=path)


def test_a_stream_keeps_at_most_buffer_size_batches_in_flight(executor, service, tmp_path):
    if executor == "local":
        pytest.skip("the local executor runs a stream's stages one after the other, on all of the data")
    ledger = tmp_path / "ledger.txt"
    table = rf.run(ledger_stream, executor=executor, path=str(ledger), n=2000)
    assert table.num_rows == 2000
    entered, peak = fns.ledger_peak(str(ledger))
    assert entered == 20
    print("peak batches in flight", peak)
    assert peak >= 2       # the stages overlap
    assert peak <= 3 + 1   # buffer_size=3 (the smallest in the stream); +1: the next batch enters as one leaves


@rf.workflow
def too_big_stream(n: int = 3000):
    return fns.whole_cpu_stage.options(id="s3")(fns.whole_cpu_stage.options(id="s2")(
        fns.whole_cpu_stage.options(id="s1")(fns.keyed(n))))


def test_a_stream_whose_stages_cannot_all_be_placed_at_once_runs_stage_by_stage(executor, service):
    handle = rf.submit(too_big_stream, executor=executor, n=3000)
    assert handle.result(timeout=60).num_rows == 3000


def test_a_stream_over_no_rows_gives_the_last_stages_schema_on_both_executors(executor, service):
    table = rf.run(stream_wf, executor=executor, n=0)
    assert table.num_rows == 0 and table.column_names == ["y", "key"]
