"""The resource model's life: samples from the run store, training, the saved model, and
sizing a plan's ``sizing="auto"`` components with it.

Owns reading training samples from run history (every recorded component attempt
carries its features: see ``ComponentRecord.features``), where the model is kept (in
the run store it learned from, under ``MODEL_NAME``: ``RunStore.save_model``, the
codec's signed bytes, verified before they are unpickled; a model that learned no
component is never saved), ``ModelSizing``
(the planner's sizing port, rayflow.plan.sizing.PlanSizing, over the model: predicted
durations to order by, and each auto-sized task's ``num_cpus`` and ``memory`` from the
model's p90 with buffers, rounded into buckets and capped by the cluster's largest
node, and kept at the declared request where a fraction of a core would cost Ray more
worker processes than it saves (``rayflow.predict.sizing.size``, told how many tasks of
the plan may run at once); every other task keeps what it declares), and ``OomResizer`` (a task again with
more memory after an out-of-memory kill; the loop records it in the run state).
``size_plan`` is the older form of ``ModelSizing.resources`` that changes a plan in
place (kept until every caller plans with ``make_plan(..., sizing=ModelSizing(...))``).
Must not import ray or scikit-learn (the model module does).
"""

from __future__ import annotations

import graphlib
import logging
import os
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rayflow.predict.features import Sample, function_features, numeric_config, sample_from_record
from rayflow.predict.sizing import Declared, size

log = logging.getLogger("rayflow")

MODEL_NAME = "resources"   # the resource model's name in the run store
HISTORY_RUNS = 500        # the newest runs a training reads


def samples_from_store(store: Any, *, runs: int = HISTORY_RUNS) -> list[Sample]:
    """Training samples (oldest first) from the newest ``runs`` runs of ``store``."""
    out: list[Sample] = []
    for run in reversed(store.list_runs(limit=runs)):
        for rec in store.get_components(run.run_id):
            f = rec.features or {}
            if not f.get("fn"):
                continue
            sample = sample_from_record(rec, component=f["fn"], fingerprint=f.get("fp", ""),
                                        config=f.get("config") or {}, input_bytes=int(f.get("input_bytes") or 0),
                                        input_rows=f.get("input_rows"))
            if sample is not None:
                out.append(replace(sample, n_upstreams=int(f.get("n_up") or 0)))
    return out


def train(store: Any, *, save: bool = True) -> Any:
    """Fit a model on the store's history and, when it learned some component (a model
    of none would answer only with the rules: it is not saved), keep it in that store.
    Returns the ResourceModel."""
    from rayflow.predict.model import ResourceModel

    started = store.db_now()   # on the store's clock, as its saved_at
    model = ResourceModel().fit(samples_from_store(store))
    if save and trained(model) and not _overtaken(store, started, model):
        store.save_model(MODEL_NAME, model.to_bytes())
    return model


def _overtaken(store: Any, started: float, model: Any) -> bool:
    """Whether another trainer saved, while this one trained, a model of at least as much
    history: then this one, which may have read the history before the other's runs
    ended (a background refit begun after a first run), does not replace it."""
    at = saved_at(store)
    if at is None or at < started:
        return False
    stored, _ = load(store)
    return stored is not None and stored.n_samples >= model.n_samples


def trained(model: Any) -> bool:
    """Whether ``model`` learned at least one component (5 samples or more of it)."""
    return model is not None and bool(model.components())


def saved_at(store: Any) -> float | None:
    """When the store's model was saved (the store's clock); None when it keeps none."""
    row = store.load_model(MODEL_NAME)
    return None if row is None else row[1]


def load(store: Any) -> tuple[Any | None, float | None]:
    """(the store's model, when it was saved): (None, None) when none is saved; (None,
    saved_at) when the saved bytes do not verify (never unpickled) or no longer load, with
    one warning line (it is trained again from history the next time one is needed)."""
    return from_row(store.load_model(MODEL_NAME), where=store.url)


def from_row(row: tuple[bytes, float] | None, *, where: str) -> tuple[Any | None, float | None]:
    """``load`` of a row ``RunStore.load_model`` returned (``where``: the store, for the warning)."""
    from rayflow.core.errors import ModelMismatch
    from rayflow.data.codec import UntrustedData
    from rayflow.predict.model import ResourceModel

    if row is None:
        return None, None
    blob, at = row
    try:
        model = ResourceModel.from_bytes(blob)   # verifies the signature before unpickling
    except (UntrustedData, ModelMismatch) as exc:
        log.warning("resource model saved in %s not used (%s); it is retrained from the run history", where, exc)
        return None, at
    return (model if trained(model) else None), at


def plan_samples(plan: Any, typical_input: dict[str, int] | None = None) -> dict[str, Sample]:
    """What the model is asked about each task before it runs: its family, code, numeric
    config, upstream count, and the input size its family typically sees."""
    return task_samples(plan.tasks, typical_input)


def task_samples(tasks: Mapping[str, Any], typical_input: dict[str, int] | None = None) -> dict[str, Sample]:
    """``plan_samples`` of a mapping of tasks (component id -> Task). Tasks asking the same
    question (a wide fan or a long chain of one function: same family, config, upstream
    count and request) share one Sample, and each function's family is worked out once."""
    out = {}
    typical = typical_input or {}
    families: dict[tuple, dict[str, str]] = {}
    shared: dict[tuple, Sample] = {}
    for cid, task in tasks.items():
        o = task.options
        fkey = (id(task.fn), task.fn_ref, o.version) if task.fn is not None else None
        family = families.get(fkey) if fkey is not None else None
        if family is None:
            family = function_features(task)
            if fkey is not None:
                families[fkey] = family
        config = _plan_config(task)
        key = (family["fn"], family["fp"], tuple(config.items()), len(task.deps), o.num_cpus, o.memory)
        sample = shared.get(key)
        if sample is None:
            sample = shared[key] = Sample(
                component=family["fn"], fingerprint=family["fp"], config=config, n_upstreams=len(task.deps),
                num_cpus=o.num_cpus, memory=o.memory, input_bytes=typical.get(family["fn"], 0))
        out[cid] = sample
    return out


def typical_inputs(samples: list[Sample]) -> dict[str, int]:
    """The median input size each family saw (what a plan assumes before data flows)."""
    seen: dict[str, list[int]] = {}
    for s in samples:
        seen.setdefault(s.component, []).append(s.input_bytes)
    return {k: int(statistics.median(v)) for k, v in seen.items()}


def auto_sizes(tasks: Mapping[str, Any], model: Any, cluster: Any,
               typical_input: dict[str, int] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The ``sizing="auto"`` tasks' new requests (id -> option changes) and, for each
    auto-sized task, the reason (id -> reason; GPU and actor ones are kept as declared)."""
    auto = [cid for cid, t in tasks.items() if t.options.sizing == "auto"]
    if not auto:
        return {}, {}
    samples = task_samples({c: tasks[c] for c in auto}, typical_input)
    predictions = model.predict_many([samples[c] for c in auto],
                                     timeouts=[tasks[c].options.timeout_s for c in auto])
    node_cpus = cluster.largest("CPU") if cluster is not None else float(os.cpu_count() or 1)
    node_memory = int(cluster.largest("memory")) if cluster is not None else 0
    at_once = concurrency(tasks)
    changes: dict[str, dict[str, Any]] = {}
    reasons = {}
    for cid, prediction in zip(auto, predictions, strict=True):
        task = tasks[cid]
        if task.options.num_gpus or task.options.kind == "actor":
            reasons[cid] = "kept as declared: GPU and actor components are not auto-sized"
            continue
        sizing = size(prediction, Declared.of(task.options), node_cpus, node_memory or 2**62,
                      concurrent=at_once.get(cid))
        changes[cid] = {"num_cpus": sizing.num_cpus, "memory": sizing.memory}
        reasons[cid] = sizing.reason
    return changes, reasons


def concurrency(tasks: Mapping[str, Any]) -> dict[str, int]:
    """How many tasks may run at the same time as each (itself included): the width of
    its topological level (the tasks whose deepest chain of upstreams is as long). What
    decides whether a fraction of a core makes Ray start more worker processes than the
    node has CPUs (``rayflow.predict.sizing.size``)."""
    graph = {cid: [d for d in task.deps if d in tasks] for cid, task in tasks.items()}
    depth: dict[str, int] = {}
    for cid in graphlib.TopologicalSorter(graph).static_order():
        depth[cid] = 1 + max((depth[d] for d in graph[cid]), default=-1)
    width = Counter(depth.values())
    return {cid: width[d] for cid, d in depth.items()}


class ModelSizing:
    """The planner's sizing port (rayflow.plan.sizing.PlanSizing) over a resource model:
    ``make_plan(blueprint, sizing=ModelSizing(model, cluster))`` orders by the model's
    predicted durations (with ``order``) and sizes the ``sizing="auto"`` components, in
    one planning pass; each sizing is logged with its reason, and kept in ``reasons``.

    ``model`` and ``cluster`` may be given as functions of no arguments, called at the
    first question (make_plan asks only once the blueprint checked out): a planning error
    then costs no model training and no cluster connection. A model of None predicts
    nothing (the plan keeps its declared requests and its order)."""

    def __init__(self, model: Any, cluster: Any = None, *, order: bool = True,
                 typical_input: dict[str, int] | None = None) -> None:
        self._model, self._cluster = model, cluster
        self.order, self.typical_input = order, typical_input
        self.reasons: dict[str, str] = {}

    @property
    def model(self) -> Any:
        if callable(self._model) and not hasattr(self._model, "predict_many"):
            self._model = self._model()
        return self._model

    @property
    def cluster(self) -> Any:
        if callable(self._cluster):
            self._cluster = self._cluster()
        return self._cluster

    def durations(self, tasks: Mapping[str, Any]) -> dict[str, float]:
        if not self.order:
            return {}
        return task_durations(tasks, self.model, self.typical_input)

    def resources(self, tasks: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        if not any(t.options.sizing == "auto" for t in tasks.values()) or self.model is None:
            return {}
        changes, reasons = auto_sizes(tasks, self.model, self.cluster, self.typical_input)
        for cid, reason in reasons.items():
            log.info("component %r sized: %s", cid, reason)
        self.reasons.update(reasons)
        return changes


def task_durations(tasks: Mapping[str, Any], model: Any,
                   typical_input: dict[str, int] | None = None) -> dict[str, float]:
    """Predicted p50 durations of the tasks (component id -> Task) the model knows (for ordering)."""
    known = set(model.components()) if model is not None and model.fitted else set()
    if not known:
        return {}
    samples = task_samples(tasks, typical_input)
    asked = list({id(s): s for s in samples.values() if s.component in known}.values())   # shared: once each
    if not asked:
        return {}
    p50 = {id(s): d for s, d in zip(asked, model.durations_p50(asked), strict=True)}
    return {cid: d for cid, s in samples.items() if (d := p50.get(id(s)))}


MAX_OOM_RETRIES = 2
DEFAULT_OOM_FIRST_BYTES = 1 << 30   # what to ask for when a component declared no memory and there is no history


CRASHES = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError")
MAX_CRASH_RETRIES = 3   # as Ray's own default for system failures


class OomResizer:
    """After an out-of-memory kill, the same component again with more memory: the model's
    p99 or twice the last request, whichever is larger, bucketed and capped by the largest
    node; at most ``MAX_OOM_RETRIES`` times per component, and never the same request
    twice (then the failure stands). Auto-sized components get no retries from Ray (it
    would repeat the request), so their worker crashes are retried here too, with the
    same request, up to ``MAX_CRASH_RETRIES`` times."""

    def __init__(self, model: Any, largest_memory: float) -> None:
        self.model = model
        self.largest = int(largest_memory) if largest_memory else 0
        self.retries: dict[str, int] = {}   # component id -> larger-memory reruns
        self.crashes: dict[str, int] = {}   # component id -> same-request reruns

    def __call__(self, task: Any, done: Any) -> Any:
        from rayflow.predict.features import is_oom
        from rayflow.predict.rules import rule_prediction
        from rayflow.predict.sizing import oom_retry_memory

        if task.options.sizing == "auto" and not is_oom(done.error) and (done.error or "").startswith(CRASHES):
            crashes = self.crashes.get(task.id, 0)
            if crashes >= MAX_CRASH_RETRIES:
                return None
            self.crashes[task.id] = crashes + 1
            return task
        if not is_oom(done.error) or self.retries.get(task.id, 0) >= MAX_OOM_RETRIES or not self.largest:
            return None
        sample = plan_sample(task)
        prediction = (self.model.predict(sample) if self.model is not None
                      else rule_prediction(sample, reason="no resource model saved"))
        last = task.options.memory or int(done.meta.get("peak_rss_bytes") or 0) or DEFAULT_OOM_FIRST_BYTES // 2
        memory = oom_retry_memory(prediction, last, self.largest)
        if memory <= (task.options.memory or 0):
            return None   # no node has more to give
        self.retries[task.id] = self.retries.get(task.id, 0) + 1
        log.warning("component %r was killed for memory; running it again with memory=%d MiB (was %s)",
                    task.id, memory >> 20, f"{task.options.memory >> 20} MiB" if task.options.memory else "none")
        return replace(task, options=replace(task.options, memory=memory))


def plan_sample(task: Any) -> Sample:
    """What the model is asked about ``task`` before it runs (no input size yet)."""
    family = function_features(task)
    return Sample(component=family["fn"], fingerprint=family["fp"], config=_plan_config(task),
                  n_upstreams=len(task.deps), num_cpus=task.options.num_cpus, memory=task.options.memory)


def _plan_config(task: Any) -> dict[str, float]:
    """The numeric config a task is called with: its numeric keyword arguments, and its
    numeric positional ones as ``arg<i>``."""
    config = numeric_config(task.kwargs) if task.kwargs else {}
    for i, a in enumerate(task.args):   # a loop: a comprehension's frame per task cost more than its work
        if type(a) in _NUMBERS:
            config[f"arg{i}"] = float(a)
    return config


_NUMBERS = frozenset({int, float, bool})
