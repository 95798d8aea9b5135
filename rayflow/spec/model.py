"""Pydantic models of the declarative spec, and loading it from YAML, JSON or a dict.

Owns the shape of a spec, its known component types, the limits on its fields
(``max_retries``, ``concurrency``, ``num_outputs``: settings in ``rayflow.core.config``),
and turning pydantic's errors into one-line SpecErrors that name the component and the
field. Reading the document safely (size, encoding, depth, aliases) is
``rayflow.spec.loading``'s; resolving functions and inputs is ``rayflow.spec.convert``'s.
Must not import ray.
"""

from __future__ import annotations

import difflib
import reprlib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from rayflow.core import config
from rayflow.core.errors import SpecError
from rayflow.spec import loading
from rayflow.spec.connectors import CONNECTOR_TYPES, HttpFields, SqlFields, lift

RUNNABLE_TYPES = {"python": "task", "actor": "actor", "batch": "batch"}   # spec type -> option kind
KNOWN_TYPES = (*RUNNABLE_TYPES, *CONNECTOR_TYPES)

FIELD_LIMITS = {   # component field -> the setting that caps it
    "max_retries": config.MAX_RETRIES_VAR,
    "concurrency": config.MAX_CONCURRENCY_VAR,
    "num_outputs": config.MAX_NUM_OUTPUTS_VAR,
}


def _printable(value: str) -> str:
    if not value.isprintable():
        raise PydanticCustomError("unprintable", "expected printable text (no newlines or control characters)")
    return value


class ResourcesSpec(BaseModel):
    """A component's request: ``num_cpus``, ``num_gpus``, ``memory`` ("512MiB") and ``custom``."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float | str | None = None
    num_gpus: float | str | None = None
    memory: int | float | str | None = None
    custom: dict[str, float | str] = Field(default_factory=dict)


class ComponentSpec(BaseModel):
    """One component. ``type``: python (default), actor, batch, sql or http (a connector:
    its fields, written at the component's top level, land in ``sql`` or ``http``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    type: str = "python"
    function: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    max_retries: int = Field(default=0, ge=0)
    retry_exceptions: bool | list[str] = False
    timeout_s: float | None = Field(default=None, gt=0)
    cache: bool | dict[str, Any] | None = None
    checkpoint: bool = True                              # keep the output for resume
    sizing: Literal["auto", "static"] | None = None       # auto: resources from the resource model
    placement: str | None = None                          # ray | resource_aware | least_loaded | ...
    concurrency: int = Field(default=1, ge=1)
    batch_size: int | None = Field(default=None, ge=1)   # type batch: rows per batch (at most)
    num_outputs: int | None = Field(default=None, ge=1)  # returns this many values (a tuple downstream)
    buffer_size: int | None = Field(default=None, ge=1)  # type batch in a stream: batches in flight
    init: dict[str, Any] = Field(default_factory=dict)
    fuse: bool | None = None                             # run fused with neighbours (docs/fusion.md)
    version: str | None = None
    description: str | None = None
    sql: SqlFields | None = None
    http: HttpFields | None = None

    _printable_id = field_validator("id")(_printable)

    @model_validator(mode="before")
    @classmethod
    def _connector_fields(cls, data: Any) -> Any:
        return lift(data, set(cls.model_fields) - {"sql", "http"})

    @model_validator(mode="after")
    def _connector_block(self) -> ComponentSpec:
        for kind in CONNECTOR_TYPES:
            if getattr(self, kind) is not None and self.type != kind:
                raise PydanticCustomError("connector_field", "a field of type {kind} components, and this "
                                          "component is of type {type}", {"kind": kind, "type": self.type})
        if self.type in CONNECTOR_TYPES:
            if getattr(self, self.type) is None:
                raise PydanticCustomError("connector_missing", "a {kind} component needs its url (and a query "
                                          "or table; docs/connectors.md)", {"kind": self.type})
            if self.function is not None:
                raise PydanticCustomError("connector_function", "a {kind} component runs no function; "
                                          "drop 'function'", {"kind": self.type})
        return self

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value in KNOWN_TYPES:
            return value
        close = difflib.get_close_matches(value.lower(), KNOWN_TYPES, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PydanticCustomError("unknown_type", "expected one of {valid}{hint}",
                                  {"valid": ", ".join(KNOWN_TYPES), "hint": hint})

    @field_validator(*FIELD_LIMITS)
    @classmethod
    def _within_limit(cls, value: int | None, info: ValidationInfo) -> int | None:
        var = FIELD_LIMITS[info.field_name or ""]
        limit = config.spec_limit(var)
        if value is not None and value > limit:
            raise PydanticCustomError("over_limit", "at most {limit} ({var})", {"limit": limit, "var": var})
        return value


class ConnectionSpec(BaseModel):
    """Data flows ``from`` -> ``to``; ``port`` names the keyword argument of ``to``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    port: str | None = None

    _printable_ends = field_validator("source", "target")(_printable)


class GroupSpec(BaseModel):
    """A fan-out/fan-in group: ``members`` (component ids) with their own ``max_concurrency``
    and ``failure_strategy`` (unset: the workflow's); see docs/patterns.md."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    members: list[str] = Field(default_factory=list)
    max_concurrency: int | None = Field(default=None, ge=1)
    failure_strategy: Literal["fail_fast", "continue_on_error"] | None = None


class WorkflowSpec(BaseModel):
    """A whole workflow as data. Extra top-level keys are kept and ignored."""

    model_config = ConfigDict(extra="allow")

    name: str = "workflow"
    description: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    failure_strategy: Literal["fail_fast", "continue_on_error"] = "fail_fast"
    max_concurrency: int | None = Field(default=None, ge=1)
    sizing: Literal["auto", "static"] | None = None   # for every component that does not set its own
    placement: str | None = None                      # likewise
    components: list[ComponentSpec]
    connections: list[ConnectionSpec] = Field(default_factory=list)
    outputs: str | list[str] | None = None
    groups: list[GroupSpec] = Field(default_factory=list)

    @field_validator("components")
    @classmethod
    def _not_empty(cls, value: list[ComponentSpec]) -> list[ComponentSpec]:
        if not value:
            raise ValueError("a workflow needs at least one component")
        return value

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> WorkflowSpec:  # type: ignore[override]
        """Validate a dict; raise a one-line SpecError naming the component and field
        (or the limit of docs/spec.md it is over)."""
        return cls._validated(obj, None, *args, **kwargs)

    @classmethod
    def _validated(cls, obj: Any, source: str | None, *args: Any, **kwargs: Any) -> WorkflowSpec:
        for var in FIELD_LIMITS.values():
            config.spec_limit(var)          # a bad setting is a ConfigError, not a field's error
        if isinstance(obj, dict):
            loading.check_components(obj)   # before pydantic validates every one of them
            loading.measure(obj, name=loading.who(source))
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc, obj)) from None

    @classmethod
    def from_file(cls, path: str | Path) -> WorkflowSpec:
        """Load a ``.yaml``/``.yml`` or ``.json`` spec file (UTF-8, at most
        $RAYFLOW_MAX_SPEC_BYTES)."""
        p = Path(path)
        text = loading.read_file(p)
        return cls.from_text(text, source=str(p), fmt="json" if p.suffix == ".json" else "yaml")

    @classmethod
    def from_text(cls, text: str, *, source: str = "<string>", fmt: str = "yaml") -> WorkflowSpec:
        data = loading.parse(text, source=source, fmt=fmt)
        if not isinstance(data, dict):
            raise SpecError(f"spec {source!r}: expected a mapping at the top level, got {type(data).__name__}")
        spec = cls._validated(data, source)
        if spec.name == "workflow" and "name" not in data:
            spec = spec.model_copy(update={"name": Path(source).stem if source != "<string>" else "workflow"})
        return spec


def format_validation_error(exc: ValidationError, data: Any) -> str:
    """The first error of ``exc`` as one line: which component, which field, what was wrong."""
    err = exc.errors()[0]
    loc = list(err.get("loc", ()))
    where = _describe_location(loc, data)
    got = err.get("input")
    got_text = "" if err.get("type") == "missing" else f", got {_short(got)}"
    more = f" (+{exc.error_count() - 1} more errors)" if exc.error_count() > 1 else ""
    message = " ".join(str(err.get("msg", "invalid")).split())
    if err.get("type") == "extra_forbidden":
        message = "unknown field"
        got_text = ""
    return f"{where}: {message}{got_text}{more}"


_TYPE_TAGS = {"bool", "int", "float", "str", "dict", "list", "none", "literal"}


def _field_path(parts: list[Any]) -> str:
    """Field names only: drop pydantic's union tags such as 'float' or 'list[str]'."""
    names = [str(p) for p in parts
             if not (isinstance(p, str) and (p in _TYPE_TAGS or "[" in p or p.startswith("function-")))]
    return ".".join(names)


def _describe_location(loc: list[Any], data: Any) -> str:
    if len(loc) >= 2 and loc[0] in ("components", "connections") and isinstance(loc[1], int):
        section, index, rest = loc[0], loc[1], loc[2:]
        if section == "components" and len(rest) > 1 and rest[0] in CONNECTOR_TYPES:
            rest = rest[1:]   # a connector's field, written at the component's top level
        item = _item(data, section, index)
        field = _field_path(rest) or "(whole entry)"
        if section == "components":
            cid = item.get("id") if isinstance(item, dict) else None
            named = isinstance(cid, str) and 0 < len(cid) <= 60
            who = f"component {cid!r}" if named else f"component #{index + 1}"
        else:
            src = item.get("from") if isinstance(item, dict) else None
            dst = item.get("to") if isinstance(item, dict) else None
            who = f"connection #{index + 1} ({_name(src)} -> {_name(dst)})"
        return f"{who} field {field!r}"
    return f"workflow field {_field_path(loc) or '(top level)'!r}"


def _item(data: Any, section: str, index: int) -> Any:
    try:
        return data[section][index]
    except (KeyError, IndexError, TypeError):
        return None


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def _short(value: Any) -> str:
    try:
        text = _REPR.repr(value) if isinstance(value, (dict, list, tuple, set)) else repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is named by its type
        text = f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _name(value: Any) -> str:
    """An id as it reads in a message: itself when short and printable, else its repr."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 and text.isprintable() else _short(text)
