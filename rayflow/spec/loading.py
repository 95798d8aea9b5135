"""Reading a spec someone else wrote: bytes, encoding, YAML or JSON, within limits.

Owns the limits a spec document must keep before pydantic sees it (docs/spec.md): its
size in bytes, UTF-8, how deep its mappings and lists nest, how many values it holds
(each YAML alias counted as a copy of its anchor, so a "billion laughs" file is refused
before anything expands it), and that it does not contain itself. Every refusal is a
one-line SpecError naming the spec, where in it, the limit and the setting. The limits
are read from ``rayflow.core.config`` on each call. The walk is iterative (no recursion,
however deep the input). Must not import ray.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from rayflow.core import config
from rayflow.core.errors import SpecError

Children = Callable[[Any], "Iterator[tuple[Any, Any]] | None"]


def who(source: str | None) -> str:
    """How messages name the spec read from ``source`` (a path, "<string>"; None: a dict)."""
    return f"spec {source!r}" if source else "the spec"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """``exc``'s message as one short line (its type's name when it has none, or when
    reading it fails)."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        text = ""
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Unbuildable(SpecError):
    """A YAML scalar that PyYAML parses but cannot build (``!!int ""``, a 5000-digit int)."""


# -- bytes and text -----------------------------------------------------------------------

def read_file(path: Path) -> str:
    """The text of the spec file ``path``: at most $RAYFLOW_MAX_SPEC_BYTES, UTF-8."""
    limit = config.max_spec_bytes()
    try:
        with path.open("rb") as f:
            raw = f.read(limit + 1)
            size = _size(f)
    except OSError as exc:
        raise SpecError(f"cannot read spec file {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        actual = f"{size} bytes" if size > limit else f"over {limit} bytes"
        raise SpecError(f"spec file {str(path)!r} has {actual}; the most rayflow reads is {limit} "
                        f"({config.MAX_SPEC_BYTES_VAR})")
    return decode(raw, str(path))


def _size(f: Any) -> int:
    try:
        return os.fstat(f.fileno()).st_size
    except OSError:
        return 0


def decode(raw: bytes, source: str) -> str:
    """``raw`` as UTF-8 (a leading byte-order mark dropped); else a SpecError naming the
    first byte that is not UTF-8 and its offset."""
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        raise SpecError(f"spec file {source!r} is not UTF-8: byte 0x{raw[offset]:02x} at offset {offset} "
                        f"({exc.reason}); save it as UTF-8") from None


def check_text_size(text: str, source: str | None) -> None:
    """SpecError when ``text`` is over $RAYFLOW_MAX_SPEC_BYTES once encoded as UTF-8."""
    limit = config.max_spec_bytes()
    if len(text) * 4 <= limit:
        return          # no text of this length can be over the limit
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise SpecError(f"{who(source)} has {size} bytes; the most rayflow reads is {limit} "
                        f"({config.MAX_SPEC_BYTES_VAR})")


# -- parsing ------------------------------------------------------------------------------

class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than the limit while it composes
    (PyYAML composes recursively: without this, deep input ends in RecursionError)."""

    def __init__(self, text: str, *, name: str, max_depth: int) -> None:
        super().__init__(text)
        self.name = name
        self.max_depth = max_depth
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > self.max_depth and self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
                line = self.peek_event().start_mark.line + 1
                raise SpecError(f"{self.name}: line {line} nests deeper than {self.max_depth} levels "
                                f"({config.MAX_SPEC_DEPTH_VAR})")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def parse(text: str, *, source: str, fmt: str) -> Any:
    """``text`` parsed as YAML or JSON, within the depth and size limits."""
    check_text_size(text, source)
    max_depth = config.max_spec_depth()
    try:
        if fmt == "json":
            return json.loads(text)
        return _load_yaml(text, who(source), max_depth)
    except SpecError:
        raise                       # a limit, already named
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"spec {source!r} is not valid {fmt.upper()}: {_reason(exc)}") from None
    except RecursionError:
        raise SpecError(f"{who(source)} nests deeper than {max_depth} levels ({config.MAX_SPEC_DEPTH_VAR})") from None
    except ValueError as exc:   # a number json cannot build (a 5000-digit int)
        raise SpecError(f"spec {source!r} is not valid {fmt.upper()}: {first_line(exc)}") from None


def _reason(exc: Exception) -> str:
    """One line: what was wrong and where (line and column, from 1), as PyYAML or json said."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno} column {exc.colno})"
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:   # PyYAML's own words: the problem, where, and what it was in
        text = f"{problem} at line {mark.line + 1} column {mark.column + 1}"
        context, where = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context:
            text += f" ({context}" + (f" at line {where.line + 1} column {where.column + 1})" if where else ")")
        return " ".join(text.split())[:300]
    text = str(exc)
    head = text.splitlines()[0] if text else type(exc).__name__
    if mark is not None and "line" not in head:
        head = f"{head} (line {mark.line + 1} column {mark.column + 1})"
    return " ".join(head.split())[:200]


def parse_value(text: str, *, name: str) -> Any:
    """A YAML value typed on a command line (``-i key=VALUE``): the text itself when it is
    not YAML; a SpecError starting with ``name`` when it is over a limit (depth, aliases)."""
    try:
        return _load_yaml(text, name, config.max_spec_depth())
    except _Unbuildable:
        return text
    except SpecError:
        raise
    except yaml.YAMLError:
        return text


def _load_yaml(text: str, name: str, max_depth: int) -> Any:
    loader = _SpecLoader(text, name=name, max_depth=max_depth)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # before anything is built: aliases (and `<<` merges) would expand here
        measure(node, _yaml_children, name=name, aliases=True)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's constructors fail on some scalars: IndexError, ValueError, ...
            raise _Unbuildable(f"{name} is not valid YAML: a value cannot be built "
                               f"({type(exc).__name__}: {first_line(exc, 120)})") from None
    finally:
        loader.dispose()


def _yaml_children(node: Any) -> Iterator[tuple[Any, Any]] | None:
    if isinstance(node, yaml.SequenceNode):
        return enumerate(node.value)
    if isinstance(node, yaml.MappingNode):
        return _yaml_pairs(node)
    return None


def _yaml_pairs(node: Any) -> Iterator[tuple[Any, Any]]:
    for key, value in node.value:
        label = key.value if isinstance(key, yaml.ScalarNode) else "?"
        yield label, key
        yield label, value


# -- the shape of a document: depth, values, self-reference -------------------------------

def data_children(value: Any) -> Iterator[tuple[Any, Any]] | None:
    if isinstance(value, dict):
        return iter(value.items())
    if isinstance(value, (list, tuple)):
        return enumerate(value)
    return None


class _Frame:
    __slots__ = ("ident", "children", "key", "nodes", "height")

    def __init__(self, ident: int, children: Iterator[tuple[Any, Any]], key: Any) -> None:
        self.ident, self.children, self.key = ident, children, key
        self.nodes, self.height = 1, 1


ALIAS_RATIO = 10            # YAML aliases may expand a document to ten times its own values,
ALIAS_FLOOR = 100_000       # or to this many when that is more


def measure(root: Any, children: Children = data_children, *, name: str,
            aliases: bool = False) -> tuple[int, int]:
    """(values, depth) of ``root``, each shared part counted every time it appears; a
    SpecError when it nests deeper than $RAYFLOW_MAX_SPEC_DEPTH, holds more than
    $RAYFLOW_MAX_SPEC_NODES values or contains itself. Shared parts are measured once.
    With ``aliases`` (a YAML document's nodes) its aliases may add at most
    ``ALIAS_RATIO`` times the values written out (at least ``ALIAS_FLOOR``)."""
    top_children = children(root)
    if top_children is None:
        return 1, 0
    max_depth, max_nodes = config.max_spec_depth(), config.max_spec_nodes()
    done: dict[int, tuple[int, int]] = {}
    stack = [_Frame(id(root), top_children, None)]
    open_ids = {id(root)}
    shared = False
    copied = 0              # values that shared parts add, beyond their first appearance
    while stack:
        top = stack[-1]
        for key, child in top.children:
            sub = children(child)
            if sub is None:
                top.nodes += 1
                if top.nodes > max_nodes:
                    _too_many(name, max_nodes, shared)
                continue
            ident = id(child)
            if ident in open_ids:
                raise SpecError(f"{name}: {_path(stack, key)} contains itself (an alias inside its own "
                                "anchor, or a value that holds itself)")
            if ident in done:
                shared = True
                nodes, height = done[ident]
                copied += nodes
                if len(stack) + height > max_depth:
                    _too_deep(name, stack, key, max_depth)
                top.nodes += nodes
                top.height = max(top.height, height + 1)
                if top.nodes > max_nodes:
                    _too_many(name, max_nodes, shared)
                continue
            if len(stack) + 1 > max_depth:
                _too_deep(name, stack, key, max_depth)
            stack.append(_Frame(ident, sub, key))
            open_ids.add(ident)
            break
        else:
            stack.pop()
            open_ids.discard(top.ident)
            done[top.ident] = (top.nodes, top.height)
            if stack:
                parent = stack[-1]
                parent.nodes += top.nodes
                parent.height = max(parent.height, top.height + 1)
                if parent.nodes > max_nodes:
                    _too_many(name, max_nodes, shared)
    total, height = done[id(root)]
    written = total - copied
    if aliases and copied > max(ALIAS_FLOOR, ALIAS_RATIO * written):
        raise SpecError(f"{name}: its YAML aliases expand {written} values to {total}; aliases may add "
                        f"at most {ALIAS_RATIO} times the values written out, or {ALIAS_FLOOR}")
    return total, height


def _path(stack: list[_Frame], key: Any) -> str:
    keys = [f.key for f in stack[1:]] + [key]
    text = ""
    for k in keys:
        if isinstance(k, int) and not isinstance(k, bool):
            text += f"[{k}]"
        else:
            name = str(k)
            name = name if len(name) <= 40 and name.isprintable() else repr(name[:40])
            text += f".{name}" if text else name
    text = text or "the top level"
    return text if len(text) <= 160 else "..." + text[-157:]


def _too_deep(name: str, stack: list[_Frame], key: Any, max_depth: int) -> None:
    raise SpecError(f"{name}: {_path(stack, key)} nests deeper than {max_depth} levels "
                    f"({config.MAX_SPEC_DEPTH_VAR})")


def _too_many(name: str, max_nodes: int, shared: bool) -> None:
    how = ", counting a part each time it appears (a YAML alias as a copy of its anchor)" if shared else ""
    raise SpecError(f"{name} holds more than {max_nodes} values{how} ({config.MAX_SPEC_NODES_VAR})")


def check_components(data: dict[str, Any]) -> None:
    """SpecError when ``data`` lists more components than $RAYFLOW_MAX_COMPONENTS."""
    components = data.get("components")
    if isinstance(components, list):
        limit = config.max_components()
        if len(components) > limit:
            raise SpecError(f"workflow field 'components': {len(components)} components, more than the {limit} "
                            f"one spec may hold ({config.MAX_COMPONENTS_VAR})")
