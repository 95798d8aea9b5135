"""What a database can store of a Python value: text cleaned at encode time, for every store.

Owns the one rule both durable stores apply to every TEXT and JSON value they write, so that
one odd value never fails a whole batch (which the writer would otherwise retry, or have to
drop): a lone surrogate (``os.fsdecode(b"\\xff")`` gives one; UTF-8 cannot encode it, so
neither SQLite nor PostgreSQL takes it) is written as its backslash escape (``\\udcff``, six
characters); a NUL character, which PostgreSQL's TEXT and JSONB cannot hold, as U+FFFD where
the store asks for it; a non-finite float in JSON, which JSONB cannot hold, as null where the
store asks for it. Must not import a database driver; pure functions of plain values.
"""

from __future__ import annotations

import math
from typing import Any

NUL, REPLACEMENT = "\x00", "\ufffd"
# how json.dumps (ensure_ascii, the default) writes any surrogate: half of a pair, or a lone
# one; a JSON text without it holds none (it may still be a pair, or a backslash before "ud":
# cleaning those changes nothing)
SURROGATE_IN_JSON = "\\ud"
NUL_IN_JSON = "\\u0000"


def storable_text(value: str, *, nul: bool = False) -> str:
    """``value`` with lone surrogates as backslash escapes and, with ``nul``, NUL as U+FFFD."""
    if not value.isascii():   # ASCII (the common case) has no surrogate: O(1) in CPython
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if nul and NUL in value:
        value = value.replace(NUL, REPLACEMENT)
    return value


def text_or_none(value: Any) -> Any:
    """A TEXT column's value as a store without NUL trouble (SQLite) writes it."""
    return value if value.__class__ is not str or value.isascii() else storable_text(value)


def json_needs_cleaning(text: str, *, nul: bool = False) -> bool:
    """Whether JSON text (ensure_ascii) may hold a surrogate or, with ``nul``, a NUL."""
    return SURROGATE_IN_JSON in text or (nul and NUL_IN_JSON in text)


def storable(value: Any, *, nul: bool = False, finite: bool = False) -> Any:
    """A JSON value with every string (keys too) ``storable_text``, at any depth; with
    ``finite``, NaN and infinities as None."""
    if isinstance(value, str):
        return storable_text(value, nul=nul)
    if isinstance(value, float):
        return value if not finite or math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable(k, nul=nul, finite=finite): storable(v, nul=nul, finite=finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v, nul=nul, finite=finite) for v in value]
    return value
