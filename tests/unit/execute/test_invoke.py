"""rayflow.execute.worker.invoke: the worker-side call (arguments, timeout, timings, failures). No Ray."""

from __future__ import annotations

import pickle
import threading
import time

import pytest

from rayflow.core.errors import ComponentTimeout
from rayflow.core.template import Slot, inputs_in_order
from rayflow.execute.worker.invoke import CallInfo, ComponentFailure, RetryableFailure, invoke


def boom(message: str = "bad value") -> None:
    raise ValueError(message)


def test_invoke_fills_slots_and_returns_meta():
    def f(a, b, *, c, d):
        return (a, b, c, d)

    info = CallInfo(id="f", args=(Slot(1), [Slot(0), 5]), kwargs={"c": {"k": Slot(0)}, "d": 7})
    before = time.time()
    value, meta = invoke(f, info, ("zero", "one"))
    after = time.time()
    assert value == ("one", ["zero", 5], {"k": "zero"}, 7)
    assert before <= meta["started_at"] <= meta["ended_at"] <= after
    assert meta["cpu_s"] >= 0.0
    assert {"started_at", "ended_at", "cpu_s"} <= set(meta) <= {
        "started_at", "ended_at", "cpu_s", "peak_rss_bytes", "input_bytes", "input_rows"}
    assert (meta["input_bytes"], meta["input_rows"]) == (len("zero") + len("one"), -1)   # two str inputs


def test_invoke_without_slots_passes_arguments_as_they_are():
    info = CallInfo(id="f", args=(Slot(0),), kwargs={}, has_slots=False)
    value, _ = invoke(lambda x: x, info, ("ignored",))
    assert value == Slot(0)


def test_args_none_passes_the_inputs_in_order():
    info = CallInfo(id="f", args=None, kwargs={"scale": 10})
    value, _ = invoke(lambda a, b, *, scale: (a + b) * scale, info, (1, 2))
    assert value == 30


@pytest.mark.parametrize(("args", "n", "direct"), [
    ((Slot(0),), 1, True),
    ((Slot(0), Slot(1)), 2, True),
    ((Slot(1), Slot(0)), 2, False),      # reordered
    ((Slot(0),), 2, False),              # an input not passed positionally
    ((Slot(0), 5), 1, False),            # a constant among them
    ((), 0, False),
])
def test_inputs_in_order(args, n, direct):
    assert inputs_in_order(args, n) is direct


def test_call_fields_send_inputs_in_order_as_none():
    from rayflow import component, workflow
    from rayflow.execute.port import call_info
    from rayflow.plan import make_plan
    from rayflow.spec.targets import blueprint_of

    @component
    def src() -> int:
        return 1

    @component
    def add(a: int, b: int, scale: int = 1) -> int:
        return (a + b) * scale

    @workflow
    def wf():
        x, y = src(), src()
        return add(x, y), add(y, x), add(x, y, scale=3)

    plan = make_plan(blueprint_of(wf, {}))
    infos = {cid: call_info(t) for cid, t in plan.tasks.items()}
    assert infos["add"].args is None                      # (x, y): the inputs in order
    assert infos["add_1"].args is None                    # (y, x): its inputs are y then x
    assert infos["add_2"].args == (Slot(0), Slot(1))      # kwargs hold something: the template travels
    assert infos["src"].args == ()


def test_context_is_added_to_meta():
    info = CallInfo(id="f", args=(), kwargs={})
    _, meta = invoke(lambda: 1, info, (), context=lambda: {"node_id": "n1", "worker_id": "w9"})
    assert meta["node_id"] == "n1" and meta["worker_id"] == "w9"
    with pytest.raises(ComponentFailure) as info_exc:
        invoke(boom, info, (), context=lambda: {"node_id": "n2"})
    assert info_exc.value.meta["node_id"] == "n2"


def test_cpu_time_measured():
    def spin():
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass

    _, meta = invoke(spin, CallInfo(id="spin", args=(), kwargs={}), ())
    assert meta["cpu_s"] >= 0.04


def test_exception_becomes_component_failure():
    info = CallInfo(id="load", args=("line one\nline two",), kwargs={})
    with pytest.raises(ComponentFailure) as exc_info:
        invoke(boom, info, ())
    failure = exc_info.value
    assert type(failure) is ComponentFailure
    assert failure.component == "load"
    assert failure.error_type == "ValueError"
    assert failure.message == "line one\nline two"
    assert failure.one_line() == "ValueError: line one"
    assert "Traceback" in failure.detail
    assert "in boom" in failure.detail
    assert "ValueError: line one" in failure.detail
    assert failure.timed_out is False
    assert failure.meta["started_at"] <= failure.meta["ended_at"]
    assert "cpu_s" in failure.meta
    assert failure.__cause__ is None and failure.__suppress_context__


def test_one_line_without_message():
    def bare():
        raise KeyError()

    with pytest.raises(ComponentFailure) as exc_info:
        invoke(bare, CallInfo(id="k", args=(), kwargs={}), ())
    assert exc_info.value.one_line() == "KeyError"


def test_keyboard_interrupt_passes_through():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        invoke(interrupted, CallInfo(id="k", args=(), kwargs={}), ())


@pytest.mark.parametrize(
    ("retry_on", "exc", "retryable"),
    [
        (True, ValueError("x"), True),
        (False, ValueError("x"), False),
        ((ValueError,), ValueError("x"), True),
        ((LookupError,), KeyError("x"), True),  # subclasses match
        ((KeyError, OSError), ValueError("x"), False),
        ((), ValueError("x"), False),
    ],
)
def test_retry_classification(retry_on, exc, retryable):
    def raiser():
        raise exc

    info = CallInfo(id="r", args=(), kwargs={}, retry_on=retry_on)
    with pytest.raises(ComponentFailure) as exc_info:
        invoke(raiser, info, ())
    assert isinstance(exc_info.value, RetryableFailure) is retryable
    assert exc_info.value.error_type == type(exc).__name__
    assert exc_info.value.timed_out is False


def test_timeout_in_main_thread_interrupts_sleep_and_is_retryable():
    assert threading.current_thread() is threading.main_thread()
    info = CallInfo(id="sleepy", args=(), kwargs={}, timeout_s=0.2, retry_on=False)
    started = time.monotonic()
    with pytest.raises(RetryableFailure) as exc_info:
        invoke(lambda: time.sleep(10), info, ())
    elapsed = time.monotonic() - started
    assert elapsed < 5
    failure = exc_info.value
    assert failure.timed_out is True
    assert failure.error_type == "ComponentTimeout"
    assert "'sleepy'" in failure.message and "timeout_s=0.2" in failure.message


def test_no_timeout_when_fast_enough_and_alarm_handler_restored():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    value, _ = invoke(lambda: "quick", CallInfo(id="q", args=(), kwargs={}, timeout_s=5), ())
    assert value == "quick"
    assert signal.getsignal(signal.SIGALRM) is before


def in_thread(target):
    """Run ``target`` in a fresh (non-main) thread; return what it returned or raised."""
    box: dict = {}

    def run():
        started = time.monotonic()
        try:
            box["value"] = target()
        except BaseException as exc:
            box["error"] = exc
        box["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=15)
    assert not thread.is_alive()
    return box


def test_timeout_in_worker_thread_interrupts_busy_loop():
    def busy():
        end = time.monotonic() + 10
        n = 0
        while time.monotonic() < end:
            n += 1
        return n

    info = CallInfo(id="busy", args=(), kwargs={}, timeout_s=0.2)
    box = in_thread(lambda: invoke(busy, info, ()))
    failure = box["error"]
    assert isinstance(failure, RetryableFailure)
    assert failure.timed_out is True
    assert failure.error_type == "ComponentTimeout"
    assert "'busy'" in failure.message
    assert box["elapsed"] < 5


def test_timeout_in_worker_thread_interrupts_sleep_for_the_caller():
    info = CallInfo(id="sleepy", args=(), kwargs={}, timeout_s=0.2)
    box = in_thread(lambda: invoke(lambda: time.sleep(3), info, ()))
    failure = box["error"]
    assert isinstance(failure, RetryableFailure) and failure.timed_out
    assert box["elapsed"] < 2.5


def test_fast_call_in_worker_thread_leaves_no_timer_behind():
    def target():
        value, _ = invoke(lambda: "quick", CallInfo(id="q", args=(), kwargs={}, timeout_s=0.1), ())
        end = time.monotonic() + 0.4
        while time.monotonic() < end:  # a leaked timer would raise in here
            pass
        return value

    box = in_thread(target)
    assert "error" not in box, box.get("error")
    assert box["value"] == "quick"


def test_errors_and_values_cross_the_timeout_thread():
    info = CallInfo(id="t", args=(Slot(0),), kwargs={}, timeout_s=5)
    box = in_thread(lambda: invoke(lambda x: x * 2, info, (21,)))
    assert box["value"][0] == 42
    box = in_thread(lambda: invoke(boom, CallInfo(id="t", args=(), kwargs={}, timeout_s=5), ()))
    failure = box["error"]
    assert type(failure) is ComponentFailure
    assert failure.one_line() == "ValueError: bad value"
    assert "in boom" in failure.detail


@pytest.mark.parametrize("timeout_s", [None, 0])
def test_no_timeout_means_no_limit(timeout_s):
    info = CallInfo(id="c", args=(), kwargs={}, timeout_s=timeout_s)
    assert invoke(lambda: time.sleep(0.05) or "done", info, ())[0] == "done"


def test_component_failure_pickles_round_trip():
    info = CallInfo(id="load", args=(), kwargs={}, retry_on=True)
    with pytest.raises(RetryableFailure) as exc_info:
        invoke(boom, info, (), context=lambda: {"node_id": "n1"})
    original = exc_info.value
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is RetryableFailure
    assert (copy.component, copy.error_type, copy.message, copy.detail, copy.meta, copy.timed_out) == (
        original.component, original.error_type, original.message, original.detail, original.meta,
        original.timed_out,
    )
    assert str(copy) == str(original) == "ValueError: bad value"
    plain = ComponentFailure("c", "E", "m", "d", {"a": 1}, timed_out=True)
    again = pickle.loads(pickle.dumps(plain))
    assert type(again) is ComponentFailure and again.timed_out is True and again.meta == {"a": 1}


def test_component_timeout_pickles():
    exc = pickle.loads(pickle.dumps(ComponentTimeout("slow", 1.5)))
    assert exc.component == "slow" and exc.timeout_s == 1.5
    assert isinstance(exc, TimeoutError)
