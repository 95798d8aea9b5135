"""API tokens of the server: made, hashed, checked. Owns the token format and scopes.

A token is ``rf_`` + 32 random bytes (URL-safe base64); the store keeps its SHA-256 only
(``TokenRecord.token_hash``), so a stolen database yields no usable token. Checking a
presented token hashes it and looks the hash up, then compares in constant time. The
plain token is shown once, by ``create``; it must never be logged. Must not import
FastAPI (the CLI uses this module too).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from rayflow.core.errors import RayflowError
from rayflow.store.port import RunStore, TokenRecord

SCOPES = ("read", "submit", "admin")   # each includes the ones before it
PREFIX = "rf_"


class TokenError(RayflowError):
    """A token that is missing, unknown, revoked, or short of the scope asked for."""


def scope_allows(held: str, needed: str) -> bool:
    """True when a token of scope ``held`` may do what needs ``needed``."""
    return SCOPES.index(held) >= SCOPES.index(needed)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create(store: RunStore, scope: str, name: str = "") -> tuple[str, TokenRecord]:
    """Make a token of ``scope``; returns (the plain token, shown once; its record)."""
    if scope not in SCOPES:
        raise TokenError(f"token scope {scope!r}: expected one of {', '.join(SCOPES)}")
    token = PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(token_id=secrets.token_hex(6), name=name or scope, scope=scope,
                         token_hash=hash_token(token), created_at=time.time())
    store.create_token(record)
    return token, record


def verify(store: RunStore, presented: str) -> TokenRecord:
    """The live token record for ``presented``; TokenError when unknown or revoked."""
    digest = hash_token(presented)
    record = store.get_token(digest)
    # the lookup is by hash; the comparison is constant-time all the same
    if record is None or not hmac.compare_digest(record.token_hash, digest):
        raise TokenError("unknown token")
    if record.revoked_at is not None:
        raise TokenError(f"token {record.token_id} was revoked")
    return record


def any_tokens(store: RunStore) -> bool:
    """True when the store holds a live token (``--auth`` then defaults to ``token``)."""
    return any(t.revoked_at is None for t in store.list_tokens())
