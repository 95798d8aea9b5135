"""The resource model in runs: every attempt records its features, a model trains from
that history, and ``sizing="auto"`` components get their request from it (declared
resources until it has 5 samples); a tampered saved model is refused, then retrained."""

from __future__ import annotations

import pytest

from rayflow.predict import history
from tests.fns import auto as autofns


@pytest.fixture
def svc(service, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYFLOW_HOME", str(tmp_path / "home"))
    service._model = None
    yield service
    service._model = None


def test_each_attempt_records_what_the_model_learns_from(svc):
    h = svc.submit(autofns.declared, {"n": 2}, executor="local", background=False)
    assert h.status() == "SUCCEEDED"
    svc.flush()
    rows = {c.component_id: c.features for c in svc.store.get_components(h.run_id)}
    assert rows["waits"]["fn"] == "tests.fns.auto:waits" and rows["waits"]["fp"]
    assert rows["waits"]["config"] == {"arg0": 0.0} and rows["waits"]["n_up"] == 0
    assert rows["adds"]["n_up"] == 2 and rows["adds"]["input_bytes"] >= 0


def test_auto_sizing_keeps_declared_until_history_then_follows_the_model(svc, ray_session):
    # on Ray: a worker runs one call at a time, so its CPU clock measures the call (the local
    # executor shares the driver's process with its other threads)
    first = svc.plan(autofns.sized, {"n": 3}, "ray")
    assert {t.options.num_cpus for t in first.tasks.values()} == {1.0}   # no history: rules, declared kept
    for _ in range(3):   # 9 samples of `waits`, 3 of `adds`
        assert svc.submit(autofns.declared, {"n": 3}).wait(60) == "SUCCEEDED"
    svc.flush()
    model = history.train(svc.store)
    assert "tests.fns.auto:waits" in model.components()
    plan = svc.plan(autofns.sized, {"n": 3}, "ray")
    assert plan.tasks["waits"].options.num_cpus < 1.0          # I/O-bound: a fraction of a core
    assert plan.tasks["waits"].options.memory is not None      # from its measured peak
    assert plan.tasks["adds"].options.num_cpus == 1.0          # 3 samples: still the rules
    h = svc.submit(autofns.sized, {"n": 3})
    assert h.wait(60) == "SUCCEEDED"
    svc.flush()
    rec = {c.component_id: c for c in svc.store.get_components(h.run_id)}["waits"]
    assert rec.resources["num_cpus"] < 1.0 and rec.features["sized"] == "auto"


def _train_on_two_runs(svc) -> None:
    for _ in range(2):
        svc.submit(autofns.declared, {"n": 3}, executor="local", background=False)
    svc.flush()
    history.train(svc.store)


def test_a_tampered_saved_model_is_refused_and_retrained(svc):
    _train_on_two_runs(svc)
    path = history.model_path()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert history.load() is None
    svc._model = None
    assert svc.resource_model(required=True).n_samples >= 6     # trained again from the store


def test_the_model_is_retrained_in_the_background_after_runs(svc):
    import time

    _train_on_two_runs(svc)
    first = svc.resource_model()
    assert first is not None and first.n_samples == 8
    before = history.model_path().stat().st_mtime_ns
    # a young model (under 200 samples) is refitted after every run, in a background thread
    svc.submit(autofns.declared, {"n": 3}, executor="local", background=False)
    deadline = time.monotonic() + 30
    while history.model_path().stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert history.model_path().stat().st_mtime_ns != before
    assert svc.resource_model().n_samples == 12   # the new run's attempts are in
