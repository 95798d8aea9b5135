"""The worker's capture of what an attempt prints and logs (rayflow/execute/worker/capture.py)."""

from __future__ import annotations

import logging
import sys
import threading

import pytest

from rayflow.execute.worker import capture
from rayflow.execute.worker.capture import LogTarget, Tail
from rayflow.execute.worker.invoke import CallInfo, ComponentFailure, invoke

TARGET = LogTarget(None, "r1", max_bytes=1024, inline_bytes=4096)


class Streams:
    """What reached the process's stdout and stderr (pytest's capture, which the routers wrap)."""

    def __init__(self, capsys) -> None:
        self._capsys = capsys
        self._out = self._err = ""
        capsys.readouterr()

    def _read(self) -> None:
        got = self._capsys.readouterr()
        self._out += got.out
        self._err += got.err

    @property
    def out(self) -> str:
        self._read()
        return self._out

    @property
    def err(self) -> str:
        self._read()
        return self._err


@pytest.fixture
def stream(capsys):
    s = Streams(capsys)
    return s, s


def test_a_tail_keeps_the_last_bytes_whole_lines_and_marks_the_cut():
    log = Tail(TARGET, "c", 1)
    for i in range(1000):
        log.write(f"{i:04d} {'z' * 20}\n")
    text = log.text()
    head, _, kept = text.partition("\n")
    assert head.startswith("[rayflow: the first ") and "are kept]" in head
    assert len(kept.encode()) <= 1024
    lines = kept.splitlines()
    assert lines[-1].startswith("0999 ") and all(len(x) == 25 for x in lines)   # whole lines only
    cut = int(head.split("first ")[1].split(" bytes")[0].replace(",", ""))
    assert cut + len(kept.encode()) == 1000 * 26


def test_what_a_call_prints_goes_to_its_log_and_not_to_the_stream(stream):
    out, err = stream

    def f(x):
        print("to stdout", x)
        print("to stderr", file=sys.stderr)
        logging.getLogger("t.capture").warning("careful")
        return x

    value, meta = invoke(f, CallInfo("c", None, {}, log=TARGET), (1,))
    assert value == 1
    assert meta["log"].splitlines()[:2] == ["to stdout 1", "to stderr"]
    assert meta["log"].splitlines()[2].endswith("WARNING t.capture: careful")
    assert out.out == "" and err.err == ""
    print("after the call")   # this thread is no longer captured
    assert out.out == "after the call\n"


def test_echo_also_writes_to_the_stream(stream):
    out, _ = stream
    _, meta = invoke(lambda: print("both") or 1, CallInfo("c", (), {}, has_slots=False, log=TARGET._replace(echo=True)), ())
    assert meta["log"] == "both\n" and out.out == "both\n"


def test_without_a_target_nothing_is_captured(stream):
    out, _ = stream
    _, meta = invoke(lambda: print("plain") or 1, CallInfo("c", (), {}, has_slots=False), ())
    assert "log" not in meta and out.out == "plain\n"


def test_other_threads_are_not_captured_while_a_call_runs(stream):
    out, _ = stream
    started, release = threading.Event(), threading.Event()

    def f():
        started.set()
        release.wait(5)
        print("inside")
        return 1

    result = {}
    worker = threading.Thread(target=lambda: result.update(r=invoke(f, CallInfo("c", (), {}, has_slots=False,
                                                                                  log=TARGET), ())))
    worker.start()
    started.wait(5)
    print("the driver's own line")
    release.set()
    worker.join(5)
    assert result["r"][1]["log"] == "inside\n"
    assert out.out == "the driver's own line\n"


def test_a_call_under_a_timeout_in_a_helper_thread_is_captured(stream):
    def f():
        print("in the helper")
        return 2

    result = {}
    t = threading.Thread(target=lambda: result.update(r=invoke(f, CallInfo("c", (), {}, timeout_s=5, has_slots=False,
                                                                           log=TARGET), ())))
    t.start()
    t.join(10)
    assert result["r"] == (2, result["r"][1]) and result["r"][1]["log"] == "in the helper\n"


def test_a_failure_carries_its_log_and_the_users_traceback(stream):
    def f():
        print("before")
        raise ValueError("bad row")

    with pytest.raises(ComponentFailure) as info:
        invoke(f, CallInfo("c", (), {}, has_slots=False, log=TARGET), ())
    assert info.value.meta["log"] == "before\n"
    assert "in f" in info.value.detail and 'raise ValueError("bad row")' in info.value.detail
    assert "rayflow/execute/worker" not in info.value.detail and "frame(s) of rayflow itself not shown" in info.value.detail


def test_a_warning_outside_any_call_still_reaches_stderr(stream):
    _, err = stream
    capture.begin(TARGET, "c", 1)   # installs the handler on the root logger
    capture.bind(None)
    root = logging.getLogger()
    others = [h for h in root.handlers if h is not capture._HANDLER]
    for h in others:
        root.removeHandler(h)
    try:
        logging.getLogger("t.outside").warning("no handler configured")
    finally:
        for h in others:
            root.addHandler(h)
    assert "no handler configured" in err.err


def test_a_large_log_without_a_location_rides_back_cut_to_the_inline_bound(stream):
    target = LogTarget(None, "r1", max_bytes=1 << 20, inline_bytes=2000)
    _, meta = invoke(lambda: [print(f"row {i}") for i in range(5000)] and 1,
                     CallInfo("c", (), {}, has_slots=False, log=target), ())
    assert meta["log"].startswith("[rayflow: this log was cut to its last ")
    assert meta["log"].rstrip().endswith("row 4999") and len(meta["log"]) < 2200 and "log_saved" not in meta
