"""rayflow.spec: loading a declarative spec and converting it to a Blueprint (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rayflow as rf
from rayflow.core.errors import (
    CycleError,
    DuplicateIdError,
    FunctionImportError,
    SelfLoopError,
    SignatureError,
    SpecError,
    UnknownComponentError,
)
from rayflow.core.resolve import import_callable, import_exception
from rayflow.examples import etl
from rayflow.plan import NodeRef, make_plan
from rayflow.spec import WorkflowSpec
from rayflow.spec.convert import to_blueprint
from tests.fns import basic as fns

ETL_YAML = Path(etl.__file__).with_name("etl.yaml")

SPEC_YAML = """
name: etl
inputs: {n: 1000}
failure_strategy: continue_on_error
max_concurrency: 64
components:
  - id: load
    type: python
    function: rayflow.examples.etl:load
    config: {n: {$input: n}}
    resources: {num_cpus: 1, memory: 512MiB}
    max_retries: 2
    timeout_s: 30
  - id: clean
    function: rayflow.examples.etl:clean
    resources: {num_cpus: 0.5, num_gpus: 0, custom: {node_b: 1}}
  - id: total
    function: rayflow.examples.etl:total
connections:
  - {from: load, to: clean, port: table}
  - {from: clean, to: total}
outputs: total
"""


def spec_of(components, connections=(), **extra) -> WorkflowSpec:
    return WorkflowSpec.model_validate({"components": list(components), "connections": list(connections), **extra})


def fn(name: str) -> str:
    return f"tests.fns.basic:{name}"


# -- loading ---------------------------------------------------------------------------------


def test_from_text_yaml_full_shape():
    spec = WorkflowSpec.from_text(SPEC_YAML)
    assert spec.name == "etl"
    assert spec.inputs == {"n": 1000}
    assert spec.failure_strategy == "continue_on_error"
    assert spec.max_concurrency == 64
    assert [c.id for c in spec.components] == ["load", "clean", "total"]
    load = spec.components[0]
    assert load.config == {"n": {"$input": "n"}}
    assert load.resources.memory == "512MiB"
    assert load.max_retries == 2 and load.timeout_s == 30
    conn = spec.connections[0]
    assert (conn.source, conn.target, conn.port) == ("load", "clean", "table")
    assert spec.connections[1].port is None
    assert spec.outputs == "total"


def test_from_file_yaml_and_json(tmp_path):
    spec = WorkflowSpec.from_file(ETL_YAML)
    assert spec.name == "etl"
    assert [c.id for c in spec.components] == ["load", "clean_even", "clean_odd", "total"]

    data = {"components": [{"id": "a", "function": fn("source")}], "inputs": {"n": 2}}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    loaded = WorkflowSpec.from_file(path)
    assert loaded.name == "mine"  # defaults to the file's stem
    assert loaded.inputs == {"n": 2}
    assert loaded.components[0].function == fn("source")

    yml = tmp_path / "other.yml"
    yml.write_text("name: given\ncomponents: [{id: a}]\n")
    assert WorkflowSpec.from_file(yml).name == "given"


def test_from_text_json():
    spec = WorkflowSpec.from_text(json.dumps({"components": [{"id": "x"}]}), fmt="json")
    assert spec.components[0].id == "x" and spec.name == "workflow"


def test_load_errors_are_one_line_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec file"):
        WorkflowSpec.from_file(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="not valid YAML"):
        WorkflowSpec.from_text("components: [a, b")
    with pytest.raises(SpecError, match="not valid JSON"):
        WorkflowSpec.from_text("{nope", fmt="json")
    with pytest.raises(SpecError, match="mapping at the top level"):
        WorkflowSpec.from_text("- a\n- b\n")
    with pytest.raises(SpecError, match="at least one component"):
        WorkflowSpec.model_validate({"components": []})


def test_seed_dict_shape_loads_as_is():
    seed = {
        "components": [
            {"id": "load", "type": "python", "config": {"n": 5}},
            {"id": "double", "type": "python", "config": {}},
        ],
        "connections": [{"from": "load", "to": "double"}],
    }
    spec = WorkflowSpec.model_validate(seed)
    assert [c.id for c in spec.components] == ["load", "double"]
    assert spec.components[0].config == {"n": 5}
    assert spec.connections[0].source == "load" and spec.connections[0].target == "double"
    # With no function it still converts and explains (no execution).
    bp = to_blueprint(spec)
    assert bp.calls["double"].deps == ("load",)
    plan = make_plan(bp, require_functions=False)
    assert plan.critical_path == ["load", "double"]
    with pytest.raises(SpecError, match="'load'.*no function"):
        make_plan(bp)


def test_extra_top_level_keys_are_kept():
    spec = WorkflowSpec.model_validate({"components": [{"id": "a"}], "owner": "team"})
    assert spec.model_extra == {"owner": "team"}


@pytest.mark.parametrize(
    ("component", "field", "snippet"),
    [
        ({"id": "load", "max_retries": "x"}, "max_retries", "valid integer"),
        ({"id": "load", "max_retry": 2}, "max_retry", "unknown field"),
        ({"id": "load", "max_retries": -1}, "max_retries", "greater than or equal to 0"),
        ({"id": "load", "timeout_s": 0}, "timeout_s", "greater than 0"),
        ({"id": "load", "resources": {"num_cpu": 1}}, "resources.num_cpu", "unknown field"),
    ],
)
def test_pydantic_errors_become_one_line_naming_component_and_field(component, field, snippet):
    with pytest.raises(SpecError) as info:
        WorkflowSpec.model_validate({"components": [{"id": "first"}, component]})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"component 'load' field '{field}'")
    assert snippet in message


def test_error_in_component_without_id_uses_its_position():
    with pytest.raises(SpecError, match="component #2 field 'id'"):
        WorkflowSpec.model_validate({"components": [{"id": "a"}, {"function": "m:f"}]})


def test_error_in_connection_names_it():
    with pytest.raises(SpecError) as info:
        WorkflowSpec.model_validate({"components": [{"id": "a"}], "connections": [{"from": "a"}]})
    assert str(info.value).startswith("connection #1 (a -> None) field 'to'")


def test_workflow_level_error():
    with pytest.raises(SpecError, match="workflow field 'failure_strategy'"):
        WorkflowSpec.model_validate({"components": [{"id": "a"}], "failure_strategy": "never"})
    with pytest.raises(SpecError, match="workflow field 'max_concurrency'"):
        WorkflowSpec.model_validate({"components": [{"id": "a"}], "max_concurrency": 0})


# -- to_blueprint --------------------------------------------------------------------------------


def test_etl_yaml_to_blueprint_and_plan():
    bp = to_blueprint(WorkflowSpec.from_file(ETL_YAML), {"n": 50}, target="etl.yaml")
    assert bp.name == "etl" and bp.target == "etl.yaml"
    assert bp.inputs == {"n": 50}
    assert bp.calls["load"].kwargs == {"n": 50}
    assert bp.calls["load"].fn is etl.load.fn  # a Component is unwrapped to its function
    assert bp.calls["load"].fn_ref == "rayflow.examples.etl:load"
    assert bp.calls["load"].options.memory == 256 * 1024**2
    assert bp.calls["clean_even"].kwargs == {"part": 0, "parts": 2, "table": NodeRef("load")}
    assert bp.calls["clean_even"].options.num_cpus == 0.5
    assert bp.calls["clean_even"].options.max_retries == 2
    assert bp.calls["total"].args == (NodeRef("clean_even"), NodeRef("clean_odd"))
    assert bp.output == NodeRef("total")
    plan = make_plan(bp)
    assert plan.levels == [["load"], ["clean_even", "clean_odd"], ["total"]]
    assert plan.critical_path_length == 3.0


def test_input_resolution_defaults_and_overrides():
    spec = spec_of([{"id": "a", "function": fn("source"), "config": {"n": {"$input": "n"}}}], inputs={"n": 3})
    assert to_blueprint(spec).calls["a"].kwargs == {"n": 3}
    assert to_blueprint(spec, {"n": 9}).calls["a"].kwargs == {"n": 9}


def test_nested_input_references_resolved():
    spec = spec_of(
        [{"id": "a", "function": fn("kw_anything"),
          "config": {"opts": {"size": {"$input": "n"}, "list": [{"$input": "m"}, 1]}}}],
        inputs={"n": 1, "m": 2},
    )
    assert to_blueprint(spec).calls["a"].kwargs == {"opts": {"size": 1, "list": [2, 1]}}


def test_unknown_input_given():
    spec = spec_of([{"id": "a", "function": fn("source")}], inputs={"n": 1}, name="w")
    with pytest.raises(SpecError, match="'w' has no input 'm'.*inputs: n"):
        to_blueprint(spec, {"m": 2})


def test_unknown_input_referenced():
    spec = spec_of([{"id": "a", "function": fn("source"), "config": {"n": {"$input": "size"}}}])
    with pytest.raises(SpecError) as info:
        to_blueprint(spec)
    assert info.value.component == "a"
    assert "'size'" in str(info.value)


def test_ports_are_keyword_arguments():
    spec = spec_of(
        [{"id": "x", "function": fn("source")}, {"id": "y", "function": fn("source")},
         {"id": "sum", "function": fn("add")}],
        [{"from": "x", "to": "sum", "port": "a"}, {"from": "y", "to": "sum", "port": "b"}],
    )
    call = to_blueprint(spec).calls["sum"]
    assert call.kwargs == {"a": NodeRef("x"), "b": NodeRef("y")}
    assert call.args == ()
    make_plan(to_blueprint(spec))


def test_several_connections_to_one_port_make_a_list():
    spec = spec_of(
        [{"id": f"s{i}", "function": fn("source")} for i in range(3)]
        + [{"id": "c", "function": fn("combine"), "config": {"scale": 2}}],
        [{"from": f"s{i}", "to": "c", "port": "items"} for i in (2, 0, 1)],
    )
    call = to_blueprint(spec).calls["c"]
    assert call.kwargs == {"scale": 2, "items": [NodeRef("s2"), NodeRef("s0"), NodeRef("s1")]}
    assert call.deps == ("s2", "s0", "s1")


def test_positional_connections_in_listed_order():
    spec = spec_of(
        [{"id": n, "function": fn("source")} for n in ("b", "a", "c")]
        + [{"id": "g", "function": fn("gather")}],
        [{"from": "c", "to": "g"}, {"from": "a", "to": "g"}, {"from": "b", "to": "g"}],
    )
    assert to_blueprint(spec).calls["g"].args == (NodeRef("c"), NodeRef("a"), NodeRef("b"))


def test_port_also_set_in_config():
    spec = spec_of(
        [{"id": "x", "function": fn("source")}, {"id": "d", "function": fn("double"), "config": {"x": 1}}],
        [{"from": "x", "to": "d", "port": "x"}],
    )
    with pytest.raises(SignatureError, match="'d'.*'x'"):
        to_blueprint(spec)


def test_unknown_component_in_connection():
    spec = spec_of([{"id": "a", "function": fn("source")}], [{"from": "a", "to": "ghost"}])
    with pytest.raises(UnknownComponentError) as info:
        to_blueprint(spec)
    assert info.value.component == "ghost"
    assert "connection #1" in str(info.value)


def test_self_loop_connection():
    spec = spec_of([{"id": "a", "function": fn("double")}], [{"from": "a", "to": "a", "port": "x"}])
    with pytest.raises(SelfLoopError) as info:
        to_blueprint(spec)
    assert info.value.component == "a"


def test_duplicate_ids():
    spec = spec_of([{"id": "a", "function": fn("source")}, {"id": "a", "function": fn("source")}])
    with pytest.raises(DuplicateIdError) as info:
        to_blueprint(spec)
    assert info.value.component == "a"


@pytest.mark.parametrize(
    ("ref", "snippet"),
    [
        ("no_such_module_xyz:f", "cannot import"),
        ("tests.fns.basic:no_such_function", "has no attribute 'no_such_function'"),
        ("justaname", "expected 'module:callable'"),
        ("tests.fns.basic:NOT_CALLABLE", "not callable"),
    ],
)
def test_function_that_cannot_be_imported(ref, snippet):
    spec = spec_of([{"id": "broken", "function": ref}])
    with pytest.raises(FunctionImportError) as info:
        to_blueprint(spec)
    assert info.value.component == "broken"
    assert "'broken'" in str(info.value)
    assert snippet in str(info.value)


def test_dotted_function_reference_also_accepted():
    assert import_callable("tests.fns.basic.double", component="c") is fns.double


def test_components_without_function_still_explain():
    spec = spec_of([{"id": "p", "type": "python", "config": {"components": ["a"]}},
                    {"id": "q", "type": "python"}], [{"from": "p", "to": "q"}])
    plan = make_plan(to_blueprint(spec), require_functions=False)
    assert plan.critical_path == ["p", "q"]
    with pytest.raises(SpecError, match="'p'.*no function"):
        make_plan(to_blueprint(spec))


def test_free_form_types_are_refused_not_run_as_tasks():
    # The seed's free-form types ("parallel_executor") once ran as plain tasks; now they
    # are refused (tests/unit/spec/test_hostile.py has the did-you-mean cases).
    with pytest.raises(SpecError, match="component 'p' field 'type': expected one of python, actor, batch"):
        spec_of([{"id": "p", "type": "parallel_executor"}])


def test_actor_type():
    spec = spec_of([{"id": "counter", "type": "actor", "function": fn("Counter"), "init": {"start": 5},
                     "concurrency": 2, "config": {"step": 3}}])
    call = to_blueprint(spec).calls["counter"]
    assert call.options.kind == "actor"
    assert call.options.init_kwargs == {"start": 5}
    assert call.options.concurrency == 2
    assert call.fn is fns.Counter
    plan = make_plan(to_blueprint(spec))
    assert plan.tasks["counter"].pool is not None
    bad = spec_of([{"id": "counter", "type": "actor", "function": fn("Counter"), "init": {"begin": 5}}])
    with pytest.raises(SignatureError, match="'begin'"):
        make_plan(to_blueprint(bad))


def test_resources_block_maps_to_options():
    spec = WorkflowSpec.from_text(SPEC_YAML)
    bp = to_blueprint(spec)
    load = bp.calls["load"].options
    assert load.num_cpus == 1.0 and load.memory == 512 * 1024**2
    assert load.max_retries == 2 and load.timeout_s == 30
    clean = bp.calls["clean"].options
    assert clean.num_cpus == 0.5 and clean.num_gpus == 0.0 and clean.resources == {"node_b": 1.0}
    assert bp.failure_strategy == "continue_on_error" and bp.max_concurrency == 64


def test_bad_resources_name_component():
    spec = spec_of([{"id": "big", "function": fn("source"), "resources": {"memory": "lots"}}])
    with pytest.raises(rf.ResourceError, match="'big'.*'memory'"):
        to_blueprint(spec)
    spec = spec_of([{"id": "neg", "function": fn("source"), "resources": {"num_cpus": -1}}])
    with pytest.raises(rf.ResourceError, match="'neg'.*'num_cpus'"):
        to_blueprint(spec)
    spec = spec_of([{"id": "cpu", "function": fn("source"), "resources": {"custom": {"CPU": 2}}}])
    with pytest.raises(rf.ResourceError, match="'cpu'"):
        to_blueprint(spec)


def test_outputs_default_single_sink():
    spec = spec_of(
        [{"id": "a", "function": fn("source")}, {"id": "b", "function": fn("double")}],
        [{"from": "a", "to": "b"}],
    )
    assert to_blueprint(spec).output == NodeRef("b")


def test_outputs_default_every_sink():
    spec = spec_of(
        [{"id": "a", "function": fn("source")}, {"id": "b", "function": fn("double")},
         {"id": "c", "function": fn("double")}, {"id": "lonely", "function": fn("source")}],
        [{"from": "a", "to": "b"}, {"from": "a", "to": "c"}],
    )
    out = to_blueprint(spec).output
    assert out == {"b": NodeRef("b"), "c": NodeRef("c"), "lonely": NodeRef("lonely")}


def test_outputs_explicit():
    comps = [{"id": "a", "function": fn("source")}, {"id": "b", "function": fn("double")}]
    conns = [{"from": "a", "to": "b"}]
    assert to_blueprint(spec_of(comps, conns, outputs="a")).output == NodeRef("a")
    assert to_blueprint(spec_of(comps, conns, outputs=["b", "a"])).output == {"b": NodeRef("b"), "a": NodeRef("a")}
    assert to_blueprint(spec_of(comps, conns, outputs=["b"])).output == {"b": NodeRef("b")}
    with pytest.raises(UnknownComponentError, match="'zz'"):
        to_blueprint(spec_of(comps, conns, outputs=["a", "zz"]))


def test_cycle_detected_by_make_plan():
    spec = spec_of(
        [{"id": n, "function": fn("double")} for n in ("a", "b", "c")],
        [{"from": "a", "to": "b", "port": "x"}, {"from": "b", "to": "c", "port": "x"},
         {"from": "c", "to": "a", "port": "x"}],
    )
    bp = to_blueprint(spec)
    with pytest.raises(CycleError) as info:
        make_plan(bp)
    cycle = info.value.cycle
    assert set(cycle) == {"a", "b", "c"} and cycle[0] == cycle[-1]
    flows = {("a", "b"), ("b", "c"), ("c", "a")}
    assert all((cycle[i], cycle[i + 1]) in flows for i in range(3))
    assert " -> " in str(info.value)


def test_missing_required_argument():
    spec = spec_of([{"id": "s", "function": fn("needs_two"), "config": {"a": 1}}])
    with pytest.raises(SignatureError) as info:
        make_plan(to_blueprint(spec))
    assert info.value.component == "s"
    assert "'b'" in str(info.value)


def test_unknown_port():
    spec = spec_of(
        [{"id": "x", "function": fn("source")}, {"id": "d", "function": fn("double")}],
        [{"from": "x", "to": "d", "port": "y"}],
    )
    with pytest.raises(SignatureError) as info:
        make_plan(to_blueprint(spec))
    assert info.value.component == "d"
    assert "'y'" in str(info.value) and "parameters: x" in str(info.value)


def test_var_keyword_accepts_any_port():
    spec = spec_of(
        [{"id": "x", "function": fn("source")}, {"id": "k", "function": fn("kw_anything")}],
        [{"from": "x", "to": "k", "port": "whatever"}],
    )
    make_plan(to_blueprint(spec))


def test_retry_exceptions_names():
    spec = spec_of([{"id": "r", "function": fn("source"), "max_retries": 3,
                     "retry_exceptions": ["ValueError", "tests.fns.basic:CustomError", "builtins.KeyError"]}])
    opts = to_blueprint(spec).calls["r"].options
    assert opts.retry_exceptions == (ValueError, fns.CustomError, KeyError)
    assert to_blueprint(spec_of([{"id": "r", "function": fn("source"), "retry_exceptions": True}])
                        ).calls["r"].options.retry_exceptions is True


@pytest.mark.parametrize(
    ("name", "error"),
    [("NotAnError", FunctionImportError), ("tests.fns.basic:double", SpecError),
     ("len", SpecError), ("tests.fns.basic:Nope", FunctionImportError)],
)
def test_retry_exceptions_bad_names(name, error):
    spec = spec_of([{"id": "r", "function": fn("source"), "retry_exceptions": [name]}])
    with pytest.raises(error) as info:
        to_blueprint(spec)
    assert info.value.component == "r"
    assert "retry_exceptions" in str(info.value)


def test_import_exception_builtin_and_module():
    assert import_exception("TimeoutError", component="c") is TimeoutError
    assert import_exception("tests.fns.basic:CustomError", component="c") is fns.CustomError


def test_rf_explain_accepts_a_spec_and_a_dict():
    spec = WorkflowSpec.from_text(SPEC_YAML)
    plan = rf.explain(spec)
    assert plan.critical_path == ["load", "clean", "total"]
    plan = rf.explain({"components": [{"id": "only", "function": fn("source")}]})
    assert plan.levels == [["only"]]


def test_batch_type_runs_its_function_over_batches():
    import pyarrow as pa

    from rayflow.data.batches import BatchFunction

    spec = spec_of([{"id": "src", "function": fn("source")},
                    {"id": "pos", "type": "batch", "function": fn("only_positive"), "batch_size": 2,
                     "config": {"column": "x"}}],
                   [{"from": "src", "to": "pos"}])
    call = to_blueprint(spec).calls["pos"]
    assert call.options.kind == "batch" and call.options.batch_size == 2 and call.type == "batch"
    task = make_plan(to_blueprint(spec)).tasks["pos"]
    assert isinstance(task.fn, BatchFunction) and task.fn.batch_size == 2
    out = task.fn(pa.table({"x": [-1, 2, 0, 5, 7]}), column="x")
    assert out.column("x").to_pylist() == [2, 5, 7]


def test_batch_size_must_be_a_positive_integer():
    spec_dict = {"name": "w", "components": [{"id": "pos", "type": "batch", "function": fn("only_positive"),
                                                "batch_size": 0}]}
    with pytest.raises(SpecError, match="batch_size"):
        WorkflowSpec.model_validate(spec_dict)
