"""The bytes every tier stores for one cached result: a small header, then a codec blob.

Owns the envelope ``MAGIC + (created, ttl_s, cost_s) + codec blob``: when the result was
computed (UNIX seconds), the component's ``ttl_s`` (-1 for none) and what it cost to
compute, so that a hit found in a lower tier is promoted with a bounded TTL and its
recompute cost, whichever tier it came from. The payload is ``rayflow.data.codec``'s
self-describing blob; reading it back goes through ``codec.unblob``, which refuses a
pickle whose signature does not verify. Must not unpickle anything itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from rayflow.data.codec import UntrustedData, encode, unblob

MAGIC = b"RFE1"
_META = struct.Struct(">ddd")
_HEAD = len(MAGIC) + _META.size


@dataclass(frozen=True)
class EntryMeta:
    created: float
    ttl_s: float | None
    cost_s: float


def pack(value: Any, meta: EntryMeta) -> bytes:
    """The stored form of ``value`` (raises what ``codec.encode`` raises: an unpicklable
    value fails here)."""
    ttl = -1.0 if meta.ttl_s is None else meta.ttl_s
    return MAGIC + _META.pack(meta.created, ttl, meta.cost_s) + encode(value).blob()


def unpack(data: bytes) -> tuple[EntryMeta, Any]:
    """The header and the decoded value; UntrustedData for a malformed header or a
    signature that does not verify (the payload is then never loaded)."""
    if len(data) < _HEAD or data[:len(MAGIC)] != MAGIC:
        raise UntrustedData("cache entry has no rayflow header")
    created, ttl, cost = _META.unpack_from(data, len(MAGIC))
    meta = EntryMeta(created, None if ttl < 0 else ttl, cost)
    return meta, unblob(memoryview(data)[_HEAD:])
