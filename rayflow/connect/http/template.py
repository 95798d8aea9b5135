"""URL templates of HTTP components, and the requests a call's items make.

Owns the reading of a URL template (``{name}`` placeholders in the path and query, never
in the scheme, host or port, so that an item's value can never choose where a request
goes), filling it from an item (each value percent-quoted whole, so that ``/``, ``?``,
``#`` and a ``..`` stay inside one path segment), reading a call's items (a list, a
``pyarrow.Table`` or ``RecordBatch``) and cutting them into requests (``Unit``: one per
item, one per batch of ``batch_size``, or one for the whole call). No I/O, no ray.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pyarrow as pa

from rayflow.connect.http.errors import HttpConfigError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class UrlTemplate:
    """``https://api.example.com/items/{id}?v={version}``: placeholders named by item keys."""

    def __init__(self, url: Any) -> None:
        if not isinstance(url, str) or not url:
            raise HttpConfigError(f"url: expected a URL string, not {type(url).__name__}")
        self.url = url
        stripped = _FIELD.sub("", url)
        if "{" in stripped or "}" in stripped:
            raise HttpConfigError("url: '{' and '}' may only surround a placeholder name "
                                  "({id}: letters, digits, '_')")
        head = urlsplit(url)
        if "{" in head.scheme or "{" in head.netloc:
            raise HttpConfigError("url: the scheme, host and port may hold no {placeholders} "
                                  "(an item's value may not choose the host)")
        self.names: tuple[str, ...] = tuple(dict.fromkeys(_FIELD.findall(url)))

    def fill(self, item: Any, index: int | None = None) -> str:
        """The URL for ``item``; each placeholder's value percent-quoted as one segment."""
        if not self.names:
            return self.url
        where = "the call" if index is None else f"item {index}"
        if not isinstance(item, dict):
            raise HttpConfigError(f"url placeholders {{{self.names[0]}}}: {where} is a "
                                  f"{type(item).__name__}, not a mapping with key {self.names[0]!r}")

        def value(m: re.Match) -> str:
            name = m.group(1)
            v = item.get(name)
            if v is None:
                keys = ", ".join(map(str, list(item)[:10]))
                raise HttpConfigError(f"url placeholder {{{name}}}: {where} has no value for "
                                      f"{name!r} (its keys: {keys or 'none'})")
            return quote_value(v)

        return _FIELD.sub(value, self.url)


def quote_value(v: Any) -> str:
    """``v`` as one percent-quoted path segment or query value (``.`` and ``..`` too)."""
    text = str(v)
    if text and set(text) <= {"."}:        # "." and ".." would move up the path
        return text.replace(".", "%2E")
    return quote(text, safe="")


def rows_of(items: Any) -> list[Any] | None:
    """A call's items as a list (a table's rows as dicts); None: no items."""
    if items is None:
        return None
    if isinstance(items, (pa.Table, pa.RecordBatch)):
        return items.to_pylist()
    if isinstance(items, (list, tuple)):
        return list(items)
    raise HttpConfigError(f"items: expected a list, a pyarrow.Table or a RecordBatch, "
                          f"not {type(items).__name__}")


@dataclass(frozen=True)
class Unit:
    """One request of a call: items ``start .. start + count`` (count 0: no items)."""

    start: int
    count: int
    url: str
    json: Any = None
    has_json: bool = False
    batched: bool = False


def units(rows: list[Any] | None, template: UrlTemplate, method: str, *, body: Any,
          batch_size: int | None, batch_key: str | None) -> list[Unit]:
    """The requests of a call (module docstring)."""
    if batch_key is not None and batch_size is None:
        raise HttpConfigError("batch_key: only with batch_size (the key of each batch's list)")
    if rows is None:
        if template.names:
            raise HttpConfigError(f"url placeholder {{{template.names[0]}}}: filled from each "
                                  "item, and the call has no items")
        return [Unit(0, 0, template.url, body, body is not None)]
    if batch_size is None:
        if body is not None:
            raise HttpConfigError("body: with items, each item is the body (body is for a call "
                                  "without items, or the other fields of a batch with batch_key)")
        send = method in BODY_METHODS
        return [Unit(i, 1, template.fill(item, i), item if send else None, send)
                for i, item in enumerate(rows)]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise HttpConfigError(f"batch_size: expected an integer >= 1, not {batch_size!r}")
    if method not in BODY_METHODS:
        raise HttpConfigError(f"batch_size: a batch is a JSON body, and {method} sends none "
                              "(use POST, PUT or PATCH)")
    if template.names:
        raise HttpConfigError(f"url placeholder {{{template.names[0]}}}: filled from each item, "
                              "so not with batch_size (one request carries many items)")
    if body is not None and (batch_key is None or not isinstance(body, dict)):
        raise HttpConfigError("body: with batch_size, only a mapping of the batch body's other "
                              "fields, with batch_key naming the list's field")
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        payload: Any = chunk if batch_key is None else {**(body or {}), batch_key: chunk}
        out.append(Unit(start, len(chunk), template.url, payload, True, batched=True))
    return out
