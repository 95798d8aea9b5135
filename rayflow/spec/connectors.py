"""The connector fields of a spec's ``type: sql`` and ``type: http`` components.

A connector's fields sit at the component's top level in a spec (``url``, ``query``,
``params``, ``method``, ...), as docs/connectors.md shows; ``lift`` moves them into the
component's ``sql`` or ``http`` block before pydantic validates it, so each type's fields
are checked by their own model (an unknown one is still an unknown field) and an error
names the field as it was written. Must not import ray.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CONNECTOR_TYPES = ("sql", "http")


class SqlFields(BaseModel):
    """``type: sql``: a read (``query``, ``params``), a statement (``mode: execute``), or a
    write of the component's input into ``table`` (``mode: insert | upsert | copy``)."""

    model_config = ConfigDict(extra="forbid")

    url: str | dict[str, str]                       # a URL without a password, or {$secret: NAME}
    query: str | None = None
    params: list[Any] | dict[str, Any] = Field(default_factory=list)   # bound, never interpolated
    mode: Literal["read", "execute", "insert", "upsert", "copy"] | None = None
    table: str | dict[str, Any] | None = None       # a write's table, or {table} in a query
    tables: list[str] | None = None                 # the allowed tables, where 'table' varies
    key: list[str] | None = None                    # upsert: the conflict columns
    read_only: bool = True                          # reads run in a read-only transaction
    statement_timeout_s: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0, le=100)   # transient failures, with backoff


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_second: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retries: int = Field(default=5, ge=0, le=100)
    base_s: float = Field(default=0.1, ge=0)
    cap_s: float = Field(default=10.0, ge=0)


class BreakerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failures: int = Field(default=5, ge=1)
    reset_s: float = Field(default=30.0, gt=0)


class HttpFields(BaseModel):
    """``type: http``: one request, or one per item of the input (``batch_size`` items per
    request where the endpoint takes a list)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: str | dict[str, str]                               # a template, or {$secret: NAME}
    headers: dict[str, Any] = Field(default_factory=dict)   # values may be {$secret: NAME}
    params: dict[str, Any] = Field(default_factory=dict)    # the query string
    body: Any = None
    batch_key: str | None = None
    result_key: str | None = None
    response: Literal["json", "text", "bytes", "arrow"] = "json"
    rate_limit: RateLimit | None = None
    retry: RetryPolicy | None = None
    breaker: BreakerPolicy | None = None
    request_timeout_s: float = Field(default=30.0, gt=0)
    in_flight: int | None = Field(default=None, ge=1, le=256)   # requests at once
    http2: bool = False
    retry_unsafe: bool = False        # retry POST/PATCH on any transient failure too
    stream: bool = False              # a batch stage over an Arrow input's rows

    def call_fields(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"in_flight", "stream"})
        for name in ("rate_limit", "retry", "breaker"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


MODELS: dict[str, type[BaseModel]] = {"sql": SqlFields, "http": HttpFields}


def lift(data: Any, own_fields: set[str]) -> Any:
    """A component's dict with its connector fields moved into its ``sql``/``http`` block."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str) or data["type"] not in MODELS:
        return data
    kind = data["type"]
    fields = MODELS[kind].model_fields
    moved = {k: v for k, v in data.items() if k in fields and k not in own_fields}
    if not moved:
        return data
    block = dict(data.get(kind) or {}) if isinstance(data.get(kind), dict) else {}
    block.update(moved)
    return {**{k: v for k, v in data.items() if k not in moved}, kind: block}
