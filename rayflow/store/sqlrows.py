"""SQLite rows: the mapping between records and the rows of SqliteStore's tables, and
the statements it runs.

Owns the codec (dict/list fields as JSON text with sorted keys, bools as 0/1, every text
cleaned of what UTF-8 cannot encode by ``rayflow.store.text``) and the SQL text over the
schema that ``rayflow.store.sqlite`` migrates. Must not open a connection
and must not import anything beyond the standard library.
"""

from __future__ import annotations

import json
import operator
import types
import typing
from collections.abc import Sequence
from dataclasses import fields as dc_fields
from typing import Any

from rayflow.store.port import (
    ComponentRecord,
    EventRecord,
    RunRecord,
    ServerRecord,
    TokenRecord,
    WorkflowRecord,
)
from rayflow.store.text import json_needs_cleaning, storable, storable_text, text_or_none

# The database's clock, UNIX seconds: every lease time is on it (within one statement,
# SQLite's 'now' is one value)
DB_NOW = "((julianday('now') - 2440587.5) * 86400.0)"

_JSON_MEMO: dict[int, tuple[Any, str]] = {}
_JSON_MEMO_MAX = 20_000   # holds each value alive: bounded
_SORTED = json.JSONEncoder(sort_keys=True)   # json.dumps(..., sort_keys=True) builds one per call: half its cost


def _json_text(value: Any) -> str:
    """JSON of a value that is never mutated once recorded (a component's resources and
    upstream list, shared by every update of that component): encoded once, by identity."""
    if not value:
        return "[]" if isinstance(value, list) else json.dumps(value)
    hit = _JSON_MEMO.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    text = _json_any(value)
    if len(_JSON_MEMO) >= _JSON_MEMO_MAX:
        _JSON_MEMO.clear()
    _JSON_MEMO[id(value)] = (value, text)
    return text


def _json_any(value: Any) -> str:
    """JSON of a value, sorted keys; an empty dict (most rows' outcome) without encoding;
    a surrogate in a string written as its backslash escape (the text then reads back as
    UTF-8 can encode it). A flat dict of plain scalars (a component's features: the same
    few keys and values for every member of a fan or a chain) is encoded once per content."""
    if type(value) is dict:
        if not value:
            return "{}"
        values = tuple(value.values())
        if _SCALARS.issuperset(map(type, values)):   # the types are part of the key: 1 and True differ
            key = (tuple(value), values, tuple(map(type, values)))
            text = _FLAT_MEMO.get(key)
            if text is None:
                if len(_FLAT_MEMO) >= _JSON_MEMO_MAX:
                    _FLAT_MEMO.clear()
                text = _FLAT_MEMO[key] = _encoded(value)
            return text
    return _encoded(value)


_SCALARS = frozenset({str, int, bool, type(None)})   # no float: 0.0 and -0.0 are equal keys
_FLAT_MEMO: dict[tuple, str] = {}


def _encoded(value: Any) -> str:
    text = _SORTED.encode(value)
    return _SORTED.encode(storable(value)) if json_needs_cleaning(text) else text


def _is_text(hint: Any) -> bool:
    """Whether a field annotated ``hint`` is ``str`` or ``str | None``."""
    return hint is str or (typing.get_origin(hint) in (typing.Union, types.UnionType) and str in typing.get_args(hint))


def _as_int(value: Any) -> int:
    return int(bool(value))


def _as_is(value: Any) -> Any:
    return value


class Codec:
    """Maps one record dataclass to the columns of its table and back."""

    def __init__(self, cls: type, table: str, json_fields: set[str], bool_fields: set[str],
                 stable_fields: frozenset[str] = frozenset()) -> None:
        self.cls = cls
        self.stable_fields = stable_fields
        self.table = table
        self.columns = [f.name for f in dc_fields(cls)]
        self.json_fields = json_fields
        self.bool_fields = bool_fields
        hints = typing.get_type_hints(cls)
        self.text_fields = {name for name in self.columns if _is_text(hints[name])}
        self.select = f"SELECT {', '.join(self.columns)} FROM {table}"
        self._row = operator.attrgetter(*self.columns)
        self._fixes = [(i, self._encoder(name)) for i, name in enumerate(self.columns)
                       if name in json_fields or name in bool_fields]
        self._text_at = [i for i, name in enumerate(self.columns) if name in self.text_fields]

    def encode_value(self, name: str, value: Any) -> Any:
        return self._encoder(name)(value)

    def _encoder(self, name: str) -> Any:
        """How a column's value is stored: JSON text, 0/1, text UTF-8 can encode, or as it is."""
        if name in self.json_fields:
            return _json_text if name in self.stable_fields else _json_any
        if name in self.bool_fields:
            return _as_int
        if name in self.text_fields:
            return text_or_none
        return _as_is

    def encode(self, rec: Any) -> list[Any]:
        row = list(self._row(rec))
        for i, encode in self._fixes:   # a row per component: the column encoders are looked up once
            row[i] = encode(row[i])
        for i in self._text_at:   # inline, not text_or_none: most values are ASCII, a check each
            value = row[i]
            if value is not None and not value.isascii():
                row[i] = storable_text(value)
        return row

    def decode(self, row: Sequence[Any]) -> Any:
        values: dict[str, Any] = {}
        for name, value in zip(self.columns, row, strict=True):
            if name in self.json_fields:
                value = json.loads(value) if value is not None else None
            elif name in self.bool_fields:
                value = bool(value)
            values[name] = value
        return self.cls(**values)


RUNS = Codec(RunRecord, "runs", {"inputs", "summary", "spec"}, {"cancel_requested"})
COMPONENTS = Codec(ComponentRecord, "components", {"resources", "upstream", "features", "outcome"}, {"cached"},
                    stable_fields=frozenset({"resources", "upstream"}))
EVENTS = Codec(EventRecord, "events", {"data"}, set())
TOKENS = Codec(TokenRecord, "tokens", set(), set())
WORKFLOWS = Codec(WorkflowRecord, "workflows", {"spec"}, set())
SERVERS = Codec(ServerRecord, "servers", {"info"}, set())


def insert_sql(codec: Codec, verb: str = "INSERT") -> str:
    cols = ", ".join(codec.columns)
    marks = ", ".join("?" for _ in codec.columns)
    return f"{verb} INTO {codec.table} ({cols}) VALUES ({marks})"


def upsert_sql(codec: Codec, keys: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in codec.columns if c not in keys)
    return f"{insert_sql(codec)} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"


UPSERT_COMPONENT = upsert_sql(COMPONENTS, ("run_id", "component_id"))
INSERT_EVENT = insert_sql(EVENTS, "INSERT OR IGNORE")
INSERT_NEW_RUN = f"{insert_sql(RUNS)} ON CONFLICT (run_id) DO NOTHING"
INSERT_TOKEN = insert_sql(TOKENS)

_TAKE = ("UPDATE runs SET owner = ?, heartbeat_at = {now}, status = 'RUNNING', lease_epoch = lease_epoch + 1 "
         "WHERE {where} RETURNING run_id, lease_epoch, created_at").replace("{now}", DB_NOW)
CLAIM_RUN = _TAKE.format(where=(
    f"run_id = ? AND status != 'SUCCEEDED' AND (? OR heartbeat_at IS NULL OR heartbeat_at < {DB_NOW} - ?)"))
# one statement in a write transaction (SQLite has one writer at a time): no two claimers
# see the same run free; runs_claimable serves the subquery
CLAIM_NEXT = _TAKE.format(where=(
    "run_id IN (SELECT run_id FROM runs WHERE status IN ('PENDING', 'RUNNING') "
    "AND (spec != '{}' OR (target != '' AND substr(target, 1, 9) != '__main__:')) "
    f"AND (heartbeat_at IS NULL OR heartbeat_at < {DB_NOW} - ?) "
    "ORDER BY created_at, run_id LIMIT ?)"))
RENEW = (f"UPDATE runs SET heartbeat_at = {DB_NOW} WHERE run_id = ? AND owner = ? AND lease_epoch = ? "
         "AND heartbeat_at IS NOT NULL")   # a renewal never revives a lease the run's end released
RELEASE = ("UPDATE runs SET owner = '', heartbeat_at = NULL, status = COALESCE(?, status) "
            "WHERE run_id = ? AND owner = ? AND lease_epoch = ?")
PUT_WORKFLOW = (f"{insert_sql(WORKFLOWS)} ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, "
                 "target = excluded.target, updated_at = excluded.updated_at")
BEAT_SERVER = upsert_sql(SERVERS, ("server_id",))
