"""The resource model in runs: every attempt records its features, a model trains from
that history, and ``sizing="auto"`` components get their request from it (declared
resources until it has 5 samples, and a whole core where a fraction would make Ray start
worker processes a short task cannot pay for); the model is kept in the run store it
learned from, never before it learned a component; a tampered saved model is refused
(one warning, never unpickled), then retrained."""

from __future__ import annotations

import pytest

from rayflow.predict import history
from rayflow.service.composition import MODEL_CHECK_S
from tests.fns import auto as autofns


@pytest.fixture
def svc(service, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYFLOW_HOME", str(tmp_path / "home"))
    service._model, service._model_read_at = None, -MODEL_CHECK_S
    yield service
    service._model, service._model_read_at = None, -MODEL_CHECK_S


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
    # 3 tasks of 50 ms at once on 2 CPUs: a fraction would start a third worker for 50 ms of work
    wide = svc.plan(autofns.sized, {"n": 3}, "ray")
    assert {t.options.num_cpus for t in wide.tasks.values()} == {1.0}
    assert wide.tasks["waits"].options.memory is not None      # from its measured peak
    # 2 at once: the workers Ray keeps run them, so the I/O-bound ones get a fraction of a core
    plan = svc.plan(autofns.sized, {"n": 2}, "ray")
    assert plan.tasks["waits"].options.num_cpus < 1.0
    assert plan.tasks["adds"].options.num_cpus == 1.0          # 3 samples: still the rules
    h = svc.submit(autofns.sized, {"n": 2})
    assert h.wait(60) == "SUCCEEDED"
    svc.flush()
    rec = {c.component_id: c for c in svc.store.get_components(h.run_id)}["waits"]
    assert rec.resources["num_cpus"] < 1.0 and rec.features["sized"] == "auto"


def _train_on_two_runs(svc) -> None:
    for _ in range(2):
        svc.submit(autofns.declared, {"n": 3}, executor="local", background=False)
    svc.flush()
    svc.train_model()   # as `rayflow predict train` does, in this process


def test_the_model_is_kept_in_the_store_it_learned_from(svc, tmp_path):
    _train_on_two_runs(svc)
    row = svc.store.load_model(history.MODEL_NAME)
    assert row is not None and history.load(svc.store)[0].n_samples == 8
    assert not (tmp_path / "home" / "model.bin").exists()
    svc.configure(store=f"sqlite:///{tmp_path}/other.db")     # another store: no model of its own yet
    assert svc.resource_model() is None and not svc.model_saved()


def test_an_untrained_model_is_never_saved(svc):
    svc.submit(autofns.declared, {"n": 1}, executor="local", background=False)   # 2 samples: no family
    svc.flush()
    model = history.train(svc.store)
    assert model.n_samples == 2 and not model.components()
    assert svc.store.load_model(history.MODEL_NAME) is None
    assert not svc.model_saved()
    assert svc.resource_model(required=True).components() == []   # the rules answer, nothing saved
    assert svc.store.load_model(history.MODEL_NAME) is None


def test_a_tampered_saved_model_is_refused_and_retrained(svc, caplog):
    _train_on_two_runs(svc)
    blob, _ = svc.store.load_model(history.MODEL_NAME)
    data = bytearray(blob)
    data[-1] ^= 1
    svc.store.save_model(history.MODEL_NAME, bytes(data))
    svc._model, svc._model_read_at = None, -MODEL_CHECK_S   # as a process that has not read it yet
    with caplog.at_level("WARNING", logger="rayflow"):
        assert svc.resource_model() is None
        assert not svc.model_saved()                 # the same bytes: not decoded again
    assert len([r for r in caplog.records if "not used" in r.getMessage()]) == 1
    assert svc.resource_model(required=True).n_samples >= 6     # trained again from the store
    assert history.load(svc.store)[0] is not None              # and saved over the tampered bytes


def test_the_model_is_retrained_in_the_background_after_runs(svc):
    import time

    _train_on_two_runs(svc)
    first = svc.resource_model()
    assert first is not None and first.n_samples == 8
    before = history.saved_at(svc.store)
    # a young model (under 200 samples) is refitted after every run, in a background thread
    svc.submit(autofns.declared, {"n": 3}, executor="local", background=False)
    deadline = time.monotonic() + 30
    while history.saved_at(svc.store) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert history.saved_at(svc.store) != before
    assert svc.resource_model().n_samples == 12   # the new run's attempts are in


def test_a_run_driven_elsewhere_refits_into_its_store(svc):
    """A process that drove a run it did not plan with a model (the run tracker, handed a
    plan with sizing="auto" components) refits after it, into the run's store."""
    import time
    from types import SimpleNamespace

    for _ in range(2):
        svc.submit(autofns.declared, {"n": 3}, executor="local", background=False)
    svc.flush()
    svc._model = None                       # as in a process that never loaded a model
    assert svc.store.load_model(history.MODEL_NAME) is None
    svc.ran_one(SimpleNamespace(plan=svc.explain(autofns.sized, {"n": 3})))
    deadline = time.monotonic() + 30
    while svc.store.load_model(history.MODEL_NAME) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert history.load(svc.store)[0].n_samples == 8


def test_fused_components_teach_the_model_which_then_sizes_their_groups(svc, ray_session):
    """fuse=True alone (no sizing="auto", no saved model) puts the model in use: after one
    run it is saved in the store, and the next plan packs the groups by the measured
    durations instead of taking every member for tiny."""
    import time

    from tests.fns import fusion as ffns

    naps = {f"nap{i}" for i in range(8)}

    def nap_groups(plan):
        return [naps & set(g) for g in plan.fused if naps & set(g)]

    blind = svc.plan(ffns.slow_fan, {}, "ray")
    assert nap_groups(blind) == [naps]                 # no history: one call would sleep 8 x 60 ms
    assert svc.store.load_model(history.MODEL_NAME) is None
    svc.submit(ffns.slow_fan, {}, executor="local", background=False)
    deadline = time.monotonic() + 30
    while svc.store.load_model(history.MODEL_NAME) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    svc._model_read_at = -MODEL_CHECK_S
    sized = nap_groups(svc.plan(ffns.slow_fan, {}, "ray"))
    assert len(sized) >= 2 and max(len(g) for g in sized) <= 4   # each call within FUSE_CALL_S / 2


def test_predict_train_and_show_say_where_the_model_is_and_why_a_core_is_kept(svc, store_url, monkeypatch):
    from click.testing import CliRunner

    from rayflow.cli import main as cli_main
    from rayflow.core import config

    monkeypatch.delenv(config.SERVER_VAR, raising=False)
    runner = CliRunner()
    few = runner.invoke(cli_main.cli, ["predict", "train", "--store", store_url], catch_exceptions=False)
    assert few.exit_code == 0 and "not saved" in few.output
    for _ in range(2):
        svc.submit(autofns.declared, {"n": 3}, executor="local", background=False)
    svc.flush()
    trained = runner.invoke(cli_main.cli, ["predict", "train", "--store", store_url], catch_exceptions=False)
    assert trained.exit_code == 0 and "saved in the run store sqlite:///" in trained.output
    shown = runner.invoke(cli_main.cli, ["predict", "show", "waits", "--store", store_url], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    # 50 ms waits: a fraction of a core would start worker processes it cannot pay for
    assert "would request num_cpus=1" in shown.output
    assert "kept num_cpus=1: a fractional request would start extra worker processes for a " in shown.output
    assert " ms task" in shown.output
