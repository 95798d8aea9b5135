"""Fuzzing the spec's front door: about 10,800 generated specs and documents per run
(``RAYFLOW_FUZZ_EXAMPLES`` sets the total) pushed through ``WorkflowSpec``, the spec loader,
``rf.explain`` and ``rayflow explain FILE``. Only a SpecError with a one-line message may
come out; valid DAGs plan every node in an order that respects every edge.

Reproducible and bounded: derandomized, no example database, no deadline (the timeout
marker catches a hang). No Ray: explain never starts it, and the last test checks.
"""

from __future__ import annotations

import json
import pickle

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rayflow as rf
from rayflow.cli.main import cli
from rayflow.core.errors import SpecError
from rayflow.spec import WorkflowSpec
from rayflow.spec.convert import to_blueprint
from tests.fuzz import strategies as gen
from tests.fuzz.conftest import GENERATED, OUTCOMES, RAY_CALLS, limits

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def fuzz(name: str):
    return settings(max_examples=gen.examples(name), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def check_message(exc: SpecError) -> None:
    message = str(exc)
    assert message, f"{type(exc).__name__} without a message"
    assert len(message.splitlines()) == 1, f"not one line: {message!r}"
    assert len(message) < 1000, f"{len(message)} characters: {message[:200]!r}..."


def spec_errors_only(call, *args, **kwargs):
    """``call``'s value; None for a SpecError (checked to be one line); anything else escapes."""
    try:
        value = call(*args, **kwargs)
    except SpecError as exc:
        check_message(exc)
        OUTCOMES[f"{getattr(call, '__name__', 'call')}: SpecError"] += 1
        return None
    OUTCOMES[f"{getattr(call, '__name__', 'call')}: ok"] += 1
    return value


def explain_spec(spec: WorkflowSpec | None, inputs: dict | None = None) -> None:
    if spec is not None:
        spec_errors_only(rf.explain, spec, **(inputs or {}))


# -- the Python entry points --------------------------------------------------------------------

@fuzz("dicts")
@given(gen.specs())
def test_any_dict_validates_or_is_one_spec_error(data):
    GENERATED["dicts"] += 1
    spec = spec_errors_only(WorkflowSpec.model_validate, data)
    if spec is not None:
        spec_errors_only(to_blueprint, spec)


@fuzz("specs")
@given(gen.specs(), st.dictionaries(st.sampled_from(["n", "day", "x", "other"]), gen.values, max_size=2))
def test_any_dict_explains_or_is_one_spec_error(data, inputs):
    GENERATED["specs"] += 1
    spec_errors_only(rf.explain, data, **inputs)


@fuzz("yaml")
@given(gen.yaml_texts())
def test_any_yaml_text_loads_or_is_one_spec_error(text):
    GENERATED["yaml"] += 1
    explain_spec(spec_errors_only(WorkflowSpec.from_text, text, source="fuzz.yaml"))


@fuzz("json")
@given(gen.json_texts())
def test_any_json_text_loads_or_is_one_spec_error(text):
    GENERATED["json"] += 1
    explain_spec(spec_errors_only(WorkflowSpec.from_text, text, source="fuzz.json", fmt="json"))


@fuzz("bytes")
@given(gen.spec_bytes(), st.sampled_from([".yaml", ".json", ".yml"]))
def test_any_spec_file_loads_or_is_one_spec_error(fuzz_dir, raw, suffix):
    GENERATED["bytes"] += 1
    path = fuzz_dir / f"spec{suffix}"
    path.write_bytes(raw)
    spec_errors_only(rf.explain, str(path))


@fuzz("hostile")
@given(st.sampled_from(["components", "bytes", "values", "depth", "bomb"]), st.integers(1, 400))
def test_specs_over_a_limit_are_one_spec_error(kind, size):
    GENERATED["hostile"] += 1
    with limits(RAYFLOW_MAX_COMPONENTS="40", RAYFLOW_MAX_SPEC_BYTES="3000", RAYFLOW_MAX_SPEC_NODES="500",
                RAYFLOW_MAX_SPEC_DEPTH="16"):
        if kind == "components":
            data = {"components": [{"id": f"c{i}"} for i in range(size)]}
            text = json.dumps(data)
        elif kind == "bytes":
            data = {"components": [{"id": "x", "description": "d" * size * 10}]}
            text = json.dumps(data)
        elif kind == "values":
            data = {"components": [{"id": "x", "config": {"v": list(range(size * 2))}}]}
            text = json.dumps(data)
        elif kind == "depth":
            inner: object = 1
            for _ in range(size // 10):
                inner = {"a": [inner]}
            data = {"components": [{"id": "x", "config": {"v": inner}}]}
            text = json.dumps(data)
        else:
            data = None
            text = gen._alias_bomb(size % 9 + 1, size % 13 + 1)
        outcome = spec_errors_only(WorkflowSpec.from_text, text, source="h.json" if data else "h.yaml",
                                   fmt="json" if data else "yaml")
        explain_spec(outcome)
        if data is not None:
            explain_spec(spec_errors_only(WorkflowSpec.model_validate, data))


# -- traced workflows ---------------------------------------------------------------------------

@rf.component
def step(x: int = 0) -> int:
    return x


@rf.component(num_outputs=2)
def two() -> tuple[int, int]:
    return 1, 2


class UnreadableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


RAISED = [ValueError, KeyError, ZeroDivisionError, AttributeError, TypeError, IndexError, RuntimeError,
          AssertionError, NotImplementedError, UnreadableError, OSError, LookupError]


def _body(kind: str, exc: type[BaseException], message: str, index: int):
    def recurse(n: int) -> int:
        return recurse(n + 1)

    def body(n: int = 1):
        if kind == "raise":
            raise exc(message)
        if kind == "bool":
            return 1 if step(n) else 0
        if kind == "iter":
            return list(step(n))
        if kind == "index":
            return two()[index] if index % 2 else step(n)[index]
        if kind == "pickle":
            return pickle.dumps(step(n))
        if kind == "duplicate":
            step.options(id="same")(n)
            return step.options(id="same")(n)
        if kind == "unknown_kwarg":
            return step(y=n)
        if kind == "recursion":
            return recurse(0)
        if kind == "odd_return":
            return {"a": step(n), "b": [object(), two()[0]], "c": message}
        return step(step(n))
    return body


KINDS = ["raise", "raise", "bool", "iter", "index", "pickle", "duplicate", "unknown_kwarg", "recursion",
         "odd_return", "ok"]


@fuzz("traced")
@given(st.sampled_from(KINDS), st.sampled_from(RAISED), gen.text, st.integers(-4, 4),
       st.dictionaries(st.sampled_from(["n", "m"]), gen.values, max_size=2))
def test_a_workflow_that_fails_while_traced_is_one_spec_error(kind, exc, message, index, inputs):
    GENERATED["traced"] += 1
    workflow = rf.workflow(_body(kind, exc, message, index), name=f"traced_{kind}")
    spec_errors_only(rf.explain, workflow, **inputs)


# -- properties of valid DAGs -------------------------------------------------------------------

@fuzz("dags")
@given(gen.dags())
def test_a_valid_dag_plans_every_node_in_an_order_that_respects_every_edge(case):
    GENERATED["dags"] += 1
    spec, edges = case
    plan = rf.explain(spec)
    ids = {c["id"] for c in spec["components"]}
    assert set(plan.tasks) == ids and sorted(plan.order) == sorted(ids)
    position = {cid: i for i, cid in enumerate(plan.order)}
    level = {cid: n for n, members in enumerate(plan.levels) for cid in members}
    assert set(level) == ids
    for a, b in edges:
        assert position[a] < position[b], (a, b, plan.order)
        assert level[a] < level[b], (a, b, plan.levels)
    path = plan.critical_path
    assert path and set(path) <= ids
    assert all((a, b) in set(edges) for a, b in zip(path, path[1:], strict=False)), path


# -- the command line ---------------------------------------------------------------------------

CLI_INPUTS = ["n=5", "n=&a [*a]", "n=[[[[1]]]]", "n=!!binary /w==", "day=2001-12-14", "x=1e400", "n=" + "[" * 3000,
              "n=" + "9" * 5000, "=1", "noequals", "n=*undefined"]


@fuzz("cli")
@given(st.one_of(gen.yaml_texts().map(lambda t: t.encode("utf-8", "surrogatepass")), gen.spec_bytes(),
                 gen.json_texts().map(lambda t: t.encode("utf-8", "surrogatepass"))),
       st.sampled_from([".yaml", ".json"]), st.lists(st.sampled_from(CLI_INPUTS), max_size=2), st.booleans())
def test_rayflow_explain_exits_0_or_2_with_one_line(fuzz_dir, raw, suffix, inputs, as_json):
    GENERATED["cli"] += 1
    path = fuzz_dir / f"cli{suffix}"
    path.write_bytes(raw)
    args = ["explain", str(path), *[a for pair in inputs for a in ("-i", pair)], *(["--json"] if as_json else [])]
    result = CliRunner().invoke(cli, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exit_code == 2:
        assert result.stderr.startswith(("error: ", "Usage: ")), result.stderr
        if result.stderr.startswith("error: "):
            assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output


def test_no_ray_was_started():
    assert GENERATED, "no fuzz test ran before this one"
    assert RAY_CALLS == [], f"Ray was asked for while fuzzing: {sorted(set(RAY_CALLS))}"
