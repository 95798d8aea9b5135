"""Turns a list of cache URLs into a MultiLevelCache: the one place a URL becomes a tier.

Owns the accepted URL forms, their query parameters, the default and the
``RAYFLOW_CACHE`` environment variable. Must not import a tier's module (redis,
pyarrow.fs) until that tier is asked for. Tiers are listed top-down, comma-separated
(or as a Python list when a URL itself holds a comma):

    memory://?max_bytes=256MiB&policy=adaptive      in-process L1. policy: lru | lfu |
                                                    adaptive (default); max_bytes:
                                                    bytes or a size (default 256MiB)
    redis://[user:pass@]HOST:PORT/DB?timeout=0.2    Redis L2 (rediss:// for TLS).
        connect_timeout=0.2  socket read / connect timeouts, seconds
        max_connections=16   pool size
        prefix=rayflow:cache:  namespace of every key
        failures=3           consecutive failures that open the circuit breaker
        cooldown=5           seconds the breaker stays open before probing
    file:///abs/dir, file:///~/dir, /abs/dir, ~/dir, ./dir    files L3, one per entry
    s3://bucket/prefix?region=..., gs://..., hdfs://...       files L3 on pyarrow.fs
                                                    (their own parameters pass through)
    sqlite:///PATH, postgresql://...                L3 in a run store's cache_entries table
                                                    (the run store URL: share one database)
    off                                             no cache at all (every get misses)

Every tier also takes ``ttl_scale=X`` (a number >= 0, or ``none`` to ignore TTLs);
defaults in ``rayflow.cache.tiers``. Unset ``RAYFLOW_CACHE`` means ``memory://``.

A URL is shown only redacted (``redis://user:***@host:1/0``, ``rayflow.core.redact``),
in this module's errors and in a tier's (each scrubbed of the URL's secrets); a tier is
opened on the URL with its user and password percent-encoded, so a password may hold
``@ / ? #`` as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rayflow.cache.port import CacheTier
from rayflow.cache.tiers import MultiLevelCache, default_ttl_scale
from rayflow.core import config
from rayflow.core.errors import ConfigError, RayflowError, SpecError
from rayflow.core.options import parse_memory
from rayflow.core.redact import normalized, redact, scrub

CACHE_ENV_VAR = "RAYFLOW_CACHE"
DEFAULT_CACHE_URL = "memory://"
OFF = "off"
_ACCEPTED = "memory://, redis://HOST:PORT/DB, rediss://..., file:///DIR, a directory path, s3://BUCKET/PREFIX (any pyarrow.fs URI), sqlite:///PATH, postgresql://..., off"
_LOCAL = ("", "file")
_PYARROW_FS = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")   # as urllib reads a scheme
_DEFAULT: Any = object()      # a URL without ttl_scale: the tier's default applies


def cache_urls(urls: str | Sequence[str] | None = None) -> list[str]:
    """The tier URLs named by ``urls`` (comma-separated, top-down); ``None`` means
    $RAYFLOW_CACHE, else ``memory://``."""
    if urls is None:
        urls = config.cache_url() or DEFAULT_CACHE_URL
    return [u.strip() for u in (urls.split(",") if isinstance(urls, str) else urls)]


def shared_urls(urls: str | Sequence[str] | None = None) -> list[str]:
    """The tiers other processes see (all but in-process memory)."""
    return [u for u in cache_urls(urls) if u and u != OFF and _kind(u) != "memory"]


def open_cache(urls: str | Sequence[str] | None = None) -> MultiLevelCache:
    """The cache named by ``urls`` (comma-separated, top-down); ``None`` means
    $RAYFLOW_CACHE, else ``memory://``. ConfigError naming the bad part."""
    parts = cache_urls(urls)
    if parts == [OFF]:
        return MultiLevelCache([])
    if not all(parts):
        shown = ", ".join(redact(u) for u in parts)
        raise ConfigError(f"cache URL list [{shown}] has an empty entry; accepted: {_ACCEPTED}")
    tiers: list[CacheTier] = []
    scales: list[float | None] = []
    try:
        for i, url in enumerate(parts):
            tier, scale = _open_scrubbed(url, name=_unique(_kind(url), [t.name for t in tiers]))
            tiers.append(tier)
            scales.append(default_ttl_scale(tier, last=i == len(parts) - 1) if scale is _DEFAULT else scale)
    except BaseException:
        for tier in tiers:
            tier.close()
        raise
    return MultiLevelCache(tiers, scales)


def _open_scrubbed(url: str, *, name: str) -> tuple[CacheTier, Any]:
    """``_open_tier``; an error (its own, a tier's or a driver's) never shows the URL's
    secrets; one that is no rayflow error becomes a one-line ConfigError naming the URL."""
    try:
        return _open_tier(url, name=name)
    except RayflowError as exc:
        exc.args = tuple(scrub(a, url) if isinstance(a, str) else a for a in exc.args)
        raise
    except (ValueError, TypeError, OSError) as exc:   # a driver refusing the URL
        raise ConfigError(f"cache URL {redact(url)!r}: {type(exc).__name__}: {scrub(str(exc), url)}") from None


def _open_tier(url: str, *, name: str | None = None) -> tuple[CacheTier, Any]:
    """One tier and its ``ttl_scale`` (``_DEFAULT`` when the URL does not say)."""
    kind = _kind(url)
    parts = urlsplit(normalized(url))   # the user and password encoded: they may hold @ / ? #
    params = _query(url, parts.query)
    scale = _DEFAULT
    if "ttl_scale" in params:
        scale = _ttl_scale(url, params.pop("ttl_scale"))
    bare = urlunsplit(parts._replace(query=urlencode(params) if kind in ("files", "store") else ""))
    if kind == "memory":
        return _memory(url, parts, params, name or kind), scale
    if kind == "redis":
        return _redis(url, bare, params, name or kind), scale
    if kind == "store":
        return _store(bare, name or ("sqlite" if parts.scheme.lower() == "sqlite" else "postgresql")), scale
    return _files(url, bare, name or kind), scale


def _store(url: str, name: str) -> CacheTier:
    """L3 in a run store's ``cache_entries`` table (SQLite or PostgreSQL)."""
    from rayflow.cache.store_tier import StoreTier
    from rayflow.store import open_store

    return StoreTier(open_store(url), name=name)


def _kind(url: str) -> str:
    scheme = _SCHEME.match(url)
    scheme = scheme.group(1).lower() if scheme else ""
    if scheme == "memory":
        return "memory"
    if scheme in ("redis", "rediss"):
        return "redis"
    if scheme in ("sqlite", "postgresql", "postgres"):
        return "store"
    if scheme in _LOCAL + _PYARROW_FS:
        return "files"
    raise ConfigError(f"unsupported cache URL {redact(url)!r} (scheme {scheme!r}); accepted: {_ACCEPTED}")


def _memory(url: str, parts: Any, params: dict[str, str], name: str) -> CacheTier:
    from rayflow.cache.memory import DEFAULT_MAX_BYTES, DEFAULT_POLICY, MemoryTier

    if parts.netloc or parts.path:
        raise ConfigError(f"cache URL {redact(url)!r}: memory:// takes no host or path, only ?max_bytes=&policy=")
    _only(url, params, ("max_bytes", "policy"))
    try:
        max_bytes = parse_memory(params.get("max_bytes", DEFAULT_MAX_BYTES), field_name="max_bytes")
    except SpecError as exc:
        raise ConfigError(f"cache URL {redact(url)!r}: {exc}") from None
    return MemoryTier(max_bytes or 0, params.get("policy", DEFAULT_POLICY), name=name)


def _number(cast: Callable[[str], Any], minimum: float, what: str) -> tuple[Callable[[str], Any], str]:
    def parse(text: str) -> Any:
        value = cast(text)
        if not minimum <= value < float("inf"):
            raise ValueError(text)
        return value
    return parse, what


_REDIS_PARAMS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "timeout": ("timeout_s", *_number(float, 1e-3, "seconds >= 0.001")),
    "connect_timeout": ("connect_timeout_s", *_number(float, 1e-3, "seconds >= 0.001")),
    "max_connections": ("max_connections", *_number(int, 1, "an integer >= 1")),
    "failures": ("failures", *_number(int, 1, "an integer >= 1")),
    "cooldown": ("cooldown_s", *_number(float, 0, "seconds >= 0")),
    "prefix": ("namespace", str, "a string"),
}


def _redis(url: str, bare: str, params: dict[str, str], name: str) -> CacheTier:
    _only(url, params, tuple(_REDIS_PARAMS))
    kwargs = {}
    for key, text in params.items():
        arg, parse, what = _REDIS_PARAMS[key]
        try:
            kwargs[arg] = parse(text)
        except ValueError:
            raise ConfigError(f"cache URL {redact(url)!r}: parameter {key}={text!r} must be {what}") from None
    try:
        from rayflow.cache.redis_tier import RedisTier
    except ModuleNotFoundError as exc:
        if exc.name != "redis" and not str(exc.name).startswith("redis."):
            raise
        raise ConfigError(f"cache URL {redact(url)!r} needs the redis package: pip install 'redis>=5'") from None
    return RedisTier(bare, name=name, **kwargs)


def _files(url: str, bare: str, name: str) -> CacheTier:
    from rayflow.cache.files import FileTier

    return FileTier.from_uri(bare, name=name)


def _query(url: str, query: str) -> dict[str, str]:
    pairs = parse_qsl(query, keep_blank_values=True)
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ConfigError(f"cache URL {redact(url)!r}: parameter {repeated[0]!r} given more than once")
    return dict(pairs)


def _only(url: str, params: dict[str, str], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"cache URL {redact(url)!r}: unknown parameter {unknown[0]!r}; expected one of "
                          f"{', '.join(allowed + ('ttl_scale',))}")


def _ttl_scale(url: str, text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        scale = float(text)
    except ValueError:
        scale = -1.0
    if not scale >= 0 or scale == float("inf"):
        raise ConfigError(f"cache URL {redact(url)!r}: ttl_scale={text!r} must be a number >= 0 or 'none'")
    return scale


def _unique(kind: str, taken: list[str]) -> str:
    name, n = kind, 1
    while name in taken:
        n += 1
        name = f"{kind}{n}"
    return name
