"""rayflow.dsl: @rf.component and @rf.workflow build Blueprints by tracing (no Ray)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pytest

import rayflow as rf
from rayflow.core.errors import DuplicateIdError, SignatureError, SpecError
from rayflow.dsl import NodeHandle
from rayflow.plan import Blueprint, NodeRef, make_plan
from tests.helpers import REPO

ROOT = REPO


@rf.component
def load(n: int = 3) -> list[int]:
    return list(range(n))


@rf.component(num_cpus=0.5, memory="256MiB", max_retries=2, timeout_s=30)
def square(xs: list[int]) -> list[int]:
    return [x * x for x in xs]


@rf.component
def total(parts: list[list[int]]) -> int:
    return sum(sum(p) for p in parts)


@rf.component
def pair(a: int, b: int = 0) -> int:
    return a + b


@rf.component
def merge(d: dict, t: tuple) -> int:
    return len(d) + len(t)


@rf.component(kind="actor", init_kwargs={"offset": 10}, concurrency=2)
class Adder:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __call__(self, x: int) -> int:
        return x + self.offset


@rf.component
class Doubler:
    def __call__(self, x: int) -> int:
        return 2 * x


@rf.workflow(name="squares", failure_strategy="continue_on_error", max_concurrency=8)
def squares(n: int = 10, k: int = 4):
    parts = [square.options(id=f"square_{i}")(load(n)) for i in range(k)]
    return total(parts)


# -- components outside a workflow -------------------------------------------------------------


def test_component_outside_workflow_runs_the_function():
    assert load(4) == [0, 1, 2, 3]
    assert square([1, 2, 3]) == [1, 4, 9]
    assert total([[1, 2], [3]]) == 6
    assert square.options(id="x", num_cpus=2)([2]) == [4]


def test_actor_component_outside_workflow_instantiates_with_init_kwargs():
    assert Adder(5) == 15
    assert Doubler(4) == 8


def test_component_keeps_function_metadata_and_options():
    assert square.__name__ == "square"
    assert square.base_name == "square"
    opts = square.default_options
    assert opts.num_cpus == 0.5 and opts.memory == 256 * 1024**2
    assert opts.max_retries == 2 and opts.timeout_s == 30.0
    assert load.default_options.num_cpus == 1.0
    assert "square" in repr(square)


def test_options_returns_configured_copy():
    sq = square.options(id="sq", num_cpus=2, memory="1GiB")
    assert sq is not square
    assert sq.default_options.id == "sq" and sq.default_options.num_cpus == 2.0
    assert sq.default_options.memory == 1024**3
    assert sq.default_options.max_retries == 2  # kept from the declaration
    assert square.default_options.id is None and square.default_options.num_cpus == 0.5


def test_options_unknown_option_names_component():
    with pytest.raises(SpecError) as info:
        square.options(num_cpu=2)
    assert "'square'" in str(info.value) and "num_cpu" in str(info.value)


def test_component_decorator_bad_option_raises_at_declaration():
    with pytest.raises(SpecError, match="'bad'"):
        @rf.component(memory="lots")
        def bad():
            return None


def test_class_must_be_actor_kind():
    with pytest.raises(TypeError, match="actor"):
        @rf.component(kind="task")
        class NotAnActor:
            def __call__(self):
                return None


def test_actor_class_kind_defaults_to_actor():
    assert Doubler.default_options.kind == "actor"
    assert Adder.default_options.kind == "actor"
    assert Adder.default_options.init_kwargs == {"offset": 10}
    assert Adder.default_options.concurrency == 2


# -- tracing ---------------------------------------------------------------------------------


def test_workflow_builds_nodes_and_records_options():
    bp = squares.build(n=5, k=3)
    assert isinstance(bp, Blueprint)
    assert bp.name == "squares"
    assert bp.failure_strategy == "continue_on_error"
    assert bp.max_concurrency == 8
    assert list(bp.calls) == ["load", "square_0", "load_1", "square_1", "load_2", "square_2", "total"]
    assert bp.calls["square_0"].args == (NodeRef("load"),)
    assert bp.calls["square_1"].deps == ("load_1",)
    assert bp.calls["square_0"].options.num_cpus == 0.5
    assert bp.calls["load"].args == (5,)
    assert bp.calls["total"].args == ([NodeRef("square_0"), NodeRef("square_1"), NodeRef("square_2")],)
    assert bp.calls["total"].deps == ("square_0", "square_1", "square_2")
    assert bp.output == NodeRef("total")
    assert bp.output_ids == ("total",)
    assert bp.inputs == {"n": 5, "k": 3}
    assert bp.target.endswith(":squares")


def test_default_ids_are_function_name_then_suffixes():
    @rf.workflow
    def wf():
        a = load(1)
        b = load(2)
        c = load(3)
        return [a, b, c]

    bp = wf.build()
    assert list(bp.calls) == ["load", "load_1", "load_2"]
    assert bp.output == [NodeRef("load"), NodeRef("load_1"), NodeRef("load_2")]
    assert bp.name == "wf"


def test_auto_ids_skip_explicit_ids():
    @rf.workflow
    def wf():
        load.options(id="load_1")(1)
        load(2)
        load(3)
        return load(4)

    assert sorted(wf.build().calls) == ["load", "load_1", "load_2", "load_3"]


def test_explicit_id():
    @rf.workflow
    def wf():
        return square.options(id="my_square")(load.options(id="my_load")(3))

    bp = wf.build()
    assert list(bp.calls) == ["my_load", "my_square"]
    assert bp.calls["my_square"].deps == ("my_load",)


def test_duplicate_explicit_id():
    @rf.workflow
    def wf():
        a = load.options(id="same")(1)
        b = load.options(id="same")(2)
        return [a, b]

    with pytest.raises(DuplicateIdError) as info:
        wf.build()
    assert info.value.component == "same"
    assert "'same'" in str(info.value)


def test_explicit_id_clashing_with_an_auto_id():
    @rf.workflow
    def wf():
        load(1)
        return load.options(id="load")(2)

    with pytest.raises(DuplicateIdError, match="'load'"):
        wf.build()


def test_nested_structures_of_handles():
    @rf.workflow
    def wf():
        a, b = load(1), load(2)
        return merge({"x": a, "y": [b, 3]}, (a, b, "k"))

    bp = wf.build()
    call = bp.calls["merge"]
    assert call.args == ({"x": NodeRef("load"), "y": [NodeRef("load_1"), 3]},
                         (NodeRef("load"), NodeRef("load_1"), "k"))
    assert call.deps == ("load", "load_1")


def test_output_template_keeps_structure():
    @rf.workflow
    def wf():
        a = load(1)
        return {"raw": a, "sq": square(a), "both": (a, 1)}

    bp = wf.build()
    assert bp.output == {"raw": NodeRef("load"), "sq": NodeRef("square"), "both": (NodeRef("load"), 1)}
    assert bp.output_ids == ("load", "square")


def test_kwargs_handles_become_deps():
    @rf.workflow
    def wf():
        return pair(a=load(1), b=load(2))

    call = wf.build().calls["pair"]
    assert call.kwargs == {"a": NodeRef("load"), "b": NodeRef("load_1")}
    assert call.deps == ("load", "load_1")


def test_missing_argument_raised_at_build_naming_component():
    @rf.workflow
    def wf():
        return pair()

    with pytest.raises(SignatureError) as info:
        wf.build()
    assert info.value.component == "pair"
    assert "'pair'" in str(info.value)
    assert "a" in str(info.value)


def test_unknown_kwarg_raised_at_build_naming_component():
    @rf.workflow
    def wf():
        return pair.options(id="p")(1, c=2)

    with pytest.raises(SignatureError) as info:
        wf.build()
    assert info.value.component == "p"
    assert "'c'" in str(info.value)
    assert "parameters: a, b" in str(info.value)


def test_too_many_positional_arguments():
    @rf.workflow
    def wf():
        return pair(1, 2, 3)

    with pytest.raises(SignatureError, match="'pair'"):
        wf.build()


def test_node_handle_has_no_value():
    seen = {}

    @rf.workflow
    def wf():
        h = load(1)
        seen["h"] = h
        for probe in (bool, iter, pickle.dumps):
            with pytest.raises(TypeError, match="'load'"):
                probe(h)
        with pytest.raises(TypeError):
            if h:  # noqa: SIM108 - exercising __bool__
                pass
        return h

    wf.build()
    assert isinstance(seen["h"], NodeHandle)
    assert repr(seen["h"]) == "<rayflow node load>"


def test_handle_from_another_build_rejected():
    leaked = {}

    @rf.workflow
    def first():
        leaked["h"] = load(1)
        return leaked["h"]

    @rf.workflow
    def second():
        return square(leaked["h"])

    first.build()
    with pytest.raises(SpecError, match="another workflow"):
        second.build()


def test_workflow_inputs_bound_with_defaults():
    bp = squares.build(k=2)
    assert bp.inputs == {"n": 10, "k": 2}
    assert bp.calls["load"].args == (10,)
    assert len([c for c in bp.calls if c.startswith("square_")]) == 2


def test_workflow_unknown_input():
    with pytest.raises(SpecError) as info:
        squares.build(m=1)
    message = str(info.value)
    assert "'squares'" in message and "'m'" in message and "inputs: n, k" in message


def test_workflow_missing_required_input():
    @rf.workflow
    def needs(x):
        return load(x)

    with pytest.raises(SpecError, match="'needs'"):
        needs.build()
    assert needs.build(x=2).calls["load"].args == (2,)


def test_workflow_called_directly_runs_plain_functions():
    assert squares(n=3, k=2) == 2 * (0 + 1 + 4)


def test_workflow_options_checked():
    with pytest.raises(SpecError, match="failure_strategy"):
        rf.workflow(failure_strategy="never")(lambda: None)

    @rf.workflow(max_concurrency=0)
    def zero():
        return load(1)

    with pytest.raises(SpecError, match="max_concurrency"):
        zero.build()


def test_building_twice_gives_independent_blueprints():
    a = squares.build(k=1)
    b = squares.build(k=2)
    assert len(a.calls) == 3 and len(b.calls) == 5


def test_outside_a_workflow_after_a_build_runs_plainly_again():
    squares.build()
    assert load(2) == [0, 1]


# -- actor components inside workflows ----------------------------------------------------------


def test_actor_component_in_workflow():
    @rf.workflow
    def wf():
        return Adder(load.options(id="x")(1))

    bp = wf.build()
    call = bp.calls["Adder"]
    assert call.type == "actor"
    assert call.options.kind == "actor"
    assert call.deps == ("x",)
    plan = make_plan(bp)
    assert plan.tasks["Adder"].pool is not None


def test_actor_init_kwargs_checked():
    @rf.component
    class NeedsInit:
        def __init__(self, model: str) -> None:
            self.model = model

        def __call__(self, x):
            return x

    @rf.workflow
    def missing():
        return NeedsInit(1)

    with pytest.raises(SignatureError, match="init_kwargs") as info:
        missing.build()
    assert info.value.component == "NeedsInit"

    @rf.workflow
    def unknown():
        return NeedsInit.options(init_kwargs={"model": "m", "size": 3})(1)

    with pytest.raises(SignatureError, match="'size'"):
        unknown.build()

    @rf.workflow
    def fine():
        return NeedsInit.options(init_kwargs={"model": "m"})(1)

    assert fine.build().calls["NeedsInit"].options.init_kwargs == {"model": "m"}


def test_actor_call_arguments_checked():
    @rf.workflow
    def wf():
        return Adder(1, 2)

    with pytest.raises(SignatureError, match="'Adder'"):
        wf.build()


# -- explain ---------------------------------------------------------------------------------


def test_explain_returns_the_plan():
    plan = rf.explain(squares, n=10, k=4)
    assert len(plan.levels) == 3
    assert sorted(plan.levels[0]) == ["load", "load_1", "load_2", "load_3"]
    assert sorted(plan.parallel_groups[1]) == ["square_0", "square_1", "square_2", "square_3"]
    assert len(plan.critical_path) == 3
    assert plan.critical_path[-1] == "total"
    assert plan.critical_path_length == 3.0
    assert plan.bottlenecks
    assert {b.id for b in plan.bottlenecks} >= {"total"}
    assert plan.to_dict()["components"] == 9


def test_explain_does_not_start_ray():
    script = textwrap.dedent(
        """
        import sys
        import rayflow as rf

        @rf.component
        def a(n: int) -> int:
            return n

        @rf.component
        def b(xs: list) -> int:
            return len(xs)

        @rf.workflow
        def wf(n: int = 2):
            return b([a.options(id=f"a{i}")(n) for i in range(3)])

        plan = rf.explain(wf, n=5)
        assert plan.critical_path[-1] == "b", plan.critical_path
        started = "ray" in sys.modules and __import__("ray").is_initialized()
        print("RAY_STARTED", started)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "RAY_STARTED False" in done.stdout


def test_pure_core_imports_without_ray():
    modules = ["rayflow", "rayflow.graph", "rayflow.plan", "rayflow.spec", "rayflow.spec.convert",
               "rayflow.execute.state", "rayflow.execute.worker.invoke", "rayflow.metrics.summary",
               "rayflow.spec.targets", "rayflow.core.options", "rayflow.examples.etl"]
    script = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    script += "print('RAY_IMPORTED', 'ray' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "RAY_IMPORTED False" in done.stdout


def test_outputs_of_a_component_with_several_are_indexed_and_unpacked():
    @rf.component(num_outputs=2)
    def halves(xs):
        return xs[:1], xs[1:]

    @rf.component
    def show(x):
        return x

    @rf.workflow
    def wf():
        first, second = halves([1, 2])
        return [show(first), show(halves([3])[1])]

    calls = wf.build().calls
    assert calls["show"].args == (NodeRef("halves", 0),)
    assert calls["show_1"].args == (NodeRef("halves_1", 1),)


def test_indexing_a_single_output_or_past_the_last_output_is_refused():
    @rf.component(num_outputs=2)
    def two():
        return 1, 2

    @rf.component
    def one():
        return 1

    @rf.workflow
    def past():
        return two()[2]

    @rf.workflow
    def single():
        return one()[0]

    # raised while tracing: a one-line SpecError naming the exception (chained as its cause)
    with pytest.raises(rf.SpecError, match=r"IndexError .*node 'two' has 2 outputs \(num_outputs=2\); got index 2"):
        past.build()
    with pytest.raises(rf.SpecError, match="TypeError .*node 'one' has one output"):
        single.build()
