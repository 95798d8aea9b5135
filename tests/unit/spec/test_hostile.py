"""Specs written to hurt: alias bombs, deep nesting, bad bytes, huge values, typos, modules
and workflow functions that raise. Each ends in one one-line SpecError (no Ray)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import rayflow as rf
from rayflow.core.errors import ConfigError, SpecError
from rayflow.server.http.limits import Limits
from rayflow.spec import WorkflowSpec
from rayflow.spec.targets import blueprint_of, load_target

DEEP = 20_000


def one_line_error(call, *args, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and len(message) < 400
    return info.value


def laughs(levels: int, width: int = 9) -> str:
    """The "billion laughs": each level a list of ``width`` aliases of the one before."""
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for n in range(1, levels + 1):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]")
    lines.append(f"components: [{{id: x, config: {{v: *l{levels}}}}}]")
    return "\n".join(lines) + "\n"


# -- 1. YAML aliases ------------------------------------------------------------------------

def test_a_billion_laughs_is_refused_before_it_expands():
    text = laughs(9)                     # 9**10 "lol"s once expanded, from a few hundred bytes
    assert len(text) < 700
    err = one_line_error(WorkflowSpec.from_text, text, source="bomb.yaml")
    assert "'bomb.yaml'" in str(err) and "RAYFLOW_MAX_SPEC_NODES" in str(err)


def test_an_alias_bomb_under_the_value_limit_is_refused_by_its_expansion_ratio():
    err = one_line_error(WorkflowSpec.from_text, laughs(4), source="small-bomb.yaml")   # ~66,000 values
    assert "aliases expand" in str(err) and "at most 10 times" in str(err)


def test_merge_keys_that_multiply_are_refused_before_pyyaml_flattens_them():
    lines = ["m0: &m0 {x: 1, y: 2}"]
    for n in range(1, 7):                # each level merges the one before ten times: 10**6 pairs
        lines.append(f"m{n}: &m{n} {{<<: [" + ", ".join([f"*m{n - 1}"] * 10) + "]}")
    lines.append("components: [{id: x, config: *m6}]")
    err = one_line_error(WorkflowSpec.from_text, "\n".join(lines), source="merge.yaml")
    assert "RAYFLOW_MAX_SPEC_NODES" in str(err)


def test_an_alias_inside_its_own_anchor_is_refused():
    err = one_line_error(WorkflowSpec.from_text, "a: &a [1, *a]\ncomponents: [{id: x}]\n", source="loop.yaml")
    assert "contains itself" in str(err) and "a[1]" in str(err)


def test_ordinary_anchors_still_load():
    text = textwrap.dedent("""\
        defaults: &res {num_cpus: 1, memory: 256MiB}
        components:
          - {id: a, resources: *res}
          - id: b
            resources: {<<: *res, num_cpus: 2}
        connections: [{from: a, to: b}]
    """)
    spec = WorkflowSpec.from_text(text)
    assert spec.components[0].resources.memory == "256MiB"
    assert spec.components[1].resources.num_cpus == 2


# -- 2. depth ------------------------------------------------------------------------------

def test_deep_yaml_is_refused_with_the_depth_limit():
    text = "components: [{id: x, config: {v: " + "[" * DEEP + "]" * DEEP + "}}]"
    err = one_line_error(WorkflowSpec.from_text, text, source="deep.yaml")
    assert "deeper than 64 levels" in str(err) and "RAYFLOW_MAX_SPEC_DEPTH" in str(err)


def test_deep_json_is_refused_with_the_depth_limit(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"components": [{"id": "x", "config": {"v": ' + "[" * DEEP + "]" * DEEP + "}}]}")
    err = one_line_error(WorkflowSpec.from_file, path)
    assert "deeper than 64 levels" in str(err)


def test_a_deep_dict_is_refused_naming_where():
    value: dict = {}
    spec = {"components": [{"id": "x", "config": value}]}
    for _ in range(DEEP):
        value["a"] = {}
        value = value["a"]
    err = one_line_error(rf.explain, spec)
    assert str(err).startswith("the spec: components[0].config.a.a.")
    assert "deeper than 64 levels" in str(err)


def test_a_dict_that_holds_itself_is_refused():
    config_value: dict = {}
    config_value["me"] = config_value
    err = one_line_error(WorkflowSpec.model_validate, {"components": [{"id": "x", "config": config_value}]})
    assert "components[0].config.me contains itself" in str(err)


def test_the_depth_limit_is_a_setting(monkeypatch):
    nested = {"components": [{"id": "x", "config": {"a": {"b": {"c": {"d": 1}}}}}]}   # 7 levels
    WorkflowSpec.model_validate(nested)
    monkeypatch.setenv("RAYFLOW_MAX_SPEC_DEPTH", "7")
    WorkflowSpec.model_validate(nested)
    monkeypatch.setenv("RAYFLOW_MAX_SPEC_DEPTH", "6")
    err = one_line_error(WorkflowSpec.model_validate, nested)
    assert "components[0].config.a.b.c nests deeper than 6 levels" in str(err)


# -- 3. bytes that are not UTF-8 -----------------------------------------------------------

def test_a_file_that_is_not_utf8_names_the_file_and_the_offset(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("components:\n  - id: café\n".encode("latin-1"))
    err = one_line_error(WorkflowSpec.from_file, path)
    assert f"spec file {str(path)!r} is not UTF-8: byte 0xe9 at offset 23" in str(err)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"components": [{"id": "x"}]}).encode())
    assert WorkflowSpec.from_file(path).components[0].id == "x"


# -- 4. sizes and counts -------------------------------------------------------------------

def test_a_spec_file_over_the_byte_limit_names_its_size_and_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text("components: [{id: x}]\n# " + "x" * 200 + "\n")
    monkeypatch.setenv("RAYFLOW_MAX_SPEC_BYTES", "100")
    err = one_line_error(WorkflowSpec.from_file, path)
    assert f"has {path.stat().st_size} bytes; the most rayflow reads is 100 (RAYFLOW_MAX_SPEC_BYTES)" in str(err)
    err = one_line_error(WorkflowSpec.from_text, path.read_text(), source="big.yaml")
    assert "is 100 (RAYFLOW_MAX_SPEC_BYTES)" in str(err)


def test_the_default_byte_limit_is_8_mib(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"components: [{id: x}]\n#" + b"x" * (8 * 1024 * 1024))
    err = one_line_error(WorkflowSpec.from_file, path)
    assert "the most rayflow reads is 8388608" in str(err)


def test_too_many_components(monkeypatch):
    spec = {"components": [{"id": f"c{i}"} for i in range(10_001)]}
    err = one_line_error(WorkflowSpec.model_validate, spec)
    assert str(err) == ("workflow field 'components': 10001 components, more than the 10000 one spec may hold "
                        "(RAYFLOW_MAX_COMPONENTS)")
    monkeypatch.setenv("RAYFLOW_MAX_COMPONENTS", "3")
    one_line_error(WorkflowSpec.model_validate, {"components": [{"id": f"c{i}"} for i in range(4)]})
    assert Limits().max_spec_components == 3      # the server takes the same setting


def test_too_many_values(monkeypatch):
    monkeypatch.setenv("RAYFLOW_MAX_SPEC_NODES", "50")
    err = one_line_error(WorkflowSpec.model_validate, {"components": [{"id": "x", "config": {"v": list(range(60))}}]})
    assert "holds more than 50 values (RAYFLOW_MAX_SPEC_NODES)" in str(err)


@pytest.mark.parametrize(("field", "limit", "var"), [
    ("concurrency", 10_000, "RAYFLOW_MAX_CONCURRENCY"),
    ("max_retries", 100, "RAYFLOW_MAX_RETRIES"),
    ("num_outputs", 1_000, "RAYFLOW_MAX_NUM_OUTPUTS"),
])
def test_component_fields_over_their_limit(field, limit, var, monkeypatch):
    spec = {"components": [{"id": "ok"}, {"id": "big", field: limit + 1}]}
    err = one_line_error(WorkflowSpec.model_validate, spec)
    assert str(err) == f"component 'big' field '{field}': at most {limit} ({var}), got {limit + 1}"
    WorkflowSpec.model_validate({"components": [{"id": "edge", field: limit}]})
    monkeypatch.setenv(var, str(limit * 2))
    WorkflowSpec.model_validate(spec)


def test_a_bad_limit_setting_is_a_config_error(monkeypatch):
    monkeypatch.setenv("RAYFLOW_MAX_RETRIES", "lots")
    with pytest.raises(ConfigError, match="RAYFLOW_MAX_RETRIES: expected a positive integer, got 'lots'"):
        WorkflowSpec.model_validate({"components": [{"id": "x"}]})


# -- 5. unknown types ----------------------------------------------------------------------

@pytest.mark.parametrize(("typo", "hint"), [("actr", " (did you mean 'actor'?)"), ("Python", " (did you mean 'python'?)"),
                                            ("btach", " (did you mean 'batch'?)"), ("kafka", "")])
def test_an_unknown_type_is_refused_with_the_valid_ones(typo, hint):
    err = one_line_error(WorkflowSpec.model_validate, {"components": [{"id": "a"}, {"id": "b", "type": typo}]})
    assert str(err) == f"component 'b' field 'type': expected one of python, actor, batch, sql, http{hint}, got {typo!r}"


# -- 6. modules and workflow functions that raise ------------------------------------------

def _module(tmp_path, monkeypatch, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


@pytest.mark.parametrize(("body", "kind"), [
    ("x = 1 / 0\n", "ZeroDivisionError: division by zero"),
    ("def broken(:\n", "SyntaxError: "),
    ("raise RuntimeError('no config\\nsecond line')\n", "RuntimeError: no config second line"),
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
])
def test_a_module_that_fails_at_import_is_a_spec_error(tmp_path, monkeypatch, body, kind):
    name = _module(tmp_path, monkeypatch, f"rf_hostile_{abs(hash(body))}", body)
    err = one_line_error(load_target, f"{name}:wf")
    assert str(err).startswith(f"target '{name}:wf': importing module {name!r} raised {kind}")
    assert err.__cause__ is not None            # kept for debugging


def test_a_workflow_that_raises_while_traced_is_a_spec_error(tmp_path, monkeypatch):
    name = _module(tmp_path, monkeypatch, "rf_hostile_traced", """\
        import rayflow as rf

        @rf.workflow
        def wf(n: int = 1):
            return {"a": 1}[n]
    """)
    err = one_line_error(blueprint_of, f"{name}:wf", {"n": 2})
    assert str(err) == f"workflow 'wf' ({name}:wf) raised KeyError while it was traced: 2"
    assert isinstance(err.__cause__, KeyError)
    one_line_error(rf.explain, f"{name}:wf", n=2)


def test_a_spec_error_raised_while_traced_is_kept_as_it_is():
    @rf.component
    def step(x: int) -> int:
        return x

    @rf.workflow
    def twice():
        step.options(id="same")(1)
        return step.options(id="same")(2)

    with pytest.raises(rf.DuplicateIdError, match="two components share the id 'same'"):
        twice.build()


def test_an_input_reference_that_is_not_a_name():
    spec = {"components": [{"id": "x", "config": {"v": {"$input": ["n"]}}}]}
    err = one_line_error(rf.explain, spec)
    assert str(err) == "component 'x' field 'config': {$input: NAME} expects the name of an input, got list ['n']"


@pytest.mark.parametrize("component", [{"id": "a", "resources": {"memory": 10**400}},
                                       {"id": "a", "cache": {"ttl_s": 10**400}}])
def test_an_integer_too_large_for_a_float_is_a_spec_error(component):
    # found by tests/fuzz: float(10**400) raised OverflowError out of core.options
    err = one_line_error(rf.explain, {"components": [component]})
    assert "expected a finite non-negative number, got inf" in str(err)
