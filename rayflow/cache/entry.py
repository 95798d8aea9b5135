"""The bytes every tier stores for one cached result: a signed header, then the value.

Owns the envelope

    MAGIC | created, ttl_s, cost_s | format | HMAC-SHA256 | data

``created``: when the result was computed (UNIX seconds); ``ttl_s``: the component's TTL
(-1 for none); ``cost_s``: what it cost to compute, so that a hit found in a lower tier
is promoted with a bounded TTL and its recompute cost, whichever tier it came from.
``data`` is the value in ``rayflow.data.codec``'s formats (Arrow IPC, .npy, JSON,
pickle). The signature (``codec.seal``) covers the cache key, the header, the format and
the data, for every format: an entry moved to another key, a header changed (its
creation time or TTL), or a payload swapped is ``UntrustedData``, and its data is never
decoded, a pickle never loaded. Reading is zero-copy where the format allows (an Arrow
table reads from the stored bytes). Must not unpickle anything itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from rayflow.data.codec import UntrustedData, seal, unseal

MAGIC = b"RFE2"
_META = struct.Struct(">ddd")     # created, ttl (-1: none), cost
_FMT_LEN = struct.Struct(">B")   # then the format's name, the signature and the data
_HEAD = len(MAGIC) + _META.size
_SIG = 32
_DOMAIN = b"rayflow cache entry"


@dataclass(frozen=True)
class EntryMeta:
    created: float
    ttl_s: float | None
    cost_s: float


def pack(value: Any, meta: EntryMeta, *, key: str) -> bytes:
    """The stored form of ``value`` under cache key ``key`` (raises what pickling raises:
    an unpicklable value fails here). The data is copied once, into the entry."""
    ttl = -1.0 if meta.ttl_s is None else meta.ttl_s
    head = MAGIC + _META.pack(meta.created, ttl, meta.cost_s)
    fmt, sig, data = seal(value, _DOMAIN, key.encode(), head)
    name = fmt.encode()
    return b"".join((head, _FMT_LEN.pack(len(name)), name, sig, data))


def unpack(data: bytes | memoryview, *, key: str) -> tuple[EntryMeta, Any]:
    """The header and the decoded value of an entry stored under ``key``; UntrustedData
    for a malformed entry or a signature that does not verify (the data is then never
    decoded)."""
    view = memoryview(data)
    if view.nbytes < _HEAD + _FMT_LEN.size or view[:len(MAGIC)] != MAGIC:
        raise UntrustedData("cache entry has no rayflow header")
    created, ttl, cost = _META.unpack_from(view, len(MAGIC))
    (fmt_len,) = _FMT_LEN.unpack_from(view, _HEAD)
    sig_at = _HEAD + _FMT_LEN.size + fmt_len
    if view.nbytes < sig_at + _SIG:
        raise UntrustedData("cache entry is shorter than its header")
    fmt = bytes(view[_HEAD + _FMT_LEN.size:sig_at]).decode("ascii", "replace")
    value = unseal(fmt, view[sig_at:sig_at + _SIG], view[sig_at + _SIG:], _DOMAIN, key.encode(), view[:_HEAD])
    return EntryMeta(created, None if ttl < 0 else ttl, cost), value
