"""The run report: plotly figures, the self-contained HTML page, the notebook view, the CLI.

No Ray: runs are built by hand (tests/fns/report_sample.py) and metrics come from
``run_metrics`` over them. The screenshot test renders the page in headless Chromium.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from rayflow.report import dag_figure, gantt, handle_html, render_html, run_html, write_html
from rayflow.report.common import CRITICAL_COLOUR, STATE_COLOURS
from rayflow.store.sqlite import SqliteStore
from tests.fns.report_sample import EVIL_ID, RUN_ID, big_run, sample_run
from tests.helpers import REPO

ROOT = REPO
NOT_STARTED = {"publish"}


def bar_traces(fig) -> dict[str, object]:
    return {t.name: t for t in fig.data if t.type == "bar"}


def bar_ids(fig) -> set[str]:
    return {cid for t in fig.data if t.type == "bar" and t.name != "queue wait" for cid in t.customdata}


# --- Gantt ----------------------------------------------------------------------------------


def test_gantt_has_one_bar_per_component_that_ran():
    _, comps, metrics = sample_run()
    fig = gantt(metrics)
    ran = {c.component_id for c in comps} - NOT_STARTED
    assert bar_ids(fig) == ran
    assert sum(len(t.customdata) for t in fig.data if t.name != "queue wait") == len(ran)
    assert "14 of 15 components ran" in fig.layout.title.text


def test_gantt_highlights_the_critical_path_and_failures():
    _, _, metrics = sample_run()
    traces = bar_traces(gantt(metrics))
    critical = traces["critical path"]
    assert set(critical.customdata) == set(metrics["critical_path"])
    assert critical.marker.color == CRITICAL_COLOUR
    assert list(traces["failed"].customdata) == ["validate"]
    assert traces["failed"].marker.color == STATE_COLOURS["FAILED"] == "#d62728"
    assert "error: ValueError" in traces["failed"].hovertext[0]
    assert critical.showlegend is not False


def test_gantt_bars_span_start_to_end_after_a_queue_wait():
    _, comps, metrics = sample_run()
    traces = bar_traces(gantt(metrics))
    train = traces["critical path"]
    i = list(train.customdata).index("train")
    assert train.base[i] == pytest.approx(6.30 - 0.0)  # first component became ready at T0 + 0.0
    assert train.x[i] == pytest.approx(3.1)
    queue = traces["queue wait"]
    rows = list(queue.y)
    j = rows.index("train")
    assert queue.base[j] + queue.x[j] == pytest.approx(train.base[i])
    assert "attempts: 1" in train.hovertext[i] and "node: n9f8e7d6c5b4" in train.hovertext[i]


def test_gantt_escapes_user_ids_in_labels():
    _, _, metrics = sample_run()
    fig = gantt(metrics)
    labels = [y for t in fig.data for y in (t.y or ())]
    assert "&lt;script&gt;x&lt;/script&gt;" in labels
    assert EVIL_ID not in labels
    assert EVIL_ID not in fig.to_json()


def test_gantt_by_worker_has_a_row_per_worker():
    _, _, metrics = sample_run()
    fig = gantt(metrics, by="worker")
    rows = {y for t in fig.data for y in t.y}
    assert rows == {"worker w1a2b3c4 @ n9f8e7d6", "worker w2b3c4d5 @ n9f8e7d6",
                    "worker w3c4d5e6 @ n1a2b3c4", "(no worker)"}
    assert "queue wait" not in bar_traces(fig)
    assert bar_ids(fig) == set(metrics["components"]) - NOT_STARTED
    with pytest.raises(ValueError, match="by='node'"):
        gantt(metrics, by="node")  # type: ignore[arg-type]


def test_gantt_of_a_large_run_shows_the_longest_and_the_critical_path():
    _, _, metrics = big_run(420)
    fig = gantt(metrics)
    shown = bar_ids(fig)
    assert len(shown) == 300  # the 5 critical (10 s) are among the 300 longest
    assert set(metrics["critical_path"]) <= shown
    assert "showing the 300 longest" in fig.layout.title.text
    small = gantt(metrics, max_rows=3)
    assert bar_ids(small) == set(metrics["critical_path"])


def test_gantt_of_a_run_where_nothing_ran():
    run, comps, _ = sample_run()
    from rayflow.metrics.summary import run_metrics

    pending = [type(c)(run_id=c.run_id, component_id=c.component_id, upstream=c.upstream) for c in comps]
    fig = gantt(run_metrics(run, pending, now=run.ended_at))
    assert bar_ids(fig) == set()


# --- DAG ------------------------------------------------------------------------------------


def test_dag_figure_lays_out_levels_and_highlights_the_critical_path():
    _, comps, metrics = sample_run()
    fig = dag_figure(comps, metrics["critical_path"])
    nodes = [t for t in fig.data if t.mode and "markers" in t.mode]
    placed = {cid: x for t in nodes for cid, x in zip(t.customdata, t.x, strict=True)}
    assert set(placed) == {c.component_id for c in comps}
    assert placed["load"] == 0 and placed["clean_0"] == 1 and placed["join"] == 3
    assert placed["publish"] == 6
    edges = {t.name: t for t in fig.data if t.mode == "lines"}
    assert len(edges["critical path"].x) == 3 * (len(metrics["critical_path"]) - 1)
    assert edges["critical path"].line.color == CRITICAL_COLOUR
    assert {t.name for t in nodes} == {"succeeded", "failed", "cached", "upstream failed"}
    failed = next(t for t in nodes if t.name == "failed")
    assert failed.marker.color == "#d62728"


def test_dag_figure_notes_instead_of_drawing_huge_dags():
    _, comps, metrics = big_run(420)
    fig = dag_figure(comps, metrics["critical_path"], max_nodes=400)
    assert not fig.data
    assert "420 components" in fig.layout.annotations[0].text
    assert "no components" in dag_figure([], []).layout.annotations[0].text


# --- the HTML page --------------------------------------------------------------------------


def test_page_is_self_contained_and_escaped():
    run, comps, metrics = sample_run()
    page = render_html(run, metrics, comps)
    assert RUN_ID in page and "FAILED" in page
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "column &lt;amount&gt; &amp; &#x27;total&#x27;" in page  # error text escaped
    assert page.count("plotly.js v") == 1  # the library, inlined once
    assert 'src="http' not in page and "src='http" not in page
    assert not re.search(r"<script[^>]*\bsrc=", page)  # every script is inline
    assert not re.search(r"<link[^>]*\bhref=", page)
    assert page.count('class="plotly-graph-div"') == 3  # Gantt, by worker, DAG


def test_page_shows_summary_gantt_dag_bottlenecks_and_table():
    run, comps, metrics = sample_run()
    page = render_html(run, metrics, comps)
    for heading in ("Summary", "Timeline", "Timeline by worker", "DAG", "Bottlenecks", "Components"):
        assert f"<h2>{heading}</h2>" in page
    assert "queue wait p50 / p95 / p99" in page and "components/s" in page
    assert "10.30s" in page  # critical path length: from the run's start to evaluate's end
    bottlenecks = page.split("<h2>Bottlenecks</h2>")[1].split("<h2>")[0]
    assert bottlenecks.index("train") < bottlenecks.index("features_1")  # largest share first
    assert "30%" in bottlenecks  # 3.1 s of 10.3 s
    table = page.split("<h2>Components</h2>")[1]
    assert table.count("<tr>") == 1 + len(comps)


def test_write_html_creates_the_file(tmp_path):
    run, comps, metrics = sample_run()
    out = write_html(tmp_path / "sub" / "report.html", run, metrics, comps)
    assert out.is_absolute() and out.exists()
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_package_does_not_import_ray():
    code = "import sys, rayflow.report; sys.exit(1 if 'ray' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# --- notebook -------------------------------------------------------------------------------


class FakeHandle:
    """What RunHandle offers the notebook view, with the proposed ``_repr_html_``."""

    def __init__(self, metrics: dict) -> None:
        self._metrics = metrics

    def metrics(self) -> dict:
        return self._metrics

    def _repr_html_(self) -> str:
        from rayflow.report.notebook import run_html

        return run_html(self)


def test_notebook_snippet_has_summary_gantt_and_table():
    _, _, metrics = sample_run()
    snippet = handle_html(metrics)
    assert not snippet.lstrip().startswith("<!DOCTYPE") and "<html" not in snippet
    assert RUN_ID in snippet and 'class="plotly-graph-div"' in snippet
    assert snippet.count("plotly.js v") == 1 and 'src="http' not in snippet
    assert EVIL_ID not in snippet
    assert run_html(FakeHandle(metrics)).count("<tr>") == 1 + len(metrics["components"])


def test_notebook_display_uses_the_snippet():
    formatters = pytest.importorskip("IPython.core.formatters")
    _, _, metrics = sample_run()
    data = formatters.DisplayFormatter().format(FakeHandle(metrics))[0]
    assert "text/html" in data and RUN_ID in data["text/html"]


def test_notebook_snippet_links_the_runs_page_on_a_server_and_nothing_else():
    _, _, metrics = sample_run()
    page = "http://head:8470/#/run/etl-1"
    assert f'<a href="{page}" target="_blank" rel="noopener">open on the server</a>' in handle_html(metrics, page_url=page)
    assert "open on the server" not in handle_html(metrics)
    assert "open on the server" not in handle_html(metrics, page_url="javascript:alert(1)")


def test_a_run_handles_notebook_view_links_the_configured_servers_page(monkeypatch, tmp_path):
    import rayflow as rf

    rf.init(store=f"sqlite:///{tmp_path / 'rf.db'}", checkpoints=str(tmp_path / "ck"))
    from tests.fns.logs import talk

    h = rf.submit(talk, executor="local", x=2)
    h.wait(timeout=60)
    monkeypatch.setenv("RAYFLOW_SERVER", "http://head.internal:8470/")
    assert f'href="http://head.internal:8470/#/run/{h.run_id}"' in h._repr_html_()
    monkeypatch.setenv("RAYFLOW_SERVER", "local")
    assert "open on the server" not in h._repr_html_()


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def stored_run(tmp_path) -> str:
    """A store file holding the sample run, written by hand: no Ray, no driver."""
    run, comps, _ = sample_run()
    path = tmp_path / "runs.db"
    store = SqliteStore(path)
    store.create_run(run, [])
    store.upsert_components(comps)
    store.close()
    return f"sqlite:///{path}"


def rayflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAYFLOW_STORE", "RAY_ADDRESS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "rayflow.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=cwd)


def test_cli_report_html_writes_the_page(stored_run, tmp_path):
    proc = rayflow("report", RUN_ID, "--html", "out.html", "--store", stored_run, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out.html"
    assert out.exists() and proc.stdout.strip() == str(out.resolve())
    page = out.read_text(encoding="utf-8")
    assert f"Timeline of {RUN_ID}" in page and page.count("plotly.js v") == 1


def test_cli_report_without_html_prints_the_table(stored_run, tmp_path):
    proc = rayflow("report", RUN_ID, "--store", stored_run, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert RUN_ID in proc.stdout and "critical path" in proc.stdout
    assert not list(tmp_path.glob("*.html"))


def test_cli_report_of_an_unknown_run_exits_2(stored_run, tmp_path):
    proc = rayflow("report", "no-such-run", "--html", "x.html", "--store", stored_run, cwd=tmp_path)
    assert proc.returncode == 2 and "no-such-run" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.html").exists()


# --- a real browser -------------------------------------------------------------------------


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB/RGBA, non-interlaced PNG (zlib only)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, bpp = 8, [], 0, 0, 3
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and not interlace, "unsupported PNG layout"
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    prev, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), prev, bpp)
        rows.append(bytes(b for i, b in enumerate(line) if i % bpp < 3) if bpp == 4 else bytes(line))
        prev = line
    return width, height, rows


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> bytearray:
    if kind == 2:
        return bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
    for i in range(len(line)) if kind in (1, 3, 4) else ():
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 255
        elif kind == 3:
            line[i] = (line[i] + (left + prev[i]) // 2) & 255
        else:
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
    return line


def count_colour(rows: list[bytes], hex_colour: str) -> int:
    rgb = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(1 for row in rows for i in range(0, len(row), 3) if row[i:i + 3] == rgb)


@pytest.mark.slow
def test_headless_chromium_screenshot_shows_the_charts(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    run, comps, metrics = sample_run()
    page = write_html(tmp_path / "out.html", run, metrics, comps)
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1800",
                    f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 20_000
    width, height, rows = read_png(shot)
    assert (width, height) == (1400, 1800)
    assert len(set(rows)) > 300, "the screenshot is (nearly) blank"
    # Without the figures the page has ~4k critical-path-orange and ~2k succeeded-blue pixels
    # (badges and text); the drawn Gantt chart and DAG bring tens of thousands more.
    assert count_colour(rows, CRITICAL_COLOUR) > 15_000
    assert count_colour(rows, STATE_COLOURS["SUCCEEDED"]) > 10_000
