"""Secrets in URLs: the one reading of a URL's user, password and secret parameters.

Every message, log line and public form of a URL rayflow shows (run store, cache tiers,
checkpoint locations) goes through ``redact`` (the password and each secret parameter
shown as ``***``) or ``without_password`` (left out); the URL handed to a driver goes
through ``normalized`` so that the driver reads the same user and password as this
module does. ``scrub`` removes a URL's secrets from any text (a driver's error message).
Pure: no I/O, imports nothing of rayflow, must not log.

How a URL is read (``SCHEME://[USER[:PASSWORD]@]REST``), so that a password written
without percent-encoding is never shown in part:

- the userinfo is looked for only when the text after ``//`` starts with neither ``/``
  (``sqlite:///path``) nor ``[`` (an IPv6 host);
- a password starts after the first ``:`` of the userinfo and ends at the LAST ``@`` of
  the URL, so it may hold ``@ / ? # :`` unencoded (``postgresql://u:p@ss/w?rd#x@host/db``
  has the password ``p@ss/w?rd#x``). A ``@`` elsewhere in a URL with a password (a query
  value) must then be written ``%40``;
- a URL whose authority is hosts with ports, and whose first ``@`` is in a query value
  (``h:5432/db?x=a@b``), has no userinfo;
- without a password, the user ends at the last ``@`` before the first ``/ ? #``;
- a query parameter whose name holds ``pass``, ``secret``, ``token`` or ``credential``
  (``password=``, ``sslpassword=``, ``secret_key=``) is a secret too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus

MASK = "***"
_HEAD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)(.*)", re.DOTALL)
_HOST_LIST = re.compile(r"[^:@,]*:\d+(,[^:@,]*(:\d+)?)*")   # h1:5432,h2:5433 (no userinfo)
_QUERY_AT = re.compile(r"(/[^?#@]*)?\?[^#@]*=")          # a path, then a key= before any @
_SECRET_NAME = re.compile(r"pass|secret|token|credential", re.IGNORECASE)


@dataclass(frozen=True)
class UrlParts:
    """A URL as written, cut around its userinfo (no part decoded)."""

    head: str                  # "scheme://" ("" when the text is no URL)
    user: str | None           # None: no userinfo
    password: str | None       # None: no password given
    rest: str                  # host, port, path, query, fragment

    def join(self, *, password: str | None, user: str | None = None) -> str:
        user = self.user if user is None else user
        if not user and password is None:             # no userinfo left (an empty user with it)
            return self.head + self.rest
        return f"{self.head}{user or ''}{'' if password is None else ':' + password}@{self.rest}"


def split_url(url: str) -> UrlParts:
    """``url`` cut into its scheme, user, password and the rest (module docstring)."""
    m = _HEAD.match(url)
    if m is None:
        return UrlParts("", None, None, url)
    head, body = m.group(1), m.group(2)
    if body[:1] in ("/", "[") or "@" not in body:
        return UrlParts(head, None, None, body)
    std = re.split(r"[/?#]", body, maxsplit=1)[0]      # the authority as urllib reads it
    colon = body.find(":")
    if "@" in std and ":" not in std[:std.rfind("@")]:
        end = std.rfind("@")                          # a user alone
    elif "@" in std or (0 <= colon < len(std) and not _hosts_then_query(std, body[len(std):])):
        end = body.rfind("@")                         # USER:PASSWORD, the password up to the last @
    else:
        return UrlParts(head, None, None, body)
    user, sep, password = body[:end].partition(":")
    return UrlParts(head, user, password if sep else None, body[end + 1:])


def _hosts_then_query(std: str, after: str) -> bool:
    """``h:5432/db?x=a@b``: hosts with ports, and the ``@`` in a query value (no userinfo)."""
    return bool(_HOST_LIST.fullmatch(std) and _QUERY_AT.match(after))


def secret_name(name: str) -> bool:
    """Whether a query parameter of this (decoded) name holds a secret."""
    return bool(_SECRET_NAME.search(name))


def _query_map(rest: str, shown: str | None) -> str:
    """``rest`` with each secret parameter's value replaced by ``shown`` (None: dropped)."""
    before, sep, query = rest.partition("?")
    if not sep:
        return rest
    kept = []
    for piece in query.split("&"):
        name = piece.split("=", 1)[0]
        if secret_name(unquote_plus(name)):
            if shown is None:
                continue
            piece = f"{name}={shown}"
        kept.append(piece)
    return before + ("?" + "&".join(kept) if kept else "")


def redact(url: str) -> str:
    """``url`` with its password and secret parameters shown as ``***``."""
    parts = split_url(url)
    masked = UrlParts(parts.head, parts.user, parts.password, _query_map(parts.rest, MASK))
    return masked.join(password=None if parts.password is None else MASK)


def without_password(url: str) -> str:
    """``url`` with its password and secret parameters left out (a URL's public form)."""
    parts = split_url(url)
    return UrlParts(parts.head, parts.user, None, _query_map(parts.rest, None)).join(password=None)


def normalized(url: str) -> str:
    """``url`` with its user and password percent-encoded: a driver that reads URLs with
    ``urllib`` (asyncpg, redis-py) then finds the user, password and host read here."""
    parts = split_url(url)
    if parts.user is None:
        return url
    password = None if parts.password is None else quote(unquote(parts.password), safe="")
    return parts.join(user=quote(unquote(parts.user), safe=""), password=password)


def has_secret(url: str) -> bool:
    return bool(secrets_of(url))


def secrets_of(url: str) -> set[str]:
    """Every form (as written, decoded, re-encoded) of ``url``'s password and secret
    parameter values; empty ones left out."""
    parts = split_url(url)
    raw = [] if parts.password is None else [parts.password]
    query = parts.rest.partition("?")[2]
    for piece in query.split("&") if query else ():
        name, _, value = piece.partition("=")
        if secret_name(unquote_plus(name)):
            raw.append(value.split("#", 1)[0])
            raw.append(value)
    found = set()
    for text in raw:
        found.update((text, unquote(text), unquote_plus(text), quote(unquote(text), safe="")))
    return {s for s in found if s}


def scrub(text: str, *urls: str | None) -> str:
    """``text`` with every secret of ``urls`` replaced by ``***`` (longest first)."""
    found: set[str] = set()
    for url in urls:
        if url:
            found |= secrets_of(url)
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
