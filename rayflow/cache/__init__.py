"""The result cache: content-addressed keys, tiers behind one port, and their composition.

``open_cache(urls)`` is the one place URLs become tiers (memory, Redis, files);
``rayflow.plan.fingerprints`` computes the keys (pure); ``MultiLevelCache`` looks up and
stores across tiers and never loads a pickle whose signature does not verify. Importing
this package does not import redis. See docs/cache.md.
"""

from rayflow.cache.memory import MemoryTier
from rayflow.cache.port import CacheTier
from rayflow.cache.tiers import CacheResult, MultiLevelCache
from rayflow.cache.urls import CACHE_ENV_VAR, DEFAULT_CACHE_URL, open_cache
from rayflow.plan.fingerprints import (
    call_key,
    code_fingerprint,
    component_key,
    component_prefix,
    entry_key,
    value_fingerprint,
)

__all__ = [
    "CACHE_ENV_VAR", "DEFAULT_CACHE_URL", "CacheResult", "CacheTier", "MemoryTier", "MultiLevelCache",
    "call_key", "code_fingerprint", "component_key", "component_prefix", "entry_key", "open_cache", "value_fingerprint",
]
