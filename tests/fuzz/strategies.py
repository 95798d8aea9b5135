"""Hypothesis strategies for specs: random values, near-valid components and graphs, DAGs,
YAML and JSON text (mutated, aliased, tagged, deep), raw bytes.

Names that a spec imports (functions, exception classes) come from fixed lists of
harmless references (``tests.fns.basic``, the standard library's exceptions, modules
that do not exist): the fuzzer never makes up a module name to import.
"""

from __future__ import annotations

import json
import os
import random

import yaml
from hypothesis import strategies as st

# -- how many examples each test generates -----------------------------------------------------

EXAMPLES_VAR = "RAYFLOW_FUZZ_EXAMPLES"
DEFAULT_TOTAL = 10_800
SHARES = {   # test -> its share of the total
    "dicts": 0.27, "specs": 0.22, "yaml": 0.17, "json": 0.06, "bytes": 0.07, "dags": 0.10,
    "hostile": 0.05, "traced": 0.03, "cli": 0.03,
}


def examples(name: str) -> int:
    """Examples for test ``name``: its share of $RAYFLOW_FUZZ_EXAMPLES (default 10,800)."""
    total = int(os.environ.get(EXAMPLES_VAR) or DEFAULT_TOTAL)
    return max(10, round(total * SHARES[name]))


# -- values --------------------------------------------------------------------------------------

ODD_TEXT = ["", " ", "a\nb", "\x00", "\u2028", "é", "..", "../x", "a/b", "$input", "{}", "*", "&a", "x" * 300,
            "\ud800", "NaN", "inf", "-1", "1e400", "null", "~", "yes", "0x1F", "<<"]
ODD_VALUES = [None, True, False, 0, -1, 1.5, float("nan"), float("inf"), -0.0, 2**63, 10**40, 10**400, "x", "",
              "a\nb", [], {}, [1, "a"], {"a": 1}, {"$input": "n"}, {"$input": ["n"]}, [[[]]], {"a": {"b": [None]}}]
WORDS = ["a", "b", "x", "n", "load", "total", "fn", "tests", "python", "0", "1.5", "true", "A" * 70]
# st.text draws one choice per character: mostly whole words, now and then free text
text = st.one_of(st.sampled_from(ODD_TEXT), st.sampled_from(WORDS), st.sampled_from(WORDS), st.text(max_size=6))
odd = st.sampled_from(ODD_VALUES)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text, odd)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                      max_leaves=5)
small_ints = st.integers(min_value=-3, max_value=12)
counts = small_ints | st.sampled_from([0, 99, 100, 101, 999, 1000, 1001, 10_000, 10_001, 2**63, 10**40]) | odd

FUNCTIONS = ["tests.fns.basic:source", "tests.fns.basic:double", "tests.fns.basic:add", "tests.fns.basic:gather",
             "tests.fns.basic:kw_anything", "tests.fns.basic:combine", "tests.fns.basic:Counter",
             "tests.fns.basic:only_positive", "tests.fns.basic:NOT_CALLABLE", "tests.fns.basic:nope",
             "tests.fns.basic.double", "tests.fns.basic", "tests.fns.basic:source.x", "rf_fuzz_no_such_module:f",
             "rf_fuzz_no_such_module.sub:f", ":", "a:", ":b", "tests.fns.basic::source", ".rel:f", "tests..fns:f"]
EXCEPTIONS = ["ValueError", "KeyError", "Exception", "BaseException", "print", "NoSuchError", "tests.fns.basic:CustomError",
              "tests.fns.basic:source", "rf_fuzz_no_such_module:E", "", "os:sep"]
TYPES = ["python", "actor", "batch", "sql", "http", "actr", "Python", "btach", "parallel_executor", ""]
MEMORY = ["512MiB", "2GiB", "1.5GB", "0", "-1", "abc", "1e400", "12 kb", "nan", "inf", "9" * 400]
AMOUNTS = [0, 0.5, 1, 2, -1, "1", "x", "nan", "inf", 1e308, 10**400, True, None]
amounts = st.sampled_from(AMOUNTS) | st.floats() | odd


# Every strategy is built once, here: building one inside a draw costs Hypothesis more
# than the example is worth.

class Fields:
    """A few of ``fields`` (at most ``at_most``), each drawn from its strategy."""

    def __init__(self, fields: dict[str, st.SearchStrategy], at_most: int) -> None:
        self.fields = fields
        self.names = st.lists(st.sampled_from(sorted(fields)), max_size=at_most, unique=True)

    def draw(self, draw: st.DrawFn) -> dict:
        return {name: draw(self.fields[name]) for name in draw(self.names)}


RESOURCE_FIELDS = Fields({"num_cpus": amounts, "num_gpus": amounts, "memory": st.sampled_from(MEMORY) | amounts,
                          "custom": st.dictionaries(text, amounts, max_size=2) | odd, "num_cpu": odd}, 3)


@st.composite
def _resources(draw: st.DrawFn) -> object:
    return draw(odd) if draw(st.integers(0, 9)) == 0 else RESOURCE_FIELDS.draw(draw)


IDS = ["a", "b", "c", "d", "load", "a b", "é"]
INPUT_NAMES = ["n", "day", "x", "$input"]
ident = st.sampled_from(IDS) | text | odd
configs = st.dictionaries(st.sampled_from(["n", "x", "xs", "items", "a", "b", "scale", "column"]) | text,
                          values | st.builds(lambda name: {"$input": name}, st.sampled_from(INPUT_NAMES) | odd),
                          max_size=2) | odd

COMPONENT_FIELDS = Fields({
    "type": st.sampled_from(TYPES) | odd,
    "function": st.sampled_from(FUNCTIONS) | odd,
    "resources": _resources(),
    "config": configs,
    "max_retries": counts, "concurrency": counts, "num_outputs": counts, "batch_size": counts, "buffer_size": counts,
    "retry_exceptions": st.booleans() | st.lists(st.sampled_from(EXCEPTIONS), max_size=3) | odd,
    "timeout_s": st.floats() | small_ints | odd,
    "cache": st.booleans() | st.dictionaries(st.sampled_from(["ttl_s", "key", "x"]), odd, max_size=2) | odd,
    "checkpoint": st.booleans() | odd,
    "sizing": st.sampled_from(["auto", "static", "dynamic"]) | odd,
    "placement": st.sampled_from(["ray", "resource_aware", "least_loaded", "predictive", "nowhere"]) | odd,
    "init": st.dictionaries(text, values, max_size=2) | odd,
    "fuse": st.booleans() | odd,
    "version": text | odd, "description": text | odd, "max_retry": odd,
}, 3)


@st.composite
def component(draw: st.DrawFn) -> dict:
    """A component that is mostly well formed: any field may be missing, odd or wrong."""
    comp = {"id": draw(ident)} if draw(st.integers(0, 19)) else {}
    comp.update(COMPONENT_FIELDS.draw(draw))
    return comp


ends = st.sampled_from(IDS) | text | odd
connection = st.builds(lambda a, b, port: {"from": a, "to": b, **port}, ends, ends,
                       st.just({}) | st.builds(lambda p: {"port": p},
                                               st.sampled_from(["x", "xs", "n", "a", "items"]) | text | odd))
group = st.builds(lambda name, members, more: {"name": name, "members": members, **more}, text,
                  st.lists(st.sampled_from(IDS) | text, max_size=3) | odd,
                  st.sampled_from([{}, {"max_concurrency": 2}, {"max_concurrency": 0},
                                   {"failure_strategy": "never"}, {"failure_strategy": "fail_fast"}]))
TOP_FIELDS = Fields({
    "name": text | odd,
    "inputs": st.dictionaries(st.sampled_from(INPUT_NAMES), scalars, max_size=3) | odd,
    "failure_strategy": st.sampled_from(["fail_fast", "continue_on_error", "never"]) | odd,
    "max_concurrency": counts,
    "sizing": st.sampled_from(["auto", "static", None]),
    "placement": st.sampled_from(["ray", "least_loaded", "nowhere", None]),
    "outputs": st.sampled_from(IDS) | st.lists(st.sampled_from(IDS) | text, max_size=3) | odd,
    "groups": st.lists(group, max_size=2) | odd,
    "owner": odd,
}, 3)

# Pools made once by a seeded random.Random from the same tables: a component drawn from a
# pool costs one choice instead of dozens (Hypothesis spends ~50 us a choice, far more than
# validating the spec), so most components come from a pool, the rest from ``component()``.

PLAIN = {   # field -> values a pool component may take (a table beside each strategy above)
    "type": TYPES, "function": FUNCTIONS, "max_retries": [0, 1, 2, 100, 101, -1, 2**63],
    "concurrency": [1, 2, 0, 10_000, 10_001], "num_outputs": [None, 1, 2, 0, 1000, 1001],
    "batch_size": [None, 1, 10, 0], "buffer_size": [None, 2, 0], "timeout_s": [None, 1, 0.5, 0, -1, float("nan")],
    "retry_exceptions": [False, True, *([e] for e in EXCEPTIONS), ["ValueError", "KeyError"]],
    "cache": [None, True, False, {"ttl_s": 5}, {"x": 1}], "checkpoint": [True, False], "fuse": [None, True, False],
    "sizing": ["auto", "static", "dynamic", None], "version": ["1", None, ""], "description": ["d", "", "a\nb"],
    "placement": ["ray", "least_loaded", "nowhere", None],
    "resources": [{}, {"num_cpus": 1}, {"num_cpus": "x"}, {"num_gpus": -1}, {"memory": "512MiB"}, {"memory": "lots"},
                  {"memory": 10**400}, {"num_cpus": 10**400}, {"custom": {"node": 1}}, {"custom": {"node": "nan"}},
                  {"num_cpu": 1}, {"num_cpus": float("inf")}],
    "config": [{}, {"n": 1}, {"n": {"$input": "n"}}, {"x": {"$input": "day"}}, {"items": [1, 2]}, {"scale": 2},
               {"n": {"$input": "nope"}}, {"n": {"$input": 1}}, {"x": 1, "y": [{"$input": "x"}]}],
    "init": [{}, {"start": 1}, {"nope": 2}], "max_retry": [1],
}


def _pool_component(rng: random.Random) -> dict:
    comp: dict = {} if rng.random() < 0.05 else {"id": rng.choice(IDS if rng.random() < 0.9 else ODD_TEXT + ODD_VALUES)}
    for name in rng.sample(sorted(PLAIN), rng.randint(0, 4)):
        comp[name] = rng.choice(PLAIN[name] if rng.random() < 0.85 else ODD_VALUES)
    return comp


def _pool_connection(rng: random.Random) -> dict:
    ends = IDS if rng.random() < 0.9 else ODD_TEXT + ODD_VALUES
    conn = {"from": rng.choice(ends), "to": rng.choice(ends)}
    if rng.random() < 0.4:
        conn["port"] = rng.choice(["x", "xs", "n", "items", "a", "b", *ODD_VALUES[:6]])
    return conn


_rng = random.Random(15)
COMPONENT_POOL = [_pool_component(_rng) for _ in range(4000)]
CONNECTION_POOL = [_pool_connection(_rng) for _ in range(1000)]
_pooled = st.sampled_from(COMPONENT_POOL)
components = st.lists(st.one_of(_pooled, _pooled, _pooled, _pooled, component()), max_size=4)
connections = st.lists(st.sampled_from(CONNECTION_POOL) | connection, max_size=5)


@st.composite
def specs(draw: st.DrawFn) -> object:
    """A spec dict: a few components, connections among them (or not), any top field odd."""
    shape = draw(st.integers(0, 9))   # now and then, a spec that is not even the right shape
    if shape == 0:
        return draw(values)
    if shape == 1:
        return {"components": draw(values)}
    spec: dict = {"components": draw(components), "connections": draw(connections)}
    spec.update(TOP_FIELDS.draw(draw))
    return spec


_edges = st.lists(st.integers(0, 14 * 14 - 1), max_size=36)    # an edge i -> j as one choice: 14 * i + j
_functions = st.integers(0, 2**14 - 1)                          # bit i: component i names a function
_shuffle = st.integers(0, 2**32)


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict, list[tuple[str, str]]]:
    """A valid DAG spec (edges only from lower to higher index: acyclic) and its edges."""
    n = draw(st.integers(min_value=1, max_value=14))
    ids = [f"n{i}" for i in range(n)]
    pairs = (divmod(code, 14) for code in draw(_edges))
    edges = sorted({(ids[min(i, j)], ids[max(i, j)]) for i, j in pairs if i != j and max(i, j) < n})
    functions = draw(_functions)
    comps = [{"id": cid, "function": "tests.fns.basic:gather"} if functions >> i & 1 else {"id": cid}
             for i, cid in enumerate(ids)]
    random.Random(draw(_shuffle)).shuffle(comps)   # the listed order says nothing about dependencies
    spec = {"name": "dag", "components": comps, "connections": [{"from": a, "to": b} for a, b in edges]}
    return spec, edges


# -- text and bytes ------------------------------------------------------------------------------

YAML_BITS = [":", " ", "\n", "  ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b", "<<: ", "!!binary ", "!!set ",
             "!!python/object:os.system ", "!custom ", "!!int ", "!!float ", "!!timestamp ", "'", '"', "|", ">", "#",
             "%YAML 1.1\n", "---\n", "...\n", "? ", "id: x", "components:", "connections:", "{from: a, to: b}",
             "\t", "\x00", "\ufeff", "é", "1e400", "0x" + "f" * 40, "9" * 5000, ".inf", ".nan", "~", "2001-12-14"]


_MUTATIONS = st.integers(0, 4)
_PLACE = st.integers(0, 1000)          # where, in thousandths of the text: no strategy per length
_HOW = st.sampled_from(["insert", "cut", "truncate"])
_BIT = st.sampled_from(YAML_BITS) | st.text(max_size=3)
_CUT = st.integers(1, 8)


def _mutate(draw: st.DrawFn, base: str) -> str:
    for _ in range(draw(_MUTATIONS)):
        at = draw(_PLACE) * len(base) // 1000
        how = draw(_HOW)
        if how == "insert":
            base = base[:at] + draw(_BIT) + base[at:]
        elif how == "cut":
            base = base[:at] + base[at + draw(_CUT):]
        else:
            base = base[:at]
    return base


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for n in range(1, levels + 1):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]")
    return "\n".join(lines) + f"\ncomponents: [{{id: x, config: {{v: *l{levels}}}}}]\n"


def _merge_bomb(levels: int, width: int) -> str:
    lines = ["m0: &m0 {x: 1}"]
    for n in range(1, levels + 1):
        lines.append(f"m{n}: &m{n} {{<<: [" + ", ".join([f"*m{n - 1}"] * width) + "]}")
    return "\n".join(lines) + f"\ncomponents: [{{id: x, config: *m{levels}}}]\n"


def _deep(depth: int, flow: str) -> str:
    open_, close = {"list": ("[", "]"), "map": ("{a: ", "}")}[flow]
    return "components: [{id: x, config: {v: " + open_ * depth + "1" + close * depth + "}}]\n"


SPECS = specs()
_YAML_KINDS = st.sampled_from(["dump", "dump", "dump", "bits", "bomb", "merge", "deep", "recursive", "anchors"])
_BITS = st.lists(st.sampled_from(YAML_BITS) | st.text(max_size=4), max_size=30)
_FLOW = st.sampled_from(["list", "map"])
_RECURSIVE = st.sampled_from(["a: &a [*a]\ncomponents: [{id: x}]\n", "a: &a {b: *a}\ncomponents: [{id: x}]\n",
                              "components: &c [{id: x, config: {c: *c}}]\n", "&r {components: [*r]}\n",
                              "components: [{id: x, config: *undefined}]\n"])


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    kind = draw(_YAML_KINDS)
    if kind == "dump":
        return _mutate(draw, yaml.safe_dump(draw(SPECS), allow_unicode=draw(st.booleans())))
    if kind == "bits":
        return "".join(draw(_BITS))
    if kind == "bomb":
        return _alias_bomb(draw(st.integers(1, 9)), draw(st.integers(1, 12)))
    if kind == "merge":
        return _merge_bomb(draw(st.integers(1, 7)), draw(st.integers(1, 12)))
    if kind == "deep":
        return _mutate(draw, _deep(draw(st.integers(1, 3000)), draw(_FLOW)))
    if kind == "recursive":
        return draw(_RECURSIVE)
    anchor = yaml.safe_dump(draw(values), default_flow_style=True).strip().replace("\n...", "")
    return _mutate(draw, f"shared: &s {anchor}\ncomponents:\n  - {{id: a, config: {{v: *s}}}}\n"
                         f"  - {{id: b, config: {{<<: *s}}}}\n")


_JSON_KINDS = st.sampled_from(["dump", "dump", "deep", "bits"])
_JSON_BITS = st.lists(st.sampled_from(['{', '}', '[', ']', ',', ':', '"a"', '1', "1" + "0" * 5000, 'NaN', '-Infinity',
                                       'null', '"\\ud800"', '"components"', ' ']), max_size=40)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    kind = draw(_JSON_KINDS)
    if kind == "dump":
        return _mutate(draw, json.dumps(draw(SPECS), ensure_ascii=draw(st.booleans()), default=str))
    if kind == "deep":
        depth = draw(st.integers(1, 30_000))
        return '{"components": [{"id": "x", "config": {"v": ' + "[" * depth + "]" * depth + "}}]}"
    return "".join(draw(_JSON_BITS))


YAML_TEXTS = yaml_texts()
_BYTE_KINDS = st.sampled_from(["utf8", "splice", "latin1", "utf16", "noise", "bom"])
_JUNK = st.binary(min_size=1, max_size=6)
_NOISE = st.binary(max_size=300)


@st.composite
def spec_bytes(draw: st.DrawFn) -> bytes:
    """Bytes of a spec file: UTF-8 mixed with bytes that are not, other encodings, noise."""
    text = draw(YAML_TEXTS)
    kind = draw(_BYTE_KINDS)
    if kind == "utf8":
        return text.encode("utf-8", "surrogatepass")
    if kind == "splice":
        raw = text.encode("utf-8", "surrogatepass")
        at = draw(_PLACE) * len(raw) // 1000
        return raw[:at] + draw(_JUNK) + raw[at:]
    if kind == "latin1":
        return text.encode("latin-1", "replace")
    if kind == "utf16":
        return text.encode("utf-16", "surrogatepass")
    if kind == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    return draw(_NOISE)
