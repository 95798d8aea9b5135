"""The learned resource model: quantile regressors per component family, and their bytes.

Owns training (``ResourceModel.fit``), prediction with the rule-based fallback when a
family has too few samples or a sample has config the family never had, persistence
in the codec's signed format, and the retraining cadence (``needs_refresh``).

Per component (the function's "module:qualname") and per target, scikit-learn's
``GradientBoostingRegressor(loss="quantile")``, started from a linear
``QuantileRegressor``, is fitted once per quantile; upper quantiles are then
calibrated on held-out folds (see ``_fit_quantile``):

- duration_s        p50, p90         (fitted on log: quantiles survive monotone maps)
- peak memory       p50, p90, p99    (log; an OOM-killed attempt counts as needing at
                                      least what it was allowed)
- CPU utilisation   p50, p90         (cpu_s / duration_s, clipped to [0, 64])

This is the one module of rayflow that imports scikit-learn (lazily, on first fit or
load). Must not import ray, read a store, or decide a resource request (sizing does).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rayflow.core.errors import ModelMismatch
from rayflow.data import codec
from rayflow.data.codec import UntrustedData
from rayflow.predict.features import MAX_CPU_UTIL, Sample, config_keys, to_matrix
from rayflow.predict.rules import Prediction, memory_from_input, rule_prediction

MIN_SECONDS = 1e-3         # durations are learned as log(max(duration, this))
MIN_SAMPLES = 5            # fewer attempts of a component than this: the rules answer
LOG_RANGE = {"duration": (math.log(MIN_SECONDS), math.log(30 * 86400.0)),   # predictions clipped to
             "memory": (0.0, math.log(2.0 ** 50))}                         # 1 ms .. 30 days, 1 B .. 1 PiB
MAX_SAMPLES = 2_000        # train on the most recent attempts of a component, at most
REFRESH_EVERY = 20         # retrain after this many new runs (see needs_refresh)
FORMAT = "rayflow.predict.ResourceModel/1"
CALIBRATE_FROM = 0.9       # quantiles from this one up get a conformal shift
CALIBRATION_FOLDS = 3
QUANTILES: dict[str, tuple[float, ...]] = {
    "duration": (0.5, 0.9),
    "memory": (0.5, 0.9, 0.99),
    "cpu_util": (0.5, 0.9),
}


@dataclass
class _Family:
    """What was learned about one component."""

    keys: tuple[str, ...]                          # config columns, sorted
    n_samples: int
    fingerprints: frozenset[str]
    max_log_bytes: float                           # the largest input seen (log1p bytes)
    models: dict[str, dict[float, tuple[Any, float]]]   # target -> quantile -> (regressor, shift)
    counts: dict[str, int]                         # target -> samples it was fitted on
    recent: tuple[Sample, ...]                     # a few attempts, for per-target rules


def _targets(samples: Sequence[Sample]) -> dict[str, tuple[list[int], np.ndarray]]:
    """Per target: the rows that have it, and its values (transformed for fitting)."""
    pick: dict[str, Callable[[Sample], float | None]] = {
        "duration": lambda s: None if s.oom_killed or s.duration_s is None else math.log(max(s.duration_s, MIN_SECONDS)),
        "memory": lambda s: None if s.memory_need is None else math.log(max(s.memory_need, 1.0)),
        "cpu_util": lambda s: None if s.oom_killed else s.cpu_util,
    }
    out = {}
    for name, get in pick.items():
        rows, values = [], []
        for i, s in enumerate(samples):
            v = get(s)
            if v is not None and math.isfinite(v):
                rows.append(i)
                values.append(v)
        out[name] = (rows, np.asarray(values, dtype=np.float64))
    return out


def _regressor(quantile: float, n: int) -> Any:
    """Boosted trees for ``quantile``, started from a linear quantile fit: in log space a
    linear fit is a power law of the sizes (duration ~ rows^k), which carries past the
    edges of the data where trees alone go flat; the trees add what is not linear."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import QuantileRegressor

    return GradientBoostingRegressor(
        loss="quantile", alpha=quantile, n_estimators=30, learning_rate=0.1, max_depth=2,
        min_samples_leaf=max(5, n // 20), random_state=0,
        init=QuantileRegressor(quantile=quantile, alpha=0.0, solver="highs"),
    )


def _fit_quantile(X: np.ndarray, y: np.ndarray, quantile: float) -> tuple[Any, float]:
    """A regressor of ``quantile`` fitted on all rows, and the shift that calibrates it.

    Upper quantiles get a cross-conformal shift (conformalized quantile regression): the
    regressor refitted without each of ``CALIBRATION_FOLDS`` folds scores the fold it
    did not see (actual minus predicted), and the shift is the finite-sample
    ``quantile`` of those scores. Boosted trees fit their own rows too closely, so
    without it a p90 covers about 80-85% of new runs."""
    n = len(y)
    model = _regressor(quantile, n).fit(X, y)
    if quantile < CALIBRATE_FROM:
        return model, 0.0
    scores = np.empty(n)
    order = np.random.default_rng(0).permutation(n)
    for fold in np.array_split(order, CALIBRATION_FOLDS):
        rest = np.setdiff1d(order, fold)
        scores[fold] = y[fold] - _regressor(quantile, len(rest)).fit(X[rest], y[rest]).predict(X[fold])
    level = min(1.0, math.ceil((n + 1) * quantile) / n)
    return model, float(np.quantile(scores, level, method="higher"))


def _current_code(samples: Sequence[Sample]) -> list[Sample]:
    """The attempts of the latest code (the fingerprint of the last sample) when there are
    enough of them; else all (old code still says more than the rules)."""
    latest = samples[-1].fingerprint
    same = [s for s in samples if s.fingerprint == latest]
    return same if len(same) >= MIN_SAMPLES else list(samples)


def _fit_family(samples: Sequence[Sample]) -> _Family:
    samples = _current_code(samples)[-MAX_SAMPLES:]
    X, _ = to_matrix(samples)
    models: dict[str, dict[float, tuple[Any, float]]] = {}
    counts: dict[str, int] = {}
    for target, (rows, y) in _targets(samples).items():
        counts[target] = len(rows)
        if len(rows) >= MIN_SAMPLES:
            models[target] = {q: _fit_quantile(X[rows], y, q) for q in QUANTILES[target]}
    return _Family(
        keys=config_keys(samples), n_samples=len(samples),
        fingerprints=frozenset(s.fingerprint for s in samples),
        max_log_bytes=float(X[:, 0].max()), models=models, counts=counts,
        recent=tuple(samples[-(MIN_SAMPLES - 1):]),
    )


def _quantiles(models: dict[float, tuple[Any, float]], X: np.ndarray) -> np.ndarray:
    """The predicted (calibrated) quantiles, one row per sample, lowest quantile first,
    made non-decreasing along each row."""
    values = np.column_stack([models[q][0].predict(X) + models[q][1] for q in sorted(models)])
    return np.maximum.accumulate(values, axis=1)


def _untransform(target: str, values: np.ndarray) -> tuple[float, ...]:
    """Predicted quantiles back in seconds, bytes or cores (see ``_targets``)."""
    if target == "cpu_util":
        return tuple(float(v) for v in np.clip(values, 0.0, MAX_CPU_UTIL))
    low, high = LOG_RANGE.get(target, (-700.0, 700.0))   # a model extrapolating far past its data
    return tuple(math.exp(v) for v in np.clip(values, low, high))


def _predict_family(family: _Family, samples: Sequence[Sample], timeouts: Sequence[float | None]) -> list[Prediction]:
    """Predictions for samples of one family whose config it knows (one batch per model)."""
    X, _ = to_matrix(samples, family.keys)
    learned = {t: _quantiles(models, X) for t, models in family.models.items()}
    return [_assemble(family, s, t, {k: v[i] for k, v in learned.items()}, X[i, 0])
            for i, (s, t) in enumerate(zip(samples, timeouts, strict=True))]


def _assemble(family: _Family, sample: Sample, timeout_s: float | None, learned: dict[str, np.ndarray],
              log_bytes: float) -> Prediction:
    """One prediction from the learned quantiles of its row, the rules filling any target
    the family has too few measurements of."""
    rules = rule_prediction(sample, reason="", timeout_s=timeout_s, history=family.recent)
    out = {"duration": (rules.duration_p50, rules.duration_p90),
           "memory": (rules.memory_p50, rules.memory_p90, rules.memory_p99),
           "cpu_util": (rules.cpu_util_p50, rules.cpu_util_p90)}
    notes = []
    if sample.fingerprint and sample.fingerprint not in family.fingerprints:
        notes.append("code changed since training (fingerprint never seen)")
    from_rules = tuple(t for t in QUANTILES if t not in learned)
    for target in QUANTILES:
        if target in learned:
            out[target] = _untransform(target, learned[target])
        else:
            notes.append(f"{target} from rules ({family.counts[target]} measured < {MIN_SAMPLES})")
    if log_bytes > family.max_log_bytes + math.log(2):   # past the data, the size rule is the safer floor
        notes.append("input over twice the largest seen in training: memory at least the size rule")
        out["memory"] = tuple(map(max, out["memory"], memory_from_input(sample.input_bytes)))
    (d50, d90), (m50, m90, m99), (c50, c90) = out["duration"], out["memory"], out["cpu_util"]
    return Prediction(d50, d90, m50, m90, m99, c50, c90, family.n_samples, "model", "; ".join(notes), from_rules)


@dataclass(frozen=True)
class _Learned:
    """Everything one ``fit`` learned, swapped in as one reference."""

    families: dict[str, _Family]
    few: dict[str, tuple[Sample, ...]]     # components with fewer than MIN_SAMPLES attempts
    n_samples: int


class ResourceModel:
    """Quantile models of duration, peak memory and CPU utilisation, per component.

    ``fit`` builds every family anew and swaps them in as one reference, so ``predict``
    on another thread sees the old or the new model, never half of each. Persist with
    ``to_bytes``/``from_bytes``.
    """

    def __init__(self) -> None:
        self._learned = _Learned({}, {}, 0)

    @property
    def n_samples(self) -> int:
        return self._learned.n_samples

    @property
    def fitted(self) -> bool:
        return self._learned.n_samples > 0

    def components(self) -> list[str]:
        """The components a model (not the rules) answers for."""
        return sorted(self._learned.families)

    def fit(self, samples: Iterable[Sample]) -> ResourceModel:
        """Train on ``samples`` (oldest first; every component's history), replacing what
        was learned before. Returns self."""
        by_component: dict[str, list[Sample]] = defaultdict(list)
        for s in samples:
            by_component[s.component].append(s)
        families = {c: _fit_family(g) for c, g in by_component.items() if len(g) >= MIN_SAMPLES}
        few = {c: tuple(g) for c, g in by_component.items() if len(g) < MIN_SAMPLES}
        self._learned = _Learned(families, few, sum(len(g) for g in by_component.values()))
        return self

    def predict(self, sample: Sample, *, timeout_s: float | None = None) -> Prediction:
        """Predicted use of ``sample`` (its features; outcomes are ignored). ``timeout_s``:
        the declared timeout, which the rules use when there is no history."""
        return self.predict_many([sample], timeouts=[timeout_s])[0]

    def predict_many(self, samples: Sequence[Sample], *,
                     timeouts: Sequence[float | None] | None = None) -> list[Prediction]:
        """``predict`` for many samples at once (a whole plan): one model call per family, and
        one prediction per distinct question (the components of a wide fan or a long chain ask
        the same one: the same features and timeout), shared by every sample asking it."""
        timeouts = list(timeouts or [None] * len(samples))
        slots: dict[tuple, int] = {}
        which = [slots.setdefault(_question(s, t), len(slots)) for s, t in zip(samples, timeouts, strict=True)]
        if len(slots) == len(samples):
            return self._predict_distinct(samples, timeouts)
        first: dict[int, int] = {}
        for i, j in enumerate(which):
            first.setdefault(j, i)
        picks = [first[j] for j in range(len(slots))]
        answers = self._predict_distinct([samples[i] for i in picks], [timeouts[i] for i in picks])
        return [answers[j] for j in which]

    def durations_p50(self, samples: Sequence[Sample]) -> list[float]:
        """``[p.duration_p50 for p in self.predict_many(samples)]`` (no timeouts), working
        out the median duration alone: planning asks it of every component, to order them,
        and reads nothing else."""
        learned = self._learned
        out = [0.0] * len(samples)
        batches: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(samples):
            family = learned.families.get(s.component)
            if family is not None and "duration" in family.models and set(s.config).issubset(family.keys):
                batches[s.component].append(i)
            else:   # what predict_many's rules give: the few attempts there are, or the family's recent ones
                history = learned.few.get(s.component, ()) if family is None else family.recent
                out[i] = rule_prediction(s, reason="", history=history).duration_p50
        low, high = LOG_RANGE["duration"]
        for component, rows in batches.items():
            family = learned.families[component]
            X, _ = to_matrix([samples[i] for i in rows], family.keys)
            p50 = np.exp(np.clip(_quantiles(family.models["duration"], X)[:, 0], low, high))
            for i, value in zip(rows, p50.tolist(), strict=True):
                out[i] = value
        return out

    def _predict_distinct(self, samples: Sequence[Sample], timeouts: list[float | None]) -> list[Prediction]:
        learned = self._learned
        out: list[Prediction | None] = [None] * len(samples)
        batches: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(samples):
            family = learned.families.get(s.component)
            unseen = sorted(set(s.config) - set(family.keys)) if family else []
            if family is None:
                few = learned.few.get(s.component, ())
                reason = f"{len(few)} sample(s) of {s.component}; a model needs {MIN_SAMPLES}"
                out[i] = rule_prediction(s, reason=reason, timeout_s=timeouts[i], history=few)
            elif unseen:
                reason = f"config key(s) {', '.join(unseen)} never seen in training of {s.component}"
                out[i] = rule_prediction(s, reason=reason, timeout_s=timeouts[i], history=family.recent)
            else:
                batches[s.component].append(i)
        for component, rows in batches.items():
            preds = _predict_family(learned.families[component], [samples[i] for i in rows], [timeouts[i] for i in rows])
            for i, p in zip(rows, preds, strict=True):
                out[i] = p
        return out  # type: ignore[return-value]   # every slot is filled above

    def needs_refresh(self, new_runs: int, *, every: int = REFRESH_EVERY) -> bool:
        """Whether to retrain now: never trained yet, or ``new_runs`` finished since the
        last ``fit`` reach ``every``. Retrain off the critical path (a background
        thread) and swap the new model in."""
        return not self.fitted or new_runs >= every

    # -- persistence ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The model as the codec's signed pickle (HMAC with rayflow's signing key)."""
        import sklearn

        learned = self._learned
        payload = {"sklearn": sklearn.__version__, "families": learned.families,
                   "few": learned.few, "n_samples": learned.n_samples}
        return codec.encode((FORMAT, payload)).blob()

    @classmethod
    def from_bytes(cls, blob: bytes) -> ResourceModel:
        """A model from ``to_bytes``. Raises ``UntrustedData`` for bytes whose signature
        does not verify (tampered, or another key) and ``ModelMismatch`` for another
        format or scikit-learn version."""
        import sklearn

        if bytes(blob[:7]) != b"pickle\0":
            raise UntrustedData("resource model bytes are not a signed pickle")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # sklearn's version warning: checked below
                value = codec.unblob(blob)
        except UntrustedData:
            raise
        except Exception as exc:   # signed by us, yet unloadable: classes moved or changed
            raise ModelMismatch(f"resource model bytes no longer load ({exc!r}); retrain from the run history") from exc
        if not (isinstance(value, tuple) and len(value) == 2 and value[0] == FORMAT):
            raise ModelMismatch(f"stored value is not a {FORMAT}; retrain from the run history")
        payload = value[1]
        if payload["sklearn"] != sklearn.__version__:
            raise ModelMismatch(
                f"resource model was saved with scikit-learn {payload['sklearn']}, this process has "
                f"{sklearn.__version__}; retrain from the run history")
        model = cls()
        model._learned = _Learned(payload["families"], payload["few"], payload["n_samples"])
        return model


def _question(s: Sample, timeout: float | None) -> tuple:
    """What a prediction of ``s`` depends on (its features at plan time, and the timeout)."""
    return (s.component, s.fingerprint, tuple(sorted(s.config.items())), s.input_bytes, s.input_rows,
            s.n_upstreams, s.num_cpus, s.memory, timeout)
