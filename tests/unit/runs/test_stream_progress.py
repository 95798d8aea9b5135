"""Batch progress of streams, without Ray: the input's row count, the throttled counter,
and the driver's bars (tqdm replaced by a recording fake)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from rayflow.data.progress import StreamCounter, source_rows
from rayflow.runs import progress


def table(n: int) -> pa.Table:
    return pa.table({"x": list(range(n))})


# -- the input's row count ------------------------------------------------------------------


class Generated:
    """A re-iterable input that says how many rows it will make."""

    num_rows = 30

    def __iter__(self):
        for _ in range(3):
            yield table(10).to_batches()[0]


def test_rows_of_tables_batches_lists_and_declared_iterables():
    assert source_rows(table(7)) == 7
    assert source_rows(table(7).to_batches()[0]) == 7
    assert source_rows([table(3), table(4).to_batches()[0]]) == 7
    assert source_rows(Generated()) == 30


def test_rows_of_parquet_files_directories_and_datasets(tmp_path):
    pq.write_table(table(5), tmp_path / "a.parquet")
    pq.write_table(table(6), tmp_path / "b.parquet")
    assert source_rows(str(tmp_path / "a.parquet")) == 5
    assert source_rows(tmp_path) == 11
    assert source_rows(ds.dataset(tmp_path)) == 11


def test_unknown_rows_are_none():
    assert source_rows(iter([table(3)])) is None           # a generator does not tell
    assert source_rows([table(3), "not a batch"]) is None
    assert source_rows("/no/such/parquet/here") is None     # the stream reports the error itself

    class Odd:
        num_rows = "many"

    class Failing:
        @property
        def num_rows(self):
            raise RuntimeError("cannot tell")

    assert source_rows(Odd()) is None
    assert source_rows(Failing()) is None   # progress without a total, the stream goes on
    assert source_rows(42) is None


# -- the counter ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_first_report_is_due_at_once_then_at_most_every_interval():
    clock = Clock()
    c = StreamCounter(["a", "b"], 1000, every_s=0.5, clock=clock)
    assert c.due()                     # at once: the watcher learns the total
    assert not c.add(100, 1)           # same instant: not yet
    clock.t += 0.2
    assert not c.add(100, 1)
    clock.t += 0.3
    assert c.add(100, 1)               # 0.5 s after the first report
    assert not c.add(100, 1)
    clock.t += 10
    assert c.add(100, 1)


def test_a_snapshot_counts_batches_rows_and_the_rate_after_start_up():
    clock = Clock()
    c = StreamCounter(["parse", "transform", "aggregate"], 400, clock=clock)
    clock.t += 5.0                     # the stages' actors start: no batch out yet
    c.add(100, 1)
    assert c.rows_per_s() == 0.0       # one batch out: no rate yet
    for _ in range(3):
        clock.t += 0.5
        c.add(100, 1)
    snap = c.snapshot(done=True)
    assert snap == {"stages": ["parse", "transform", "aggregate"], "batches": 4, "rows": 400, "rows_out": 4,
                    "total_rows": 400, "elapsed_s": 6.5, "rows_per_s": 200.0, "done": True}


def test_a_snapshot_before_any_time_passed_has_no_rate():
    snap = StreamCounter(["a"], None, clock=Clock()).snapshot()
    assert snap["rows_per_s"] == 0.0 and snap["total_rows"] is None and not snap["done"]


# -- the bars -------------------------------------------------------------------------------


class FakeBar:
    made: list[FakeBar] = []

    def __init__(self, total=None, desc="", **kw) -> None:
        self.total, self.desc, self.kw, self.n = total, desc, kw, 0
        self.postfix: dict = {}
        self.closed = False
        FakeBar.made.append(self)

    def update(self, n: int) -> None:
        self.n += n

    def set_postfix(self, refresh: bool = True, **kw) -> None:
        self.postfix = kw

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def fake_tqdm(monkeypatch):
    FakeBar.made = []
    monkeypatch.setattr(progress, "_tqdm_class", lambda: FakeBar)
    monkeypatch.setattr(progress, "_nested_ok", lambda tqdm: True)   # widgets or a terminal
    return FakeBar


def snap(rows: int, batches: int, total: int | None, done: bool = False) -> dict:
    return {"stages": ["parse", "transform", "aggregate"], "batches": batches, "rows": rows, "rows_out": batches,
            "total_rows": total, "elapsed_s": 1.0, "rows_per_s": float(rows), "done": done}


def test_one_bar_per_stream_in_rows_with_batches_and_the_total(fake_tqdm):
    bars = progress.StreamBars(FakeBar)
    bars.update({"aggregate": snap(0, 0, 1000)})
    bars.update({"aggregate": snap(400, 4, 1000)})
    bars.update({"aggregate": snap(1000, 10, 1000, done=True)})
    (bar,) = FakeBar.made
    assert bar.desc == "parse -> transform -> aggregate"
    assert bar.kw["unit"] == "rows" and bar.kw["unit_scale"]
    assert (bar.n, bar.total, bar.postfix) == (1000, 1000, {"batches": 10})
    bars.close()
    assert bar.closed


def test_a_bar_without_a_known_total_counts_rows_only():
    FakeBar.made = []
    bars = progress.StreamBars(FakeBar)
    bars.update({"aggregate": snap(500, 5, None)})
    assert FakeBar.made[0].total is None and FakeBar.made[0].n == 500


def test_a_long_stream_is_labelled_by_its_ends():
    assert progress.stream_label({"stages": list("abcdef")}) == "a -> ... -> e -> f"


class FakeHandle:
    """Running for three polls, its stream moving, then SUCCEEDED."""

    run_id = "run-1"

    def __init__(self) -> None:
        self.polls = 0

    def wait(self, timeout=None):
        self.polls += 1
        if self.polls < 4:
            raise TimeoutError
        return "SUCCEEDED"

    def progress(self):
        return {"SUCCEEDED": 3} if self.polls >= 4 else {"RUNNING": 3}

    def stream_progress(self):
        return {"aggregate": snap(250 * self.polls, self.polls, 1000, done=self.polls >= 4)}


def test_follow_draws_the_component_bar_and_the_stream_bar(fake_tqdm):
    assert progress.follow(FakeHandle(), poll_s=0) == "SUCCEEDED"
    components, stream = FakeBar.made
    assert components.n == 3 and components.kw["unit"] == "comp"
    assert stream.n == 1000 == stream.total and stream.closed


def test_where_bars_cannot_nest_the_rows_go_in_the_component_bars_postfix(fake_tqdm, monkeypatch):
    monkeypatch.setattr(progress, "_nested_ok", lambda tqdm: False)   # text, not a terminal
    assert progress.follow(FakeHandle(), poll_s=0) == "SUCCEEDED"
    (components,) = FakeBar.made
    assert components.postfix["aggregate"] == "1.00k/1.00k rows @ 1.00k/s (4 batches)"
    assert components.postfix["running"] == 0 and components.n == 3


def test_a_postfix_without_a_total_shows_rows_only():
    got = progress.stream_postfix({"aggregate": snap(2_500_000, 25, None)})
    assert got == {"aggregate": "2.50M rows @ 2.50M/s (25 batches)"}


def test_text_bars_nest_only_in_a_terminal(monkeypatch):
    from tqdm.std import tqdm

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert not progress._nested_ok(tqdm)
