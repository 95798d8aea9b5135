"""rf.map under both executors: a list or a table's batches whose length is known only at
run time, empty input, a failing item under each failure strategy, retries per item,
max_concurrency measured from the items' own start and end times, and the per-item
outcome in the component's metrics."""

from __future__ import annotations

import time

import pytest

import rayflow as rf
from tests.fns import execute as fns
from tests.fns import patterns as pf


def states(handle) -> dict[str, str]:
    return {cid: c["state"] for cid, c in handle.metrics()["components"].items()}


@rf.workflow
def squares(n: int = 5, offset: int = 0):
    return rf.map(pf.square, pf.numbers(n), kwargs={"offset": fns.const(offset)})


@pytest.mark.parametrize("n", [7, 0])
def test_a_list_known_only_at_run_time(executor, service, n):
    handle = rf.submit(squares, executor=executor, n=n, offset=1)
    assert handle.result(timeout=60) == [i * i + 1 for i in range(n)]
    comp = handle.metrics()["components"]["map_square"]
    assert comp["state"] == "SUCCEEDED"
    assert comp["resources"] == {"num_cpus": 0.0}                  # the map itself asks for no CPU
    outcome = comp["outcome"]
    assert (outcome["items"], outcome["succeeded"], outcome["failed"], outcome["cancelled"]) == (n, n, 0, 0)
    assert len(outcome["durations_s"]) == n and all(d is not None and d >= 0 for d in outcome["durations_s"])
    assert outcome["errors"] == []
    stored = {c.component_id: c for c in service.store.get_components(handle.run_id)}
    assert stored["map_square"].outcome["items"] == n             # kept in the store too


@rf.workflow
def per_batch(n: int = 1000, batch_size: int | None = 300, chunk: int | None = None):
    return pf.collect(rf.map(pf.batch_stats, pf.table(n, chunk=chunk), batch_size=batch_size))


def test_a_tables_batches_of_batch_size_rows(executor, service):
    got = rf.run(per_batch, executor=executor, n=1000, batch_size=300)
    assert got == [{"rows": 300, "first": 0, "last": 299}, {"rows": 300, "first": 300, "last": 599},
                   {"rows": 300, "first": 600, "last": 899}, {"rows": 100, "first": 900, "last": 999}]


def test_a_tables_own_record_batches_without_batch_size(executor, service):
    got = rf.run(per_batch, executor=executor, n=250, batch_size=None, chunk=100)
    assert [g["rows"] for g in got] == [100, 100, 50]
    assert [g["first"] for g in got] == [0, 100, 200]


def test_a_table_without_rows_maps_to_an_empty_list(executor, service):
    handle = rf.submit(per_batch, executor=executor, n=0, batch_size=10)
    assert handle.result(timeout=60) == []
    assert handle.metrics()["components"]["map_batch_stats"]["outcome"]["items"] == 0


@rf.workflow(failure_strategy="continue_on_error")
def failing_continue(n: int = 6, bad: int = 3):
    mapped = rf.map(pf.square_or_fail, pf.numbers(n), failure_strategy="continue_on_error", kwargs={"bad": bad})
    return pf.collect(mapped)


def test_a_failing_item_under_continue_on_error(executor, service):
    handle = rf.submit(failing_continue, executor=executor, n=6, bad=3)
    assert handle.result(timeout=60) == [0, 1, 4, None, 16, 25]    # None where the item failed
    comp = handle.metrics()["components"]["map_square_or_fail"]
    assert comp["state"] == "SUCCEEDED"
    outcome = comp["outcome"]
    assert (outcome["items"], outcome["succeeded"], outcome["failed"]) == (6, 5, 1)
    assert outcome["errors"] == [{"item": 3, "error": "ValueError: item 3 is bad"}]


@rf.workflow
def failing_fast(n: int = 8, bad: int = 1, cap: int | None = 1, pause: float = 0.3):
    mapped = rf.map(pf.slow_or_fail, pf.numbers(n), max_concurrency=cap, kwargs={"bad": bad, "pause": pause})
    return pf.collect(mapped)


def test_a_failing_item_under_fail_fast_stops_the_map(executor, service):
    handle = rf.submit(failing_fast, executor=executor, n=8, bad=1, cap=1)
    with pytest.raises(rf.WorkflowFailed) as info:
        handle.result(timeout=60)
    error = info.value.errors["map_slow_or_fail"]
    assert error.startswith("MapItemFailed: item 1 of 8 failed: ValueError: item 1 is bad"), error
    got = states(handle)
    assert got["map_slow_or_fail"] == "FAILED" and got["collect"] in ("SKIPPED", "CANCELLED")
    outcome = handle.metrics()["components"]["map_slow_or_fail"]["outcome"]
    # one at a time: item 0 ran, item 1 failed, the other six never started
    assert (outcome["succeeded"], outcome["failed"], outcome["cancelled"]) == (1, 1, 6)


def test_fail_fast_cancels_the_items_in_flight(executor, service):
    handle = rf.submit(failing_fast, executor=executor, n=8, bad=0, cap=None, pause=3.0)
    assert handle.wait(timeout=60) == "FAILED"
    outcome = handle.metrics()["components"]["map_slow_or_fail"]["outcome"]
    assert outcome["failed"] == 1 and outcome["items"] == 8
    if executor == "ray":   # the failing item ends first; the slow ones still running are cancelled
        assert outcome["cancelled"] >= 1
    else:                   # one after another: item 0 fails first, nothing else starts
        assert outcome["cancelled"] == 7


@rf.workflow
def bounded(n: int = 6, cap: int = 2):
    return rf.map(pf.span, pf.numbers(n), max_concurrency=cap, kwargs={"pause": 0.25})


@pytest.mark.parametrize("cap", [1, 2])
def test_max_concurrency_bounds_the_items_in_flight(executor, service, cap):
    spans = rf.run(bounded, executor=executor, n=6, cap=cap)
    assert len(spans) == 6
    most = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert most <= cap


@rf.workflow
def retried(ledgers: list):
    return rf.map(pf.flaky_item, pf.collect(ledgers), kwargs={"fail_times": 1})


def test_each_item_keeps_the_mapped_components_retries(executor, service, tmp_path):
    ledgers = [str(tmp_path / f"l{i}") for i in range(3)]
    handle = rf.submit(retried, executor=executor, ledgers=ledgers)
    assert handle.result(timeout=60) == [2, 2, 2]                  # each item: one failure, then success
    assert handle.metrics()["components"]["map_flaky_item"]["outcome"]["retries"] == 3


@rf.workflow(failure_strategy="continue_on_error")
def upstream_fails():
    return rf.map(pf.square, fns.boom.options(id="bad")(None))


def test_a_failed_upstream_makes_the_map_upstream_failed(executor, service):
    handle = rf.submit(upstream_fails, executor=executor)
    assert handle.wait(timeout=60) == "FAILED"
    assert states(handle) == {"bad": "FAILED", "map_square": "UPSTREAM_FAILED"}


@rf.workflow
def long_items(ledger: str, n: int = 6):
    return rf.map(pf.logged_nap, pf.numbers(n), max_concurrency=2, kwargs={"ledger": ledger, "pause": 3.0})


def test_on_ray_cancelling_the_run_cancels_the_items_in_flight(ray_session, service, tmp_path):
    ledger = tmp_path / "ledger"
    ledger.touch()
    handle = rf.submit(long_items, executor="ray", ledger=str(ledger), n=6)
    deadline = time.monotonic() + 60
    while "start" not in ledger.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    handle.cancel()
    assert handle.wait(timeout=30) == "CANCELLED"
    time.sleep(4.0)   # longer than an item's nap: an item left running would have ended by now
    assert "end" not in ledger.read_text()


@rf.workflow
def on_half_cpus(n: int = 4):
    return rf.map(pf.assigned_cpus, pf.numbers(n))


def test_on_ray_each_item_is_a_task_with_the_mapped_components_resources(ray_session, service):
    assert rf.run(on_half_cpus, executor="ray", n=4) == [0.5] * 4


def test_wrong_inputs_are_refused_naming_the_map(executor, service):
    @rf.workflow
    def not_a_list():
        return rf.map(pf.square, fns.const(5))

    handle = rf.submit(not_a_list, executor=executor)
    assert handle.wait(timeout=60) == "FAILED"
    assert "a dynamic map needs a list, tuple, pyarrow.Table or pyarrow.RecordBatch to map over, got int" \
        in handle.metrics()["components"]["map_square"]["error"]


def test_options_are_checked_while_tracing_and_a_plain_call_maps_in_process():
    with pytest.raises(rf.SpecError, match="field 'max_concurrency'"):
        rf.map(pf.square, [1], max_concurrency=0)
    with pytest.raises(rf.SpecError, match="field 'failure_strategy'"):
        rf.map(pf.square, [1], failure_strategy="sometimes")
    with pytest.raises(rf.SpecError, match="actor component cannot be mapped"):
        rf.map(fns.Offset, [1])
    assert rf.map(pf.square, [1, 2, 3], kwargs={"offset": 1}) == [2, 5, 10]
    assert rf.map(pf.square_or_fail, [2, 3], failure_strategy="continue_on_error") == [4, None]


@rf.workflow
def cached_map(n: int = 3, batch_size: int | None = None):
    return rf.map(pf.square.options(cache=True), pf.numbers.options(cache=True)(n), batch_size=batch_size)


def test_a_cached_maps_key_covers_its_settings():
    def key(**inputs):
        return rf.explain(cached_map, **inputs).tasks["map_square"].cache_key

    assert key(n=3) is not None and key(n=3) == key(n=3)
    assert key(n=3, batch_size=2) != key(n=3)
