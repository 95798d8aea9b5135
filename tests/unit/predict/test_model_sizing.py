"""ModelSizing: the planner's sizing port over the resource model (one planning pass),
and the older two passes (plan, predict, plan again, resize) giving the same plan. A fake model: no scikit-learn."""

from __future__ import annotations

from dataclasses import replace

from rayflow.core.blueprint import Blueprint, Call
from rayflow.core.options import ComponentOptions
from rayflow.core.template import NodeRef
from rayflow.plan import make_plan
from rayflow.plan.planner import ClusterShape
from rayflow.predict import history
from rayflow.predict.rules import Prediction


def light(*xs):
    return sum(xs)


def heavy(x=0):
    return x


class FakeModel:
    fitted = True
    n_samples = 100

    def __init__(self) -> None:
        self.asked = 0

    def components(self):
        return [history.plan_sample(t).component for t in _tasks_of_heavy()]

    def predict_many(self, samples, timeouts=None):
        self.asked += 1
        return [Prediction(duration_p50=30.0, duration_p90=40.0, memory_p50=2**28, memory_p90=2**29,
                           memory_p99=2**30, cpu_util_p50=0.3, cpu_util_p90=0.4, n_samples=10, source="model")
                for _ in samples]

    def durations_p50(self, samples):
        return [p.duration_p50 for p in self.predict_many(samples)]


def _tasks_of_heavy():
    return [t for t in make_plan(blueprint()).tasks.values() if t.fn is heavy]


def blueprint() -> Blueprint:
    auto = ComponentOptions(sizing="auto")
    calls = {"a": Call("a", light), "h": Call("h", heavy, options=auto),
             "c": Call("c", light, (NodeRef("a"), NodeRef("h")))}
    return Blueprint("w", calls, output=NodeRef("c"))


CLUSTER = ClusterShape(({"CPU": 8.0, "memory": 2.0**34},))


def test_one_pass_orders_and_sizes_like_the_two_pass_path():
    model = FakeModel()
    sizing = history.ModelSizing(model, CLUSTER)
    plan = make_plan(blueprint(), sizing=sizing)
    old = make_plan(blueprint())
    old = make_plan(blueprint(), estimates=history.task_durations(old.tasks, model))
    changes, reasons = history.auto_sizes(old.tasks, model, CLUSTER, None)
    old = old.with_tasks({cid: replace(old.tasks[cid], options=replace(old.tasks[cid].options, **change))
                          for cid, change in changes.items()})
    assert plan.order == old.order and plan.order[0] == "h"
    assert dict(plan.tasks) == dict(old.tasks)
    assert plan.tasks["h"].options.num_cpus < 1 and plan.tasks["h"].options.memory
    assert plan.tasks["a"].options == ComponentOptions()
    assert sizing.reasons == reasons and set(reasons) == {"h"}


def test_without_order_only_the_requests_change():
    plan = make_plan(blueprint(), sizing=history.ModelSizing(FakeModel(), CLUSTER, order=False))
    assert plan.order == make_plan(blueprint()).order
    assert plan.tasks["h"].options.sizing == "auto" and plan.tasks["h"].options.num_cpus < 1


def test_the_model_and_the_cluster_may_come_late_or_not_at_all():
    calls: list[str] = []

    def model():
        calls.append("model")
        return FakeModel()

    def cluster():
        calls.append("cluster")
        return CLUSTER

    sizing = history.ModelSizing(model, cluster)
    assert calls == []
    make_plan(blueprint(), sizing=sizing)
    assert calls == ["model", "cluster"]
    none = make_plan(blueprint(), sizing=history.ModelSizing(lambda: None, cluster))
    assert dict(none.tasks) == dict(make_plan(blueprint()).tasks)


def test_a_plan_without_auto_components_is_not_resized():
    plain = Blueprint("w", {"a": Call("a", heavy)}, output=NodeRef("a"))
    model = FakeModel()
    plan = make_plan(plain, sizing=history.ModelSizing(model, CLUSTER))
    assert plan.tasks["a"].options == ComponentOptions()
    assert model.asked == 1   # durations only


def test_the_oom_resizer_gives_a_new_task_and_leaves_the_plan_alone():
    from rayflow.execute.port import Completion

    plan = make_plan(blueprint())
    resizer = history.OomResizer(None, 2**34)
    task = plan.tasks["h"]
    again = resizer(task, Completion("h", False, {}, "OutOfMemoryError: killed"))
    assert again is not None and again.options.memory > 0 and again.id == "h"
    assert plan.tasks["h"] is task and task.options.memory is None


def test_a_training_overtaken_by_a_newer_save_keeps_the_newer_model():
    """A refit begun after a first run can end after a later training of more history: it
    must not replace that model with its own, trained on less."""
    from rayflow.predict.model import ResourceModel
    from rayflow.store.memory import MemoryStore
    from tests.fns.synthetic import history as synthetic

    store = MemoryStore()
    newer = ResourceModel().fit(synthetic(40, seed=2))
    older = ResourceModel().fit(synthetic(10, seed=2))
    started = store.db_now()
    store.save_model(history.MODEL_NAME, newer.to_bytes())    # saved while the other trained
    assert history._overtaken(store, started, older)
    assert history._overtaken(store, started, newer)          # as much history: kept, nothing lost
    assert not history._overtaken(store, store.db_now() + 1.0, older)   # saved before it began: replaced
