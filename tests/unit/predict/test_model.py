"""The learned model: rules below 5 samples, calibrated quantiles, retraining, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from rayflow.data import codec
from rayflow.data.codec import UntrustedData
from rayflow.predict import ModelMismatch, ResourceModel, Sample
from rayflow.predict.model import FORMAT, MIN_SAMPLES
from rayflow.predict.rules import DEFAULT_DURATION_S, MEMORY_FACTOR, MEMORY_FLOOR
from tests.fns.synthetic import COMPONENT, history, planned, true_duration, true_memory


@pytest.fixture(scope="module")
def trained() -> ResourceModel:
    return ResourceModel().fit(history(300, seed=1))


def test_fewer_than_five_samples_use_the_rules_with_a_reason():
    model = ResourceModel().fit(history(MIN_SAMPLES - 1))
    p = model.predict(planned(50_000, num_cpus=2.0))
    assert p.source == "rules"
    assert "4 sample(s)" in p.reason and "needs 5" in p.reason
    assert p.n_samples == 4
    assert p.cpu_util_p90 == 2.0                       # the declared num_cpus


def test_rules_without_history_use_timeout_default_and_input_size():
    model = ResourceModel()
    small = model.predict(Sample("m:new", input_bytes=1000, num_cpus=0.5))
    assert small.source == "rules" and "0 sample(s)" in small.reason
    assert small.duration_p90 == DEFAULT_DURATION_S
    assert small.memory_p90 == MEMORY_FLOOR and small.memory_p99 > small.memory_p90
    assert small.cpu_util_p90 == 0.5
    big = model.predict(Sample("m:new", input_bytes=1 << 30), timeout_s=600)
    assert big.duration_p90 == 600 and big.duration_p50 < 600
    assert big.memory_p90 == MEMORY_FACTOR * (1 << 30)


def test_config_never_seen_falls_back_to_the_rules(trained):
    p = trained.predict(planned(50_000, config={"k": 3.0, "new_knob": 1.0}))
    assert p.source == "rules" and "new_knob" in p.reason


def test_model_quantiles_cover_held_out_runs(trained):
    held_out = history(400, seed=2)
    preds = [trained.predict(s) for s in held_out]
    assert all(p.source == "model" and p.n_samples == 300 for p in preds)
    duration_cover = np.mean([s.duration_s <= p.duration_p90 for s, p in zip(held_out, preds, strict=True)])
    memory_cover = np.mean([s.peak_rss_bytes <= p.memory_p90 for s, p in zip(held_out, preds, strict=True)])
    memory99_cover = np.mean([s.peak_rss_bytes <= p.memory_p99 for s, p in zip(held_out, preds, strict=True)])
    assert 0.82 <= duration_cover <= 0.98
    assert 0.82 <= memory_cover <= 0.98
    assert memory99_cover >= 0.93
    for p in preds:
        assert p.duration_p50 <= p.duration_p90
        assert p.memory_p50 <= p.memory_p90 <= p.memory_p99
        assert p.cpu_util_p50 <= p.cpu_util_p90


def test_p50_is_close_to_the_truth(trained):
    for rows in (50_000, 200_000, 600_000):
        p = trained.predict(planned(rows))
        assert p.duration_p50 == pytest.approx(true_duration(rows), rel=0.2)
        assert p.memory_p50 == pytest.approx(true_memory(rows * 100), rel=0.15)
        assert 0.6 <= p.cpu_util_p50 <= 0.95


def test_retraining_on_new_history_changes_predictions(trained):
    before = trained.predict(planned(300_000))
    slower = ResourceModel().fit(history(300, seed=1, a=3 * 2e-5))
    after = slower.predict(planned(300_000))
    assert after.duration_p50 == pytest.approx(3 * before.duration_p50, rel=0.25)


def test_latest_code_is_learned_alone_once_it_has_enough_runs():
    old = history(100, seed=3, fingerprint="v1")
    new = history(40, seed=4, fingerprint="v2", a=4 * 2e-5)
    model = ResourceModel().fit(old + new)
    p = model.predict(planned(300_000, fingerprint="v2"))
    assert p.duration_p50 == pytest.approx(4 * true_duration(300_000), rel=0.25)
    assert "code changed" in model.predict(planned(300_000, fingerprint="v3")).reason


def test_oom_kills_raise_the_memory_prediction():
    runs = history(60, seed=5)
    ooms = [Sample(COMPONENT, "v1", {"k": 3.0}, s.input_bytes, s.input_rows, 1, oom_killed=True,
                   peak_rss_bytes=None, memory=8 << 30) for s in runs[:20]]
    plain = ResourceModel().fit(runs).predict(planned(300_000))
    killed = ResourceModel().fit(runs + ooms).predict(planned(300_000))
    assert killed.memory_p90 > plain.memory_p90
    assert killed.duration_p90 == pytest.approx(plain.duration_p90, rel=0.01)   # OOM timings not learned


def test_a_target_without_measurements_comes_from_the_rules():
    runs = [Sample(s.component, s.fingerprint, s.config, s.input_bytes, s.input_rows, 1, duration_s=s.duration_s,
                   cpu_s=s.cpu_s, peak_rss_bytes=None) for s in history(30, seed=6)]
    p = ResourceModel().fit(runs).predict(planned(1_000_000))
    assert p.source == "model" and "memory from rules" in p.reason and p.from_rules == ("memory",)
    assert p.memory_p90 == MEMORY_FACTOR * 1_000_000 * 100


def test_needs_refresh():
    model = ResourceModel()
    assert model.needs_refresh(0)                    # never trained
    model.fit(history(5))
    assert not model.needs_refresh(19, every=20)
    assert model.needs_refresh(20, every=20)


def test_persistence_round_trip(trained):
    blob = trained.to_bytes()
    assert blob.startswith(b"pickle\0")
    loaded = ResourceModel.from_bytes(blob)
    assert loaded.predict(planned(123_456)) == trained.predict(planned(123_456))
    assert loaded.components() == [COMPONENT]


def test_tampered_or_foreign_bytes_are_refused(trained, monkeypatch):
    blob = bytearray(trained.to_bytes())
    blob[-10] ^= 0xFF
    with pytest.raises(UntrustedData):
        ResourceModel.from_bytes(bytes(blob))
    with pytest.raises(UntrustedData):
        ResourceModel.from_bytes(codec.encode({"families": {}}).blob())      # unsigned JSON
    good = trained.to_bytes()
    monkeypatch.setenv(codec.KEY_ENV_VAR, "another-key-" * 4)
    with pytest.raises(UntrustedData):
        ResourceModel.from_bytes(good)


def test_other_scikit_learn_version_is_refused():
    blob = codec.encode((FORMAT, {"sklearn": "0.0.1", "families": {}, "few": {}, "n_samples": 0})).blob()
    with pytest.raises(ModelMismatch, match="retrain"):
        ResourceModel.from_bytes(blob)


def test_input_far_beyond_training_keeps_memory_at_least_the_size_rule(trained):
    rows = 20_000_000                                   # 20x the largest input seen
    p = trained.predict(planned(rows))
    assert "twice the largest" in p.reason
    assert p.memory_p90 >= MEMORY_FACTOR * rows * 100
    assert p.duration_p50 == pytest.approx(true_duration(rows), rel=0.5)    # the power law carries on


def test_io_bound_history_is_sized_to_a_fraction_of_a_core():
    from rayflow.predict import Declared, size

    model = ResourceModel().fit(history(40, seed=8, util=0.05))
    p = model.predict(planned(100_000))
    assert p.source == "model" and p.cpu_util_p90 < 0.1
    sizing = size(p, Declared(num_cpus=1.0), 16, 64 << 30)
    assert sizing.num_cpus in (0.05, 0.1)
    assert sizing.memory >= p.memory_p90 * 1.1


def test_predict_many_matches_predict_one_by_one(trained):
    plan = [planned(50_000), Sample("m:unknown"), planned(700_000, config={"other": 1.0}), planned(200_000)]
    timeouts = [None, 60.0, None, None]
    batch = trained.predict_many(plan, timeouts=timeouts)
    assert [p.source for p in batch] == ["model", "rules", "rules", "model"]
    one_by_one = [trained.predict(s, timeout_s=t) for s, t in zip(plan, timeouts, strict=True)]
    for many, one in zip(batch, one_by_one, strict=True):      # equal but for float rounding
        assert (many.source, many.reason, many.n_samples) == (one.source, one.reason, one.n_samples)
        numbers = [k for k, v in one.to_dict().items() if isinstance(v, float)]
        assert [getattr(many, k) for k in numbers] == pytest.approx([getattr(one, k) for k in numbers], rel=1e-9)
    assert batch[1].duration_p90 == 60.0


def test_a_prediction_far_past_the_data_is_clipped_not_an_overflow() -> None:
    """A quantile model extrapolating to a log-duration of 1e4 crashed the plan
    (OverflowError in math.exp); it is clipped to 30 days, and a tiny one to 1 ms."""
    import numpy as np

    from rayflow.predict.model import _untransform

    assert _untransform("duration", np.array([1e4, -1e4])) == pytest.approx((30 * 86400.0, 1e-3))
    assert _untransform("memory", np.array([1e6]))[0] == pytest.approx(2.0 ** 50)


def test_predict_many_answers_each_distinct_question_once_and_the_same_for_repeats():
    from rayflow.predict.features import Sample
    from rayflow.predict.model import ResourceModel

    history = [Sample("m:f", "fp", {"n": float(n)}, input_bytes=1000 * n, duration_s=0.01 * n, cpu_s=0.01 * n,
                      peak_rss_bytes=10_000_000 + 1000 * n) for n in range(1, 40)]
    model = ResourceModel().fit(history)
    asked = [Sample("m:f", "fp", {"n": 5.0}, input_bytes=5000), Sample("m:f", "fp", {"n": 30.0}, input_bytes=30000)]
    many = model.predict_many([asked[i % 2] for i in range(1000)], timeouts=[None] * 1000)
    one_each = model.predict_many(asked)
    assert len(many) == 1000
    assert all(p == one_each[i % 2] for i, p in enumerate(many))
    assert one_each[0] != one_each[1]
    # a different timeout is a different question (the rules read it when there is no history)
    unseen = Sample("m:g", "fp2")
    a, b = model.predict_many([unseen, unseen], timeouts=[5.0, 500.0])
    assert a != b


def test_durations_p50_are_predict_manys_medians(trained):
    """Planning's fast path gives what the full predictions give: the model's median where
    it knows the family and config, the rules' elsewhere (few samples, a new key, an
    unknown family, a family with no duration measured)."""
    few = ResourceModel().fit(history(MIN_SAMPLES - 1, seed=3))
    runs = [Sample(s.component, s.fingerprint, s.config, s.input_bytes, s.input_rows, 1, duration_s=None,
                   cpu_s=s.cpu_s, peak_rss_bytes=s.peak_rss_bytes) for s in history(30, seed=6)]
    no_duration = ResourceModel().fit(runs)
    asked = [planned(50_000), Sample("m:unknown"), planned(700_000, config={"other": 1.0}), planned(200_000),
             planned(10 ** 12)]
    for model in (trained, few, no_duration):
        want = [p.duration_p50 for p in model.predict_many(asked)]
        assert model.durations_p50(asked) == pytest.approx(want, rel=1e-9)
    assert len(set(trained.durations_p50(asked))) > 2   # the model answered, not one default for all
