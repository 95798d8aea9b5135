"""Who is calling, and may they: bearer tokens checked against the store, with scopes.

Owns ``Authenticator`` (the ``--auth token|none`` mode, a short-lived cache of verified
tokens keyed by the token's hash) and ``require(scope)``, the dependency every route
declares. Scopes nest: read (GETs, /metrics) < submit (+ runs: submit, cancel, resume,
retry) < admin (+ workflows). A verified token is trusted for ``ttl_s`` (2 s), so a hot
GET does not read the store per request and a revoked token stops within that time.
Must not log or echo a presented token; the token format and hashing stay in
``rayflow.server.tokens``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from rayflow.server import tokens
from rayflow.server.http.errors import ApiError
from rayflow.store.port import TokenRecord

MODES = ("token", "none")
ANONYMOUS = "anonymous"
_bearer = HTTPBearer(auto_error=False, description="A token from `rayflow token create` (scope read|submit|admin).")


@dataclass(frozen=True)
class Caller:
    """The caller of one request: a token's id (``anonymous`` without auth) and its scope."""

    id: str
    scope: str
    token_hash: str | None = None


class TokenCache:
    """Verified token records by hash, each for ``ttl_s``. Thread-safe, bounded."""

    def __init__(self, ttl_s: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[TokenRecord, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> TokenRecord | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, digest: str, record: TokenRecord) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[1] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[digest] = (record, now + self.ttl_s)


class Authenticator:
    """Checks a request's bearer token for a scope (mode ``token``) or lets it by (``none``)."""

    def __init__(self, mode: str, store_of: Callable[[], Any], *, ttl_s: float = 2.0) -> None:
        if mode not in MODES:
            raise ValueError(f"auth mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode
        self._store_of = store_of
        self.cache = TokenCache(ttl_s)

    @property
    def enabled(self) -> bool:
        return self.mode == "token"

    def check(self, token: str | None, needed: str) -> Caller:
        """The caller, or 401/403. May read the store (call it from a thread)."""
        if not self.enabled:
            return Caller(ANONYMOUS, "admin")
        if not token:
            raise unauthorized("missing_token", "this server needs `Authorization: Bearer <token>` "
                               "(make a token with `rayflow token create`)")
        digest = tokens.hash_token(token)
        record = self.cache.get(digest)
        if record is None:
            try:
                record = tokens.verify(self._store_of(), token)
            except tokens.TokenError as exc:
                raise unauthorized("invalid_token", f"the bearer token was refused: {exc}") from None
            self.cache.put(digest, record)
        return _allowed(record, digest, needed)

    def check_cached(self, token: str | None, needed: str) -> Caller | None:
        """As ``check`` when it needs no store read (no auth, or a token verified within the
        TTL); None when it would (the caller then runs ``check`` in a thread)."""
        if not self.enabled:
            return Caller(ANONYMOUS, "admin")
        if not token:
            return None
        digest = tokens.hash_token(token)
        record = self.cache.get(digest)
        return None if record is None else _allowed(record, digest, needed)


def _allowed(record: TokenRecord, digest: str, needed: str) -> Caller:
    if not tokens.scope_allows(record.scope, needed):
        raise ApiError(403, "forbidden", f"token {record.token_id} has scope {record.scope!r}; this call "
                       f"needs {needed!r} (make one with `rayflow token create --scope {needed}`)")
    return Caller(record.token_id, record.scope, digest)


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


def require(scope: str) -> Callable[..., Caller]:
    """The dependency of a route that needs ``scope``: returns the Caller, or raises 401/403.
    Async: a cached token is checked on the event loop; the store is read in a thread."""
    if scope not in tokens.SCOPES:
        raise ValueError(f"scope {scope!r}: expected one of {', '.join(tokens.SCOPES)}")

    async def caller(request: Request,
                     credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> Caller:
        auth: Authenticator = request.app.state.auth
        token = credentials.credentials if credentials else None
        known = auth.check_cached(token, scope)     # no thread hop for a hot token
        return known if known is not None else await run_in_threadpool(auth.check, token, scope)

    caller.__name__ = f"require_{scope}"
    return caller
